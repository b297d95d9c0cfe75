#!/usr/bin/env bash
# Tear down the test Ray cluster that ray-up.sh started in STATE_DIR.
#
#   ray-down.sh STATE_DIR [--keep-logs]
#
# Stops each node by its recorded pid: SIGTERM to its `ray start --block`, which stops the
# node's raylet, GCS, agents and workers, then SIGKILL to whatever of that node's session is
# still there. Never `ray stop`: that kills every Ray process on the machine, by name. Removes
# the session directories and the files ray-up.sh wrote. Idempotent.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$HERE/_lib.sh"

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $(basename "$0") STATE_DIR [--keep-logs]" >&2
    exit 2
fi
STATE=$(realpath -m "$1")
KEEP_LOGS=0
[ "${2:-}" = --keep-logs ] && KEEP_LOGS=1
T0=$(now)
if [ -s "$STATE/nodes" ] && [ -s "$STATE/node.conf" ]; then
    # workers first, the head last
    mapfile -t NODES < <(sort -r "$STATE/nodes")
    for n in "${NODES[@]}"; do
        "$HERE/ray-node.sh" "$STATE" down "$n" --graceful >/dev/null
    done
fi
if [ -s "$STATE/tmproot" ]; then
    TMPROOT=$(cat "$STATE/tmproot")
    case $TMPROOT in /tmp/blut-ray.*) rm -rf "$TMPROOT" ;; esac
fi
if [ -d "$STATE" ]; then
    rm -rf "$STATE/pids" "$STATE/env.sh" "$STATE/node.conf" "$STATE/nodes" "$STATE/tmproot"
    [ $KEEP_LOGS = 1 ] || rm -rf "$STATE/log"
    rmdir "$STATE" 2>/dev/null || true
fi
echo "ray-down: done in $(span "$T0" "$(now)")s"
