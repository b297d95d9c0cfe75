#!/usr/bin/env bash
# Take one node of the ray-up.sh cluster in STATE_DIR down, or start it: for node-failure tests.
#
#   ray-node.sh STATE_DIR down [NODE] [--graceful]
#   ray-node.sh STATE_DIR up [NODE]
#
# NODE is node2 (the worker node) unless given; node1 is the head, and taking it down ends
# the cluster. down: the node is lost as a machine is lost: SIGKILL to its `ray start`
# process and to every process of its session (raylet, workers, agents). Ray notices through
# the raylet's missed heartbeats; a task running there fails with NodeDiedError or
# WorkerCrashedError. --graceful sends SIGTERM instead and lets `ray start --block` stop
# its processes itself. up: starts the node (again) and waits until it says it runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$HERE/_lib.sh"

usage() { echo "usage: $(basename "$0") STATE_DIR down|up [NODE] [--graceful]" >&2; exit 2; }
[ $# -ge 2 ] || usage
STATE=$(realpath -m "$1")
ACTION=$2
shift 2
NODE=node2
GRACEFUL=0
while [ $# -gt 0 ]; do
    case $1 in
        --graceful) GRACEFUL=1 ;;
        node[0-9]*) NODE=$1 ;;
        *) usage ;;
    esac
    shift
done
if [ ! -s "$STATE/env.sh" ] || [ ! -s "$STATE/node.conf" ]; then
    die "no Ray cluster was set up in $STATE (ray-up.sh STATE_DIR)"
fi
grep -qx "$NODE" "$STATE/nodes" || die "no node '$NODE' in this cluster (nodes: $(tr '\n' ' ' <"$STATE/nodes"))"
# shellcheck source=/dev/null
. "$STATE/env.sh"
# shellcheck source=/dev/null
. "$STATE/node.conf"
TMPROOT=$(cat "$STATE/tmproot")
N=${NODE#node}

session_pids() {  # every process whose session is the one the node's `ray start` leads
    ps -eo pid=,sid= | awk -v s="$1" '$2 == s && $1 != s { print $1 }'
}

case $ACTION in
down)
    T0=$(now)
    if ! pid=$(recorded_pid "$STATE" "ray_$NODE"); then
        echo "ray-node: $NODE is not running"
        rm -f "$STATE/pids/ray_$NODE"
        exit 0
    fi
    mapfile -t CHILDREN < <(session_pids "$pid")
    if [ $GRACEFUL = 1 ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone 20 "$pid"
    else
        kill -KILL "$pid" "${CHILDREN[@]}" 2>/dev/null || true
    fi
    # whatever of its session is still there (workers started meanwhile included)
    mapfile -t LEFT < <(session_pids "$pid")
    if [ ${#LEFT[@]} -gt 0 ]; then
        kill -KILL "${LEFT[@]}" 2>/dev/null || true
        wait_gone 5 "${LEFT[@]}"
    fi
    wait_gone 5 "$pid"
    rm -f "$STATE/pids/ray_$NODE"
    echo "ray-node: $NODE down ($((${#CHILDREN[@]} + 1)) process(es)) in $(span "$T0" "$(now)")s"
    ;;
up)
    if alive "$STATE" "ray_$NODE"; then
        echo "ray-node: $NODE is already up"
        exit 0
    fi
    T0=$(now)
    ARGS=(--block --node-ip-address=127.0.0.1 --num-cpus="$CPUS" --memory="$MEMORY"
        --object-store-memory="$OBJECT_STORE" --resources="{\"$NODE\": 1}"
        --temp-dir="$TMPROOT/n$N" --disable-usage-stats --log-style=record
        --dashboard-agent-listen-port=$((PORT + 10 * N + 1)) --dashboard-agent-grpc-port=$((PORT + 10 * N + 2))
        --runtime-env-agent-port=$((PORT + 10 * N + 3)) --metrics-export-port=$((PORT + 10 * N + 4))
        --node-manager-port=$((PORT + 10 * N + 5)) --object-manager-port=$((PORT + 10 * N + 6)))
    if [ "$NODE" = node1 ]; then
        ARGS+=(--head --port="$PORT" --include-dashboard=false --dashboard-port=$((PORT + 1)))
    else
        alive "$STATE" ray_node1 || die "the head node (node1) is not running"
        ARGS+=(--address="$RAY_ADDRESS")
    fi
    LOG=$STATE/log/ray_$NODE.log
    start_daemon "$STATE" "ray_$NODE" "$LOG" "$STATE" "$BLUT_RAY_PYTHON" "$HERE/_ray_start.py" start "${ARGS[@]}"
    started() { grep -q 'Ray runtime started' "$LOG" || ! alive "$STATE" "ray_$NODE"; }
    wait_until 60 started || true
    if ! grep -q 'Ray runtime started' "$LOG"; then
        tail -n 30 "$LOG" >&2
        "$0" "$STATE" down "$NODE" >/dev/null
        die "$NODE did not start (log above; $LOG)"
    fi
    echo "ray-node: $NODE up in $(span "$T0" "$(now)")s (pid $(recorded_pid "$STATE" "ray_$NODE"))"
    ;;
*) usage ;;
esac
