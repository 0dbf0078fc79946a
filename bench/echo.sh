#!/usr/bin/env bash
# Echo benchmark: gevent's echo server against one-thread tokio, may and monoio echo
# servers, in one run. Each server runs pinned to one CPU, the load client
# (bench/src/bin/echo_load.rs) to another. Per server: 64-byte round trips at each
# connection count (median of the repetitions), then a bulk-transfer run; the server's
# CPU time is read from /proc/PID/stat around each client run and its RSS (VmRSS) is
# sampled near the end of each connection count's last run, while the connections are open.
#
# Usage: bench/echo.sh [LABEL=COMMAND ...]
#   COMMAND is split on spaces (it may start with `env VAR=value`), the port is appended
#   as its last argument, and it must listen on 127.0.0.1:PORT and die on SIGTERM.
#   Without arguments: tokio, may, monoio, gevent-uring, gevent-epoll and gevent-uring-rs
#   (io_uring with GEVENT_RING_SENDS=1: small stream sends posted, larger ones through the
#   ring, see hub::set_ring_sends; the gevent entries
#   run target/release/examples/echo_server, and are skipped if it is missing).
#
# Environment (defaults in brackets; ECHO_QUICK=1 changes the defaults to a smoke run of
# about 5 s per server: ECHO_SECS=1 ECHO_REPS=1 ECHO_BULK_SECS=1):
#   ECHO_SERVERS      labels to run, space-separated [all]
#   ECHO_CONNS        connection counts [64 1000]     ECHO_SIZE     round-trip bytes [64]
#   ECHO_SECS         seconds per run [5]              ECHO_REPS     repetitions [3]
#   ECHO_WARMUP       uncounted seconds first [0.5]    ECHO_BULK_SECS  [ECHO_SECS; 0 skips bulk]
#   ECHO_BULK_CONNS   bulk connections [4]             ECHO_BULK_CHUNK  bytes per write [1048576]
#   ECHO_SERVER_CPU   [0]   ECHO_CLIENT_CPU [1]        ECHO_PORT     first port [18701]
#   ECHO_BUILD        0 to skip `cargo build` [1]      ECHO_LOG      client output log
#   ECHO_ROUNDS       rounds over all servers [1]: each round starts every server in turn
#                     for ECHO_REPS runs per connection count; medians are over all rounds.
#                     On a machine whose speed drifts, several short rounds spread the
#                     drift over every server instead of charging it to the last ones.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${ECHO_QUICK:-0}
secs=${ECHO_SECS:-$([[ $quick == 1 ]] && echo 1 || echo 5)}
reps=${ECHO_REPS:-$([[ $quick == 1 ]] && echo 1 || echo 3)}
bulk_secs=${ECHO_BULK_SECS:-$secs}
warmup=${ECHO_WARMUP:-0.5}
conns_list=${ECHO_CONNS:-64 1000}
size=${ECHO_SIZE:-64}
bulk_conns=${ECHO_BULK_CONNS:-4}
bulk_chunk=${ECHO_BULK_CHUNK:-1048576}
server_cpu=${ECHO_SERVER_CPU:-0}
client_cpu=${ECHO_CLIENT_CPU:-1}
port=${ECHO_PORT:-18701}
only=${ECHO_SERVERS:-}
rounds=${ECHO_ROUNDS:-1}
log=${ECHO_LOG:-target/echo-bench.log}
load=target/release/echo_load
gevent_bin=target/release/examples/echo_server
tck=$(getconf CLK_TCK)

if [[ ${ECHO_BUILD:-1} != 0 ]]; then
    # Quiet unless it fails (warnings of the gevent crate, a path dependency, would show).
    build_log=$(mktemp)
    if ! cargo build --release -p gevent-bench --bins >"$build_log" 2>&1; then
        cat "$build_log" >&2
        rm -f "$build_log"
        exit 1
    fi
    rm -f "$build_log"
    if [[ -f examples/echo_server.rs ]]; then
        cargo build --release -q -p gevent --example echo_server >/dev/null 2>&1 ||
            echo "echo.sh: note: building examples/echo_server failed; gevent entries use what is there" >&2
    fi
fi
[[ -x $load ]] || { echo "echo.sh: $load missing (cargo build --release -p gevent-bench --bins)" >&2; exit 1; }

