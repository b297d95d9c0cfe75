#!/usr/bin/env bash
# Bring up a throw-away Slurm cluster on this one machine, all of its state in STATE_DIR.
#
#   slurm-up.sh STATE_DIR [--nodes 1|2] [--accounting] [--no-warmup]
#
# Installs the Debian packages it needs when they are missing, then starts, each in the
# foreground of its own session and recorded by pid in STATE_DIR/pids/: a private munged
# (own key and socket in STATE_DIR/munge), optionally MariaDB + slurmdbd (--accounting, so
# that `sacct` works), slurmctld and one slurmd per node ("node1", "node2": one machine,
# distinct ports and spool directories). Memory is enforced by the kernel: task/cgroup on the
# cgroup v1 memory controller, so `--mem` is a hard cap and a job that exceeds it ends
# OUT_OF_MEMORY. Waits until every node is idle, runs one warm-up job (the first batch job
# after slurmctld starts waits for the first scheduler pass), and writes STATE_DIR/env.sh.
#
# Run as root. Ports: BLUT_SLURM_PORT_BASE (default 6817) for slurmctld, +2 slurmdbd,
# +10/+11 the slurmd of node1/node2, +20 MariaDB; all traffic stays on 127.0.0.1.
# If this STATE_DIR's cluster is already up, prints its env file and exits 0.
# Tear down with slurm-down.sh STATE_DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=_lib.sh
. "$HERE/_lib.sh"

usage() { echo "usage: $(basename "$0") STATE_DIR [--nodes 1|2] [--accounting] [--no-warmup]" >&2; exit 2; }

[ $# -ge 1 ] || usage
case $1 in -*) usage ;; esac
STATE=$(realpath -m "$1")
shift
NODES=1
ACCOUNTING=0
WARMUP=1
while [ $# -gt 0 ]; do
    case $1 in
        --nodes) [ $# -ge 2 ] || usage; NODES=$2; shift 2 ;;
        --nodes=*) NODES=${1#--nodes=}; shift ;;
        --accounting) ACCOUNTING=1; shift ;;
        --no-warmup) WARMUP=0; shift ;;
        *) usage ;;
    esac
done
case $NODES in 1 | 2) ;; *) die "--nodes must be 1 or 2, not '$NODES'" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (slurmd manages cgroups and runs jobs as their owner)"
[ -d /sys/fs/cgroup/memory ] || die "no cgroup v1 memory controller at /sys/fs/cgroup/memory"

BASE=${BLUT_SLURM_PORT_BASE:-6817}
CTLD_PORT=$BASE
DBD_PORT=$((BASE + 2))
DB_PORT=$((BASE + 20))
SLURMD_TIMEOUT=${BLUT_SLURM_SLURMD_TIMEOUT:-5}
MESSAGE_TIMEOUT=${BLUT_SLURM_MESSAGE_TIMEOUT:-5}
NAMES=()
for ((i = 1; i <= NODES; i++)); do NAMES+=("node$i"); done
NODELIST=$(IFS=,; echo "${NAMES[*]}")
export SLURM_CONF=$STATE/slurm.conf

if alive "$STATE" slurmctld; then
    echo "slurm-up: the cluster of $STATE is already up ($(cat "$STATE/nodes" 2>/dev/null)); env: $STATE/env.sh"
    exit 0
fi
# anything recorded but no longer complete: stop its remains first
[ -d "$STATE/pids" ] && "$HERE/slurm-down.sh" "$STATE" >/dev/null

T0=$(now)

# ---- packages ------------------------------------------------------------------------------
PKGS=(slurmctld slurmd slurm-client munge)
[ $ACCOUNTING = 1 ] && PKGS+=(slurmdbd mariadb-server)
MISSING=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
    echo "slurm-up: installing ${MISSING[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    APT_LOG=$(mktemp -t slurm-apt.XXXXXX)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${MISSING[@]}"; } >"$APT_LOG" 2>&1; then
        tail -n 20 "$APT_LOG" >&2
        die "apt-get install ${MISSING[*]} failed (log: $APT_LOG)"
    fi
    rm -f "$APT_LOG"
fi
T_APT=$(now)

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=("$CTLD_PORT")
for ((i = 1; i <= NODES; i++)); do PORTS+=($((BASE + 9 + i))); done
[ $ACCOUNTING = 1 ] && PORTS+=("$DBD_PORT" "$DB_PORT")
for p in "${PORTS[@]}"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use (another cluster? set BLUT_SLURM_PORT_BASE)"
done

# ---- state directory: fresh every start, so no job of an earlier cluster is recovered -------
rm -rf "$STATE/spool" "$STATE/log" "$STATE/munge" "$STATE/mysql" "$STATE/pids"
install -d -m 0755 "$STATE" "$STATE/log" "$STATE/spool/ctld" "$STATE/munge"
for n in "${NAMES[@]}"; do install -d -m 0755 "$STATE/spool/d_$n"; done

start() {  # start NAME LOGFILE COMMAND...: a daemon of this cluster, working in STATE_DIR
    local name=$1 log=$2
    shift 2
    start_daemon "$STATE" "$name" "$log" "$STATE" "$@"
}

# ---- munge: a private daemon with its own key and socket ------------------------------------
MUNGE_SOCKET=$STATE/munge/munge.socket
mungekey --create --keyfile="$STATE/munge/munge.key" 2>/dev/null
chmod 0400 "$STATE/munge/munge.key"
start munged "$STATE/log/munged.out" /usr/sbin/munged --foreground \
    --socket="$MUNGE_SOCKET" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" \
    --log-file="$STATE/log/munged.log"
