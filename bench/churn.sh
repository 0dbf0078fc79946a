#!/usr/bin/env bash
# Connection-churn benchmark: each of C client slots loops connect, one SIZE-byte echo,
# close (echo_load --churn), against each server in turn, in one run. Server pinned to
# one CPU, client to the other, as in echo.sh. Per server: connections per second and
# connections per second of server CPU time (from /proc/PID/stat around each run),
# medians of the repetitions.
#
# Usage: bench/churn.sh [LABEL=COMMAND ...]
#   COMMAND as in echo.sh (the port is appended as its last argument). Without
#   arguments: gevent on both backends and the raw io_uring probe with single-shot and
#   with multishot accept (bench/src/bin/uring_probe.rs).
#
# Environment: CHURN_CONNS [64], CHURN_SECS [3], CHURN_REPS [3], CHURN_SIZE [64],
#   CHURN_PORT [18950], ECHO_SERVER_CPU [0], ECHO_CLIENT_CPU [1], ECHO_BUILD [1].
set -euo pipefail
cd "$(dirname "$0")/.."

conns=${CHURN_CONNS:-64}
secs=${CHURN_SECS:-3}
reps=${CHURN_REPS:-3}
size=${CHURN_SIZE:-64}
port=${CHURN_PORT:-18950}
server_cpu=${ECHO_SERVER_CPU:-0}
client_cpu=${ECHO_CLIENT_CPU:-1}
load=target/release/echo_load
gevent_bin=target/release/examples/echo_server
tck=$(getconf CLK_TCK)

if [[ ${ECHO_BUILD:-1} != 0 ]]; then
    cargo build --release -q -p gevent-bench --bins
    cargo build --release -q -p gevent --example echo_server
fi

if (($# > 0)); then
    servers=("$@")
else
    servers=(
        "gevent-uring=$gevent_bin"
        "gevent-epoll=env GEVENT_BACKEND=epoll $gevent_bin"
        "probe-accept-single=target/release/uring_probe --accept single"
        "probe-accept-multishot=target/release/uring_probe --accept multishot"
    )
fi

srv_pid=""
cleanup() { if [[ -n $srv_pid ]]; then kill -KILL "$srv_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

printf '%-24s %6s %14s %18s\n' server C conns/s conns/srv-cpu-s
for entry in "${servers[@]}"; do
    label=${entry%%=*}
    read -r -a cmd <<<"${entry#*=}"
    taskset -c "$server_cpu" "${cmd[@]}" "$port" 2>/dev/null &
    srv_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.05
    done
    rates=() effs=()
    for _ in $(seq "$reps"); do
        t0=$(cpu_ticks "$srv_pid")
        out=$(taskset -c "$client_cpu" "$load" --churn --addr "127.0.0.1:$port" --conns "$conns" --secs "$secs" --size "$size")
        t1=$(cpu_ticks "$srv_pid")
        rate=$(sed -n 's/.*conns_per_sec=\([0-9.]*\).*/\1/p' <<<"$out")
        all=$(sed -n 's/.*all_conns=\([0-9]*\).*/\1/p' <<<"$out")
        rates+=("$rate")
        effs+=("$(awk -v n="$all" -v t=$((t1 - t0)) -v hz="$tck" 'BEGIN {printf "%.0f", (t > 0 ? n * hz / t : 0)}')")
    done
    kill -TERM "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
    printf '%-24s %6s %14.0f %18s\n' "$label" "$conns" "$(printf '%s\n' "${rates[@]}" | median)" \
        "$(printf '%s\n' "${effs[@]}" | median)"
    port=$((port + 1))
done