if (($# > 0)); then
    servers=("$@")
else
    servers=(
        "tokio=target/release/echo_tokio"
        "may=target/release/echo_may"
        "monoio=target/release/echo_monoio"
        "gevent-uring=$gevent_bin"
        "gevent-epoll=env GEVENT_BACKEND=epoll $gevent_bin"
        "gevent-uring-rs=env GEVENT_RING_SENDS=1 $gevent_bin"
    )
fi

# --- helpers ---------------------------------------------------------------------------
srv_pid=""
cleanup() { if [[ -n $srv_pid ]]; then kill -KILL "$srv_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# utime + stime in clock ticks (fields 14, 15; the comm field may hold spaces).
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
median() { tr ' ' '\n' <<<"$*" | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "-") }'; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\", ($1) }"; }
# The program a command runs: the first word after `env` and VAR=value assignments.
prog_of() {
    local w
    for w in "$@"; do
        [[ $w == env || $w == *=* ]] && continue
        echo "$w"
        return
    done
}

start_server() { # label, words...
    local label=$1
    shift
    while accepts "$port"; do port=$((port + 1)); done
    taskset -c "$server_cpu" "$@" "$port" >>"$log" 2>&1 &
    srv_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        accepts "$port" && return 0
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "echo.sh: $label did not start listening on port $port" >&2
    stop_server
    return 1
}

stop_server() {
    local i
    kill -TERM "$srv_pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$srv_pid" 2>/dev/null; then
        echo "echo.sh: server $srv_pid ignored SIGTERM; killing it" >&2
        kill -KILL "$srv_pid" 2>/dev/null || true
    fi
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
    port=$((port + 1))
}

# One client run: sets $out (the client's line), $cpu_s (server CPU seconds during it)
# and, if $1 is 1, $rss (server VmRSS in kB sampled near its end).
client() {
    local sample_rss=$1 run_secs=$2
    shift 2
    local c0 c1 cpid tmp
    tmp=$(mktemp)
    c0=$(cpu_ticks "$srv_pid")
    taskset -c "$client_cpu" "$load" --addr "127.0.0.1:$port" --warmup "$warmup" --secs "$run_secs" "$@" >"$tmp" &
    cpid=$!
    if [[ $sample_rss == 1 ]]; then
        sleep "$(calc "$warmup + $run_secs * 0.8" 3)"
        rss=$(rss_kb "$srv_pid" || echo 0)
    fi
    if ! wait "$cpid"; then
        out=""
        rm -f "$tmp"
        return 1
    fi
    c1=$(cpu_ticks "$srv_pid")
    out=$(cat "$tmp")
    rm -f "$tmp"
    cpu_s=$(calc "($c1 - $c0) / $tck" 3)
    echo "$label port=$port srv_cpu_s=$cpu_s $out" >>"$log"
}

# Percent of all CPUs busy over 0.5 s, from /proc/stat.
busy_pct() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 0.5
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[1] - x[1] + y[2] - x[2]; printf "%.0f", d ? 100 * (y[1] - x[1]) / d : 0 }'
}

# --- run -------------------------------------------------------------------------------
: >"$log"
notes=()
# Per "label|C" key, space-separated samples gathered over all rounds (keys in first-seen
# order in `keys`); the bulk figures per label.
declare -A acc_rtt acc_cpu acc_util acc_cli acc_p50 acc_p99 acc_rss acc_bulk
# Per round: "label|C|round" -> median rtt/srv-cpu-s, "label|round" -> bulk MB/s (for the
# paired ratios).
declare -A round_cpu round_bulk
keys=()
echo "echo.sh: secs=$secs reps=$reps rounds=$rounds warmup=$warmup conns=($conns_list) size=$size bulk=${bulk_conns}x${bulk_chunk}B/${bulk_secs}s; server on CPU $server_cpu, client on CPU $client_cpu; log $log" >&2
for ((round = 1; round <= rounds; round++)); do
for entry in "${servers[@]}"; do
    label=${entry%%=*}
    read -ra cmd <<<"${entry#*=}"
    if [[ -n $only && " $only " != *" $label "* ]]; then continue; fi
    prog=$(prog_of "${cmd[@]}")
    if ! command -v "$prog" >/dev/null 2>&1; then
        notes+=("$label: skipped, $prog not built")
        continue
    fi
    busy=$(busy_pct)
    if ((busy > 10)); then
        echo "echo.sh: warning: the machine is ${busy}% busy before $label starts; numbers will be noisy" >&2
        notes+=("machine ${busy}% busy before $label started")
    fi
    echo "echo.sh: $label (round $round/$rounds)" >&2
    start_server "$label" "${cmd[@]}" || { notes+=("$label: failed to start"); continue; }
    failed=""
    bulk="-"
    # Bulk first, so it is reported on the server's first row.
    if [[ $bulk_secs == 0 ]]; then
        : # bulk skipped
    elif client 0 "$bulk_secs" --conns "$bulk_conns" --chunk "$bulk_chunk" --bulk; then
        bulk=$(kv mb_per_sec "$out")
    else
        failed="bulk run failed"
    fi
    acc_bulk[$label]+=" $bulk"
    for c in $conns_list; do
        [[ -n $failed ]] && break
        key="$label|$c"
        [[ -v "acc_rtt[$key]" ]] || keys+=("$key")
        rtts="" per_cpu="" util="" cli="" p50s="" p99s="" rss=0
        for ((r = 1; r <= reps; r++)); do
            if ! client "$([[ $r == "$reps" ]] && echo 1 || echo 0)" "$secs" --conns "$c" --size "$size"; then
                failed="C=$c run failed"
                break
            fi
            all_rtt=$(kv all_rtt "$out")
            all_secs=$(kv all_secs "$out")
            rtts+=" $(kv rtt_per_sec "$out")"
            p50s+=" $(kv p50_us "$out")"
            p99s+=" $(kv p99_us "$out")"
            if [[ $(calc "$cpu_s > 0" 0) == 1 ]]; then per_cpu+=" $(calc "$all_rtt / $cpu_s")"; fi
            util+=" $(calc "100 * $cpu_s / $all_secs")"
            cli+=" $(kv cpu_pct "$out")"
        done
        [[ -n $failed ]] && break
        acc_rtt[$key]+="$rtts" acc_cpu[$key]+="$per_cpu" acc_util[$key]+="$util" acc_cli[$key]+="$cli"
        acc_p50[$key]+="$p50s" acc_p99[$key]+="$p99s" acc_rss[$key]+=" $rss"
        round_cpu["$key|$round"]=$(median "$per_cpu")
    done
    round_bulk["$label|$round"]=$bulk
    if [[ -n $failed ]] || ! kill -0 "$srv_pid" 2>/dev/null; then
        notes+=("$label: ${failed:-server died}; see $log")
    fi
    stop_server
