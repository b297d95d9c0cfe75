#!/usr/bin/env bash
# Bring up a throw-away Ray cluster on this one machine, on 127.0.0.1 only, state in STATE_DIR.
#
#   ray-up.sh STATE_DIR [--nodes 1|2]
#
# Installs Ray into this Python when it cannot be imported (BLUT_RAY_SPEC, default
# "ray==2.60.0"; BLUT_PYTHON picks the interpreter, default python3). Starts a head node
# ("node1") with `ray start --head --block` in its own session, dashboard off, usage stats
# off, token authentication with a fresh random token, and with --nodes 2 a second node
# ("node2") that joins it (ray-node.sh takes it down and back for node-failure tests). Each
# node states its resources: BLUT_RAY_CPUS CPUs (default: the machine's CPUs for one node,
# 1 each for two), BLUT_RAY_MEMORY bytes of Ray's logical `memory` resource (default 60 % of
# RAM, split between the nodes), BLUT_RAY_OBJECT_STORE bytes of object store (default
# 512 MiB), and a custom resource named after the node ("node1": 1, "node2": 1) so that a
# test can place a task on one node. The GCS listens on 127.0.0.1:BLUT_RAY_PORT (default 6390),
# the other fixed ports of node N are BLUT_RAY_PORT + 10 N + 1..6. BLUT_RAY_MEMORY_THRESHOLD
# (a fraction of the machine's memory, Ray's default 0.95) sets where Ray's memory monitor
# starts killing tasks, for tests that provoke it.
#
# Writes the pids to STATE_DIR/pids/ and STATE_DIR/env.sh (RAY_ADDRESS, the token and the
# settings every driver must share). If this STATE_DIR's cluster is up, prints its env file
# and exits 0. Tear down with ray-down.sh STATE_DIR (never `ray stop`: it kills every Ray
# process on the machine, by name).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$HERE/_lib.sh"

usage() { echo "usage: $(basename "$0") STATE_DIR [--nodes 1|2]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -*) usage ;; esac
STATE=$(realpath -m "$1")
shift
NODES=1
while [ $# -gt 0 ]; do
    case $1 in
        --nodes) [ $# -ge 2 ] || usage; NODES=$2; shift 2 ;;
        --nodes=*) NODES=${1#--nodes=}; shift ;;
        *) usage ;;
    esac
done
case $NODES in 1 | 2) ;; *) die "--nodes must be 1 or 2, not '$NODES'" ;; esac

if alive "$STATE" ray_node1; then
    echo "ray-up: the cluster of $STATE is already up; env: $STATE/env.sh"
    exit 0
fi
[ -d "$STATE/pids" ] && "$HERE/ray-down.sh" "$STATE" >/dev/null

T0=$(now)
PYTHON=$(command -v "${BLUT_PYTHON:-python3}") || die "no ${BLUT_PYTHON:-python3} on PATH"
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')  # the interpreter itself, not a shim
if ! "$PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("ray") is None)'; then
    echo "ray-up: installing ${BLUT_RAY_SPEC:-ray==2.60.0} into $PYTHON" >&2
    "$PYTHON" -m pip install -q "${BLUT_RAY_SPEC:-ray==2.60.0}" || die "pip install ${BLUT_RAY_SPEC:-ray==2.60.0} failed"
fi
T_PIP=$(now)

PORT=${BLUT_RAY_PORT:-6390}
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT on 127.0.0.1 is in use (set BLUT_RAY_PORT)"
# kB read by awk, bytes by the shell: mawk prints a product past 2^31 as 2.52761e+10
TOTAL=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 ))
if [ "$NODES" = 1 ]; then CPUS=${BLUT_RAY_CPUS:-$(nproc)}; else CPUS=${BLUT_RAY_CPUS:-1}; fi
MEMORY=${BLUT_RAY_MEMORY:-$((TOTAL * 6 / 10 / NODES))}
OBJECT_STORE=${BLUT_RAY_OBJECT_STORE:-$((512 * 1024 * 1024))}

rm -rf "$STATE/pids" "$STATE/log"
install -d -m 0755 "$STATE" "$STATE/log"
# Ray's session directories hold unix sockets, whose paths may not exceed 107 bytes: keep
# them under a short temporary directory, one per node, and remember where
TMPROOT=$(mktemp -d /tmp/blut-ray.XXXXXX)
echo "$TMPROOT" >"$STATE/tmproot"
cat >"$STATE/env.sh" <<ENV
# Source this to use the test Ray cluster of $STATE (written by ray-up.sh).
export RAY_ADDRESS=127.0.0.1:$PORT
# drivers and workers use 127.0.0.1 as their node address, never the outward one
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export RAY_USAGE_STATS_ENABLED=0
# token authentication with this cluster's own token (nothing is written to ~/.ray)
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
export BLUT_RAY_STATE_DIR=$STATE
export BLUT_RAY_PYTHON=$PYTHON
ENV
if [ -n "${BLUT_RAY_MEMORY_THRESHOLD:-}" ]; then
    echo "export RAY_memory_usage_threshold=$BLUT_RAY_MEMORY_THRESHOLD" >>"$STATE/env.sh"
fi
cat >"$STATE/node.conf" <<CONF
PORT=$PORT
CPUS=$CPUS
MEMORY=$MEMORY
OBJECT_STORE=$OBJECT_STORE
CONF
printf 'node%s\n' $(seq "$NODES") >"$STATE/nodes"
# shellcheck source=/dev/null
. "$STATE/env.sh"
T_CONF=$(now)

"$HERE/ray-node.sh" "$STATE" up node1
if [ "$NODES" = 2 ]; then "$HERE/ray-node.sh" "$STATE" up node2; fi
T_UP=$(now)
echo "ray-up: $NODES node(s) up in $(span "$T0" "$T_UP")s (install check $(span "$T0" "$T_PIP")s, nodes $(span "$T_CONF" "$T_UP")s): $CPUS CPU(s), memory $MEMORY B, object store $OBJECT_STORE B per node"
echo "ray-up: . $STATE/env.sh"
