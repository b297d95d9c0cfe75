#!/usr/bin/env bash
# Tear down the test cluster that slurm-up.sh started in STATE_DIR.
#
#   slurm-down.sh STATE_DIR [--keep-logs]
#
# Cancels the cluster's jobs, kills what is left in its nodes' cgroups (job processes and
# slurmstepd of a node that slurm-node.sh took down), stops exactly the daemons recorded in
# STATE_DIR/pids (never by name), removes the nodes' cgroups and the files slurm-up.sh wrote.
# Idempotent: a second run, or a run on a directory with nothing up, does nothing and exits 0.
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
export SLURM_CONF=$STATE/slurm.conf

NODES=()
[ -s "$STATE/nodes" ] && mapfile -t NODES <"$STATE/nodes"

# jobs first, so that their slurmstepd end through Slurm
if alive "$STATE" slurmctld; then
    scancel --user="$(id -un)" 2>/dev/null || true
    queue_empty() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }
    wait_until 15 queue_empty || echo "slurm-down: jobs still queued after 15 s, killing them" >&2
fi

# what is still in a node's cgroups belongs to this cluster's jobs
node_procs() {
    local n=$1 ctrl
    for ctrl in memory freezer cpuset cpuacct; do
        [ -d "/sys/fs/cgroup/$ctrl/slurm_$n" ] || continue
        find "/sys/fs/cgroup/$ctrl/slurm_$n" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -un
}
stepd_pids() {  # slurmstepd of node $1: its spool dir is their working directory
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        [ "$(readlink "$p/cwd" 2>/dev/null)" = "$STATE/spool/d_$1" ] && echo "${p#/proc/}"
    done
    return 0
}
for n in "${NODES[@]}"; do
    mapfile -t LEFT < <(node_procs "$n"; stepd_pids "$n")
    if [ ${#LEFT[@]} -gt 0 ]; then
        kill -KILL "${LEFT[@]}" 2>/dev/null || true
        wait_gone 5 "${LEFT[@]}"
    fi
done

# daemons, by recorded pid
SLURMDS=()
for n in "${NODES[@]}"; do SLURMDS+=("slurmd_$n"); done
stop_recorded "$STATE" TERM "${SLURMDS[@]}" slurmctld slurmdbd  # together: each takes ~2 s
stop_recorded "$STATE" TERM mariadbd munged

# the cgroup v1 plugin made /sys/fs/cgroup/<controller>/slurm_<node> at each hierarchy's root
for n in "${NODES[@]}"; do
    for d in /sys/fs/cgroup/*/"slurm_$n"; do
        [ -d "$d" ] || continue
        for ((i = 0; i < 20; i++)); do
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [ -d "$d" ] || break
            sleep 0.1
        done
        [ -d "$d" ] && echo "slurm-down: could not remove $d" >&2
    done
done

if [ -d "$STATE" ]; then
    rm -rf "$STATE/pids" "$STATE/spool" "$STATE/munge" "$STATE/mysql" "$STATE/env.sh" "$STATE/nodes" \
        "$STATE/slurm.conf" "$STATE/cgroup.conf" "$STATE/slurmdbd.conf" "$STATE"/slurm*.pid
    [ $KEEP_LOGS = 1 ] || rm -rf "$STATE/log"
    rmdir "$STATE" 2>/dev/null || true
fi
echo "slurm-down: done in $(span "$T0" "$(now)")s"