done
done

rows=()
for key in "${keys[@]}"; do
    label=${key%%|*}
    c=${key#*|}
    # Bulk is reported on a server's first row.
    bulk=""
    if [[ $key == "${label}|${conns_list%% *}" ]]; then bulk=$(median "${acc_bulk[$label]//-/}"); fi
    rows+=("$key|$(median "${acc_rtt[$key]}")|$(median "${acc_cpu[$key]}")|$(median "${acc_util[$key]}")|$(median "${acc_cli[$key]}")|$(median "${acc_p50[$key]}")|$(median "${acc_p99[$key]}")|$bulk|$(calc "$(median "${acc_rss[$key]}") / 1024" 1)")
done

# --- table -----------------------------------------------------------------------------
echo
echo "${size}-byte round trips: medians of $rounds round(s) x $reps x ${secs}s runs (after ${warmup}s warm-up); bulk: ${bulk_conns} conns x ${bulk_chunk}-byte writes, ${bulk_secs}s; MB = 1e6 bytes echoed"
echo "rtt/srv-cpu-s: round trips per second of server CPU time; srv-cpu%, cli-cpu%: CPU use of server and client (both near 100: server-bound; server well below 100 with the client near 100: client-bound; both low: other load on the machine)"
fmt="%-13s %5s %10s %14s %9s %9s %9s %9s %10s %8s\n"
# shellcheck disable=SC2059
printf "$fmt" server C rtt/s rtt/srv-cpu-s srv-cpu% cli-cpu% p50_us p99_us bulk_MB/s RSS_MiB
for row in "${rows[@]}"; do
    IFS='|' read -r l c a b u cl p5 p9 bk rs <<<"$row"
    # shellcheck disable=SC2059
    printf "$fmt" "$l" "$c" "$a" "$b" "$u" "$cl" "$p5" "$p9" "$bk" "$rs"
done

# --- paired ratios ---------------------------------------------------------------------
# Each round runs every server back to back, so a ratio within one round cancels most of
# the machine's drift; the median over rounds is steadier than the ratio of medians.
ratio() { # numerator, denominator: the ratio, or nothing if either is missing
    [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && [[ $(calc "$2 > 0" 0) == 1 ]] && calc "$1 / $2" 3
}
ref=${keys[0]%%|*}
if ((rounds > 1)) && [[ -n $ref ]]; then
    echo
    echo "paired ratios against $ref: median over the $rounds rounds of (server / $ref) within each round"
    header="server       "
    for c in $conns_list; do header+=" $(printf '%14s' "C=$c rtt/cpu")"; done
    echo "$header $(printf '%10s' bulk)"
    for key in "${keys[@]}"; do
        label=${key%%|*}
        [[ $key == "${label}|${conns_list%% *}" ]] || continue
        line=$(printf '%-13s' "$label")
        for c in $conns_list; do
            rs=""
            for ((r = 1; r <= rounds; r++)); do
                rs+=" $(ratio "${round_cpu["$label|$c|$r"]:-}" "${round_cpu["$ref|$c|$r"]:-}" || true)"
            done
            line+=" $(printf '%14s' "$(median "$rs")")"
        done
        bs=""
        for ((r = 1; r <= rounds; r++)); do
            bs+=" $(ratio "${round_bulk["$label|$r"]:-}" "${round_bulk["$ref|$r"]:-}" || true)"
        done
        echo "$line $(printf '%10s' "$(median "$bs")")"
    done
fi
for n in "${notes[@]}"; do echo "note: $n"; done
