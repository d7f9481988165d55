#!/usr/bin/env bash
# Profile the server under a `hubctl bench` scenario (docs/benchmarks.md, "Where the
# time goes"). A throwaway hub with 64 bench agents and the quotas lifted, on a temp
# database, durable mode unless DURABILITY=fast.
#
#   bash benches/profile.sh callgrind messaging   # user-space instructions per call
#   bash benches/profile.sh perf workflow         # cpu-clock profile by thread and path
#   bash benches/profile.sh strace messaging      # system calls per tool call
#
# CLIENTS (default 8 for callgrind, 64 otherwise) and SECONDS_EACH (15 / 5) override;
# TRACE_SECONDS (3) is how long strace counts; HUBCTL=path profiles that binary
# instead of building this checkout.
# Output goes to target/profile/. Needs valgrind, perf or strace on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOL=${1:?usage: profile.sh callgrind|perf|strace SCENARIO}
SC=${2:-messaging}
OUT=target/profile; mkdir -p "$OUT"
if [ -n "${HUBCTL:-}" ]; then
    BIN=$HUBCTL                      # another build, e.g. for an A/B of two commits
else
    cargo build --release --quiet
    BIN=$PWD/target/release/hubctl
fi
d=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$d"' EXIT
for i in $(seq 1 64); do echo "bench-$i=tok-bench-$i-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"; done > "$d/agents.env"
chmod 600 "$d/agents.env"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/operator.token"
printf 'send_rate_per_second: 1000000\nsend_burst: 1000000\nmax_inbox_messages: 1000000000\nmax_inbox_bytes: 1099511627776\nmax_in_flight_per_agent: 1000000\ndurability: %s\n' \
    "${DURABILITY:-durable}" > "$d/config.yaml"
serve=("$BIN" --config-dir "$d" serve --port 0 --db "$d/hub.db")
if [ "$TOOL" = callgrind ]; then
    CLIENTS=${CLIENTS:-8}; SECS=${SECONDS_EACH:-15}
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$SC" "${serve[@]}" > /dev/null 2> "$d/err.log" &
else
    CLIENTS=${CLIENTS:-64}; SECS=${SECONDS_EACH:-5}
    "${serve[@]}" > /dev/null 2> "$d/err.log" &
fi
pid=$!
for _ in $(seq 1 600); do [ -s "$d/hub.addr" ] && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$d/hub.addr" | head -1)
bench() { "$BIN" --config-dir "$d" --url "$url" bench --live --server-pid "$pid" --scenario "$SC" --clients "$CLIENTS" --seconds "$1" --json; }
calls() { curl -s -H "Authorization: Bearer $(cat "$d/operator.token")" "$url/metrics" | awk '/^agent_hub_tool_calls_total/ {s+=$2} END {print s+0}'; }
case "$TOOL" in
callgrind)
    bench 3 > /dev/null                      # warm-up, not counted
    callgrind_control -z "$pid" > /dev/null
    bench "$SECS" > "$OUT/callgrind.$SC.json"
    callgrind_control -d "$pid" > /dev/null
    n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['calls'])" "$OUT/callgrind.$SC.json")
    total=$(callgrind_annotate "$OUT/callgrind.$SC.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "$SC: $n calls, $((total / n)) instructions per call (user space)"
    echo "callgrind_annotate --inclusive=yes $OUT/callgrind.$SC.1 | less"
    ;;
perf)
    bench $((SECS + 3)) > "$OUT/perf.$SC.json" &
    sleep 1.5
    perf record -e cpu-clock -F 1999 -g -p "$pid" -o "$OUT/perf.$SC.data" -- sleep "$SECS" 2> /dev/null > /dev/null
    wait $!
    perf report -i "$OUT/perf.$SC.data" --no-children --sort comm,dso --stdio -g none 2> /dev/null | grep -v '^#' | grep -v '^$' | head -10
    perf report -i "$OUT/perf.$SC.data" --children --sort sym --stdio -g none --percent-limit 0.3 2> /dev/null |
        grep -E '__x64_sys_|finish_task_switch|eventfd_write' | head -12
    ;;
strace)
    TRACE=${TRACE_SECONDS:-3}
    bench $((TRACE + 3)) > /dev/null &
    sleep 1.5
    c0=$(calls)
    timeout "$TRACE" strace -c -f -p "$pid" -o "$OUT/strace.$SC.txt" 2> /dev/null || true
    c1=$(calls)
    wait $!
    n=$((c1 - c0))
    echo "$SC: $n tool calls while traced (strace slows the server: read the ratios)"
    awk -v n="$n" 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ {c = $4; printf "%-16s %8.2f per call\n", $NF, c / n}' \
        "$OUT/strace.$SC.txt" | sort -k2 -rn | head -12
    ;;
*) echo "profile.sh: unknown tool $TOOL (callgrind, perf or strace)" >&2; exit 2 ;;
esac