munge_ok() { munge -S "$MUNGE_SOCKET" -n 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
wait_until 10 munge_ok || { cat "$STATE/log/munged.out" "$STATE/log/munged.log" >&2; die "munged did not come up"; }
T_MUNGE=$(now)

# ---- optional accounting: MariaDB (TCP on 127.0.0.1 only) and slurmdbd -----------------------
if [ $ACCOUNTING = 1 ]; then
    install -d -m 0755 "$STATE/mysql"
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql/data" \
        --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 \
        || { tail "$STATE/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
    start mariadbd "$STATE/log/mariadb.out" /usr/sbin/mariadbd --no-defaults --user=root \
        --datadir="$STATE/mysql/data" --socket="$STATE/mysql/mysqld.sock" \
        --pid-file="$STATE/mysql/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --skip-name-resolve --innodb-buffer-pool-size=64M --log-error="$STATE/log/mariadb.err"
    db() { mariadb --no-defaults -uroot --socket="$STATE/mysql/mysqld.sock" "$@"; }
    wait_until 30 db -e 'select 1' >/dev/null 2>&1 || { tail "$STATE/log/mariadb.err" >&2; die "mariadbd did not come up"; }
    db -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'blut-test-cluster';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    cat >"$STATE/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=blut-test-cluster
StorageLoc=slurm_acct_db
CONF
    chmod 0600 "$STATE/slurmdbd.conf"  # slurmdbd refuses a readable one
    start slurmdbd "$STATE/log/slurmdbd.out" /usr/sbin/slurmdbd -D  # finds slurmdbd.conf beside $SLURM_CONF
    wait_until 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$DBD_PORT" 2>/dev/null \
        || { tail "$STATE/log/slurmdbd.log" >&2; die "slurmdbd did not come up"; }
    ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET"  # for slurmdbd: the munge socket to use
else
    ACCT="AccountingStorageType=accounting_storage/none"
fi
T_DBD=$(now)

# ---- slurm.conf and cgroup.conf -------------------------------------------------------------
HOST=$(hostname -s)
DETECTED=$(slurmd -C | head -1)
HW=$(grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$DETECTED")
TOTAL_MIB=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$DETECTED")
NODE_MIB=$(((TOTAL_MIB - 512) / NODES))  # 512 MiB left to the OS; the nodes split the rest
NODELINES=""
for ((i = 1; i <= NODES; i++)); do
    NODELINES+="NodeName=node$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((BASE + 9 + i)) $HW RealMemory=$NODE_MIB State=UNKNOWN
"
done
cat >"$SLURM_CONF" <<CONF
# Written by blut's tools/cluster/slurm-up.sh: a test cluster on one machine.
ClusterName=blut
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d_%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd_%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd_%n.log
MpiDefault=none
# kernel-enforced memory: jobs get a cgroup v1 memory cap of exactly --mem (no swap)
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# many small jobs: schedule at once, not every 3 s
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.log
# a node whose slurmd stops answering is DOWN (its jobs NODE_FAIL) about 15 s later (measured:
# SlurmdTimeout + 2 x MessageTimeout), and back by itself when its slurmd registers again
SlurmdTimeout=$SLURMD_TIMEOUT
MessageTimeout=$MESSAGE_TIMEOUT
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
${NODELINES}PartitionName=debug Nodes=$NODELIST Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$STATE/cgroup.conf" <<'CONF'
CgroupPlugin=cgroup/v1
CgroupAutomount=no
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
ConstrainDevices=no
CONF
printf '%s\n' "${NAMES[@]}" >"$STATE/nodes"
cat >"$STATE/env.sh" <<ENV
# Source this to use the test cluster of $STATE (written by slurm-up.sh).
export SLURM_CONF=$SLURM_CONF
export BLUT_SLURM_STATE_DIR=$STATE
export BLUT_SLURM_NODES="${NAMES[*]}"
export BLUT_SLURM_PARTITION=debug
ENV
T_CONF=$(now)

# ---- daemons --------------------------------------------------------------------------------
start slurmctld "$STATE/log/slurmctld.out" /usr/sbin/slurmctld -D -f "$SLURM_CONF"
for n in "${NAMES[@]}"; do
    # in its spool directory: the slurmstepd it forks keep that working directory
    start_daemon "$STATE" "slurmd_$n" "$STATE/log/slurmd_$n.out" "$STATE/spool/d_$n" \
        /usr/sbin/slurmd -D -f "$SLURM_CONF" -N "$n"
done
all_idle() { [ "$(sinfo -h -N -o '%N %T' 2>/dev/null | grep -c ' idle$')" = "$NODES" ]; }
if ! wait_until 30 all_idle; then
    sinfo -N >&2 || true
    tail -n 20 "$STATE"/log/*.log >&2
    die "the nodes did not become idle within 30 s (state left in $STATE; slurm-down.sh cleans up)"
fi
T_IDLE=$(now)
if [ $WARMUP = 1 ]; then
    J=$(sbatch --parsable -o /dev/null -e /dev/null -J blut-warmup --wrap true)
    job_gone() { [ -z "$(squeue -h -j "$J" 2>/dev/null)" ]; }
    wait_until 60 job_gone || die "the warm-up job $J did not finish within 60 s"
fi
T_UP=$(now)

sinfo -N -o '%N %T %c %m'
printf 'slurm-up: %s node(s) up in %ss (packages %ss, munge %ss, accounting %ss, daemons to idle %ss, warm-up job %ss)\n' \
    "$NODES" "$(span "$T0" "$T_UP")" "$(span "$T0" "$T_APT")" "$(span "$T_APT" "$T_MUNGE")" \
    "$(span "$T_MUNGE" "$T_DBD")" "$(span "$T_CONF" "$T_IDLE")" "$(span "$T_IDLE" "$T_UP")"
echo "slurm-up: . $STATE/env.sh"
