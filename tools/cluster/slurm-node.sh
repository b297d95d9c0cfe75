#!/usr/bin/env bash
# Take one node of the slurm-up.sh cluster in STATE_DIR down, or bring it back: for
# node-failure tests.
#
#   slurm-node.sh STATE_DIR down NODE [--slurmd-only] [--wait]
#   slurm-node.sh STATE_DIR up NODE
#
# down: the node is lost as a machine is lost: its slurmd, its slurmstepd and every process of
#   its jobs get SIGKILL. slurmctld notices only by the missed pings: the node turns "not
#   responding" and then DOWN, SlurmdTimeout (see slurm-up.sh) after its last answer, and
#   only then do its running jobs end (NODE_FAIL for a job submitted with --no-requeue; a
#   requeueable batch job goes back to PENDING instead). --slurmd-only kills slurmd alone:
#   the jobs' processes then go on running, orphaned, while Slurm declares them failed.
#   --wait blocks until slurmctld reports the node down and prints how long that took.
# up: starts the node's slurmd again and waits until the node is idle (ReturnToService=2
#   returns a DOWN node to service when its slurmd registers).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$HERE/_lib.sh"

usage() { echo "usage: $(basename "$0") STATE_DIR down|up NODE [--slurmd-only] [--wait]" >&2; exit 2; }
[ $# -ge 3 ] || usage
STATE=$(realpath -m "$1")
ACTION=$2
NODE=$3
shift 3
SLURMD_ONLY=0
WAIT=0
while [ $# -gt 0 ]; do
    case $1 in
        --slurmd-only) SLURMD_ONLY=1 ;;
        --wait) WAIT=1 ;;
        *) usage ;;
    esac
    shift
done
export SLURM_CONF=$STATE/slurm.conf
alive "$STATE" slurmctld || die "no cluster is up in $STATE (slurm-up.sh STATE_DIR)"
grep -qx "$NODE" "$STATE/nodes" || die "no node '$NODE' in this cluster (nodes: $(tr '\n' ' ' <"$STATE/nodes"))"
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null; }

case $ACTION in
down)
    T0=$(now)
    LOST=()
    if pid=$(recorded_pid "$STATE" "slurmd_$NODE"); then LOST+=("$pid"); fi
    [ ${#LOST[@]} -gt 0 ] || echo "slurm-node: the slurmd of $NODE is not running" >&2
    if [ $SLURMD_ONLY = 0 ]; then
        # its slurmstepd keep the spool directory as their working directory; the job
        # processes live in the node's cgroups
        for p in /proc/[0-9]*; do
            [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
            [ "$(readlink "$p/cwd" 2>/dev/null)" = "$STATE/spool/d_$NODE" ] && LOST+=("${p#/proc/}")
        done
        if [ -d "/sys/fs/cgroup/memory/slurm_$NODE" ]; then
            mapfile -t -O "${#LOST[@]}" LOST < <(find "/sys/fs/cgroup/memory/slurm_$NODE" \
                -name cgroup.procs -exec cat {} + 2>/dev/null)
        fi
    fi
    if [ ${#LOST[@]} -gt 0 ]; then
        kill -KILL "${LOST[@]}" 2>/dev/null || true
        wait_gone 5 "${LOST[@]}"
    fi
    rm -f "$STATE/pids/slurmd_$NODE"
    echo "slurm-node: $NODE lost (${#LOST[@]} process(es) killed)"
    if [ $WAIT = 1 ]; then
        is_down() { case $(node_state) in down*) return 0 ;; *) return 1 ;; esac; }
        wait_until 300 is_down || die "slurmctld did not mark $NODE down within 300 s"
        echo "slurm-node: slurmctld marked $NODE $(node_state) after $(span "$T0" "$(now)")s"
    fi
    ;;
up)
    alive "$STATE" "slurmd_$NODE" && { echo "slurm-node: $NODE is already up ($(node_state))"; exit 0; }
    T0=$(now)
    start_daemon "$STATE" "slurmd_$NODE" "$STATE/log/slurmd_$NODE.out" "$STATE/spool/d_$NODE" \
        /usr/sbin/slurmd -D -f "$SLURM_CONF" -N "$NODE"
    is_idle() { [ "$(node_state)" = idle ]; }
    wait_until 60 is_idle || die "$NODE did not become idle within 60 s (state: $(node_state))"
    echo "slurm-node: $NODE idle again after $(span "$T0" "$(now)")s"
    ;;
*) usage ;;
esac
