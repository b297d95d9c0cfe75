# Shared helpers of the test-cluster scripts in this folder (sourced, not run).
#
# Every daemon a script starts is recorded in STATE_DIR/pids/NAME as "PID STARTTIME COMM",
# STARTTIME being field 22 of /proc/PID/stat. A record is only acted on while a live process
# still has that pid, start time and command name, so a stale record never hits an unrelated
# process that got the same pid later.

# shellcheck shell=bash

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

now() { date +%s.%N; }

# seconds from $1 to $2 (two `now` values), two decimals
span() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# the start time of process $1 (clock ticks since boot), or nothing
proc_start() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086  # split the fields on purpose
    set -- $stat
    echo "${20}"
}

# record_pid STATE_DIR NAME PID: remember a started daemon
record_pid() {
    local start comm
    start=$(proc_start "$3") || die "process $3 ($2) exited right after it started"
    comm=$(cat "/proc/$3/comm")
    mkdir -p "$1/pids"
    echo "$3 $start $comm" >"$1/pids/$2"
}

# recorded_pid STATE_DIR NAME: the recorded daemon's pid while that very process lives
recorded_pid() {
    local file="$1/pids/$2" pid start comm
    [ -s "$file" ] || return 1
    read -r pid start comm <"$file"
    [ "$(proc_start "$pid")" = "$start" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    echo "$pid"
}

# alive STATE_DIR NAME: whether the recorded daemon still runs
alive() { recorded_pid "$1" "$2" >/dev/null; }

# comm_is PID NAME: whether process PID's command name is NAME
comm_is() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# start_daemon STATE_DIR NAME LOGFILE WORKDIR COMMAND...: start COMMAND in WORKDIR, in the
# foreground of its own session (so it outlives the script and its terminal), and record it
start_daemon() {
    local dir=$1 name=$2 log=$3 cwd=$4 pid want
    shift 4
    (cd "$cwd" && exec setsid "$@" >"$log" 2>&1 </dev/null) &
    pid=$!
    # the recorded command name must be the daemon's, not that of the shell that execs it
    want=$(basename "$1" | cut -c1-15)
    wait_until 5 comm_is "$pid" "$want" || die "$name did not start (see $log)"
    record_pid "$dir" "$name" "$pid"
}

# wait_gone SECONDS PID...: wait until every pid has exited; SIGKILL what is left after SECONDS
wait_gone() {
    local limit=$1 pid i
    shift
    for pid in "$@"; do
        for ((i = 0; i < limit * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$0"): pid $pid ignored SIGTERM for ${limit}s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# stop_recorded STATE_DIR SIGNAL NAME...: signal the recorded daemons, wait for them to exit
# (SIGKILL after 15 s), and forget them. Records of processes already gone are dropped.
stop_recorded() {
    local dir=$1 sig=$2 name pid pids=()
    shift 2
    for name in "$@"; do
        if pid=$(recorded_pid "$dir" "$name"); then
            kill "-$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    if [ "${#pids[@]}" -gt 0 ]; then
        wait_gone 15 "${pids[@]}"
    fi
    for name in "$@"; do
        rm -f "$dir/pids/$name"
    done
}

# wait_until SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds; fail after SECONDS
wait_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
