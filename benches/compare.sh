#!/usr/bin/env bash
# benches/compare.sh: this hub, the Python reference agent-hub-mcp 0.2.1 and the
# floor of this machine (a bare actix-web handler answering a fixed JSON-RPC body),
# the same `hubctl bench` scenarios against all three in one run; then the figures
# and ratios replace the generated section of docs/benchmarks.md.
#
#   bash benches/compare.sh            # CLIENTS=64 SECONDS_EACH=5 by default
#
# Ours is benched as `hubctl bench` does by default: a throwaway hub, default
# settings (durable, access log off), with the per-agent quotas and send rate lifted
# (it says which). The reference ignores its documented environment variables and
# always uses ~/.config/agent-hub, ~/.local/share/agent-hub/hub.db and port 8765: it
# runs with HOME set to a temporary directory, and this script refuses to run when
# 8765 is taken, so that a real install is never touched. Its approvals go through
# its own hubctl (which writes SQLite directly).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-64}
SECONDS_EACH=${SECONDS_EACH:-5}
REF_VERSION=0.2.1
REF_PORT=8765
FLOOR_PORT=${FLOOR_PORT:-18765}

if (exec 3<>/dev/tcp/127.0.0.1/$REF_PORT) 2>/dev/null; then
    echo "port $REF_PORT is in use (a real agent-hub-mcp?); stop it first: this script never touches it" >&2
    exit 1
fi

cargo build --release --quiet
HUBCTL=$PWD/target/release/hubctl
VENV=$PWD/target/ref-venv
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('agent-hub-mcp') == '$REF_VERSION'" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "agent-hub-mcp==$REF_VERSION"
fi
# A fresh install looks for its schema three directories above storage.py, where the
# wheel does not put it: copy it there (inside the venv).
"$VENV/bin/python" - <<'PY'
import shutil
from pathlib import Path
import agent_hub.storage as storage
pkg = Path(storage.__file__).parent
want = pkg.parent.parent / "migrations" / "001_init.sql"
if not want.exists():
    want.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(pkg / "migrations" / "001_init.sql", want)
PY

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

REF_HOME=$WORK/ref-home
CFG=$REF_HOME/.config/agent-hub
mkdir -p "$CFG"
for i in $(seq 1 "$CLIENTS"); do echo "bench-$i=tok-bench-$i-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"; done > "$CFG/agents.env"
chmod 600 "$CFG/agents.env"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$CFG/operator.token"
: > "$CFG/config.yaml"

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

HOME=$REF_HOME "$VENV/bin/python" -m agent_hub.server >"$WORK/ref.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
"$HUBCTL" floor --port "$FLOOR_PORT" 2>"$WORK/floor.log" &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
wait_port "$REF_PORT"
wait_port "$FLOOR_PORT"

# bench NAME ARGS...: one run, its JSON kept as $WORK/NAME.json.
bench() {
    local name=$1
    shift
    echo "== $name" >&2
    "$HUBCTL" "$@" --json --clients "${C:-$CLIENTS}" --seconds "$SECONDS_EACH" >"$WORK/$name.json"
}
live() { echo --config-dir "$CFG" --url "http://127.0.0.1:$1" bench --live --server-pid "$2"; }
# The reference fails some calls under load (its errors are counted and reported,
# not fatal); ours and the floor must have none.
ref() { echo $(live $REF_PORT $REF_PID) --max-errors 1000000000; }

# Every reference agent is registered first (its foreign keys need the rows); twice,
# in case a registration failed under the load of the first.
bench ref-register $(ref) --register --tool agent_heartbeat
bench ref-register $(ref) --register --tool agent_heartbeat
bench floor-status $(live $FLOOR_PORT $FLOOR_PID) --tool hub_status
bench ours-status bench --scenario status
bench ref-status $(ref) --scenario status
bench ours-messaging bench --scenario messaging
bench ref-messaging $(ref) --scenario messaging
bench ours-workflow bench --scenario workflow
bench ref-workflow $(ref) --scenario workflow \
    --approve-with "env HOME=$REF_HOME $VENV/bin/hubctl approve"
C=256 bench ours-messaging-256 bench --scenario messaging
printf 'durability: fast\n' >"$WORK/fast.yaml"
C=256 bench ours-messaging-256-fast bench --scenario messaging --config "$WORK/fast.yaml"
C=256 bench ours-status-256 bench --scenario status
C=256 bench ours-locks-256 bench --scenario locks
C=8 bench ours-locks-8 bench --scenario locks

COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet || echo "+changes")
python3 - "$WORK" "$COMMIT" "$CLIENTS" "$SECONDS_EACH" <<'PY'
import json, sys, re, datetime
from pathlib import Path
work, commit, clients, secs = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
r = {p.stem: json.loads(p.read_text()) for p in work.glob("*.json")}
def cps(k): return r[k]["calls_per_sec"]
def cpu(k): return r[k].get("server_cpu_us_per_call")
def us(v): return f"{v:.0f} µs" if v is not None else "?"
def cyc(k): return r[k].get("cycles_per_sec", 0)
def cycle_cpu(k):
    c = r[k]; n = c.get("cycles") or 0
    return cpu(k) * c["calls"] / n if n and cpu(k) else None
lines = [
    "<!-- compare:begin (written by benches/compare.sh; do not edit by hand) -->",
    f"### Side by side (commit {commit}, {datetime.date.today()}, {clients} clients, {secs} s each)",
    "",
    "Release build, durable mode, default settings; ours with the per-agent quotas and",
    "send rate lifted (`hubctl bench` says so). CPU is the server's, per call.",
    "",
    "| scenario | ours | floor | reference | ours / reference |",
    "| --- | --- | --- | --- | --- |",
    f"| status | {cps('ours-status'):,.0f} calls/s, {us(cpu('ours-status'))} | {cps('floor-status'):,.0f} calls/s, {us(cpu('floor-status'))} | {cps('ref-status'):,.0f} calls/s, {us(cpu('ref-status'))} | {cps('ours-status')/cps('ref-status'):.0f}× |",
    f"| messaging (send, pull, ack) | {cps('ours-messaging'):,.0f} calls/s, {us(cpu('ours-messaging'))} | | {cps('ref-messaging'):,.0f} calls/s, {us(cpu('ref-messaging'))} | {cps('ours-messaging')/cps('ref-messaging'):.0f}× |",
    f"| workflow (teams of 7) | {cyc('ours-workflow'):.0f} cycles/s, {us(cpu('ours-workflow'))} per call, {(cycle_cpu('ours-workflow') or 0)/1000:.1f} ms per cycle | | {cyc('ref-workflow'):.1f} cycles/s, {(cycle_cpu('ref-workflow') or 0)/1000:.0f} ms per cycle | {cyc('ours-workflow')/max(cyc('ref-workflow'),1e-9):.0f}× cycles/s, 1/{(cycle_cpu('ref-workflow') or 0)/max(cycle_cpu('ours-workflow') or 1e-9,1e-9):.0f} CPU per cycle |",
    f"| messaging at 256 clients, durable vs fast | {cps('ours-messaging-256'):,.0f} vs {cps('ours-messaging-256-fast'):,.0f} calls/s ({100*cps('ours-messaging-256')/cps('ours-messaging-256-fast'):.0f}% of fast) | | | |",
    f"| p99 at 256 clients | status {r['ours-status-256']['p99_ms']:.1f} ms, messaging {r['ours-messaging-256']['p99_ms']:.1f} ms | | (at {clients}) status {r['ref-status']['p99_ms']:.0f} ms, messaging {r['ref-messaging']['p99_ms']:.0f} ms | |",
    f"| contended locks, 256 vs 8 clients | {cps('ours-locks-256'):,.0f} vs {cps('ours-locks-8'):,.0f} calls/s ({100*cps('ours-locks-256')/cps('ours-locks-8'):.0f}%) | | | |",
    "",
    "Failed calls: " + ("; ".join(f"{k}: {v['errors']} ({', '.join(f'{e} {n}' for e, n in v.get('errors_by_kind', {}).items())})" for k, v in sorted(r.items()) if v.get("errors")) or "none") + ".",
    "<!-- compare:end -->",
]
for k, v in sorted(r.items()):
    if v.get("errors"):
        print(f"{k}: first failure: {v.get('first_error')}", file=sys.stderr)
doc = Path("docs/benchmarks.md")
text = doc.read_text()
block = "\n".join(lines)
if "<!-- compare:begin" in text:
    text = re.sub(r"<!-- compare:begin.*?<!-- compare:end -->", lambda _: block, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n## Against the reference and the floor\n\n" + block + "\n"
doc.write_text(text)
print(block)
PY
