#!/usr/bin/env bash
# Baseline for the Slurm launcher's benchmark: plain sbatch, no blut.
#
#   . STATE_DIR/env.sh            # a cluster from tools/cluster/slurm-up.sh
#   packages/blut-launcher-slurm/bench_baseline.sh [JOBS] [REPEATS]
#
# Submits JOBS (default 50) `sbatch --wrap true` jobs, one after the other, and waits until
# all are done (polling squeue every 0.1 s, as a launcher would); the wall time runs from
# the first submission to the moment squeue lists none of them. Repeats REPEATS (default 3)
# times and prints each time and the median.
set -euo pipefail
JOBS=${1:-50}
REPEATS=${2:-3}
[ -n "${SLURM_CONF:-}" ] || { echo "bench_baseline.sh: SLURM_CONF is not set (source the cluster's env.sh)" >&2; exit 2; }
now() { date +%s.%N; }
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
times=()
for ((r = 1; r <= REPEATS; r++)); do
    name=blut-baseline-$$-$r
    t0=$(now)
    for ((i = 0; i < JOBS; i++)); do
        sbatch --parsable --job-name="$name" --output="$LOGS/%j.out" --wrap true >/dev/null
    done
    t_submit=$(now)
    while [ -n "$(squeue --noheader --name="$name" --format=%i)" ]; do sleep 0.1; done
    t1=$(now)
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    s=$(awk -v a="$t0" -v b="$t_submit" 'BEGIN { printf "%.2f", b - a }')
    echo "run $r: $JOBS jobs done in ${t}s (submitting took ${s}s)"
    times+=("$t")
    sleep 1
done
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
nodes=$(sinfo --noheader --Node --format=%N | sort -u | wc -l)
echo "median of $REPEATS: ${median}s for $JOBS x sbatch --wrap true on $nodes node(s)"
