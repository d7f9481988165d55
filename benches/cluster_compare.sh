#!/bin/bash
# The same hub on SQLite and on PostgreSQL side by side (docs/cluster.md, "Figures"),
# then on PostgreSQL through a second node that forwards every call (the gateway
# hop), and as 2 and 3 nodes with the clients spread over all of them in turn (as
# a round-robin balancer does): hubctl bench --live at CLIENTS clients (64) for
# SECS seconds (10) per scenario, with the serving hub's CPU per call and its
# writer's commits/s and ops per commit.
#
#   cargo build --release
#   PG_URL=postgres://USER@HOST:PORT/DB bash benches/cluster_compare.sh
#
# SCENARIOS (default "status messaging workflow") and PASSES (default "sqlite pg
# gateway nodes2 nodes3") narrow the run; HUBCTL names another build's binary (to compare two
# versions in one sitting). PLACEMENT=spread runs the PostgreSQL passes with every
# node serving its share of the shards (cluster_placement: spread) instead of one
# serving and the others forwarding; commits/s and ops/commit are then the first
# node's only.
#
# PG_URL names an empty database (PGPASSWORD or a PGPASSFILE for the password);
# the hubs run on throwaway config dirs under /tmp/bench-{sqlite,pg}.
set -u
cd "$(dirname "$0")/.."
H=${HUBCTL:-$PWD/target/release/hubctl}
SCENARIOS=${SCENARIOS:-status messaging workflow}
PASSES=${PASSES:-sqlite pg gateway nodes2 nodes3}
: "${PG_URL:?set PG_URL=postgres://USER@HOST:PORT/DB (an empty database)}"
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-64}
PLACEMENT=${PLACEMENT:-standby}
run_store() {
  local store=$1 url=$2 via=${3:-direct}
  local D=/tmp/bench-$store; rm -rf $D; mkdir -p $D; chmod 700 $D
  : > $D/agents.env
  for i in $(seq 1 $CLIENTS); do echo "bench-$i=tok-bench-$i-0123456789abcdef" >> $D/agents.env; done
  chmod 600 $D/agents.env
  cat > $D/config.yaml <<CFG
send_rate_per_second: 1000000
send_burst: 1000000
max_inbox_messages: 1000000000
max_inbox_bytes: 1099511627776
max_in_flight_per_agent: 1000000
CFG
  local extra=()
  [ "$store" = pg ] && extra=(--store "$url" --node-id bench --cluster-placement "$PLACEMENT")
  HOME=$D $H serve --config-dir $D --host 127.0.0.1 --port 0 --db $D/hub.db "${extra[@]}" > $D/out.log 2> $D/err.log &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" $D/out.log && break; sleep 0.2; done
  local mcp=$(grep "listening on" $D/out.log | sed 's/.*listening on //')
  local base=${mcp%/mcp}
  for _ in $(seq 1 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' $base/readyz)" = 200 ] && break; sleep 0.2; done
  local tok=$(cat $D/operator.token)
  local target=$base gwpids=() also=() gws=0
  case $via in
    gateway) gws=1; store=pg-gw ;;
    nodes*) gws=$(( ${via#nodes} - 1 )); store=pg-$via ;;
  esac
  for g in $(seq 1 $gws); do
    # Another node on the same database, same agents and operator token: it stands
    # by and forwards to the serving one.
    local G=$D-gw$g; rm -rf $G; mkdir -p $G; chmod 700 $G
    # The cluster key too: nodes prove their calls to each other with it.
    cp -p $D/agents.env $D/config.yaml $D/operator.token $D/cluster.key $G/
    HOME=$G $H serve --config-dir $G --host 127.0.0.1 --port 0 --db $G/hub.db --store "$url" --node-id bench-gw$g --cluster-placement "$PLACEMENT" > $G/out.log 2> $G/err.log &
    gwpids+=($!)
    for _ in $(seq 1 100); do grep -q "listening on" $G/out.log && break; sleep 0.2; done
    local gw=$(grep "listening on" $G/out.log | sed 's/.*listening on //'); gw=${gw%/mcp}
    also+=(--also-url $gw)
    [ "$via" = gateway ] && { target=$gw; also=(); }
  done
  [ $gws -gt 0 ] && sleep 3  # their lease loops find the leader within a second
  for sc in $SCENARIOS; do
    local m0=$(curl -s -H "Authorization: Bearer $tok" $base/metrics | grep -E '^agent_hub_writer_batch_ops_(count|sum) ' | awk '{print $2}' | tr '\n' ' ')
    HOME=$D $H --config-dir $D --url $target bench --live --scenario $sc --clients $CLIENTS --seconds $SECS --server-pid $pid --max-errors 1000000 "${also[@]}" --json > $D/$sc.json 2> $D/$sc.err
    local m1=$(curl -s -H "Authorization: Bearer $tok" $base/metrics | grep -E '^agent_hub_writer_batch_ops_(count|sum) ' | awk '{print $2}' | tr '\n' ' ')
    python3 - "$store" "$sc" "$D/$sc.json" "$m0" "$m1" "$SECS" <<'PY'
import json,sys
store,sc,path,m0,m1,secs=sys.argv[1:]
try: r=json.load(open(path))
except Exception as e:
    print(store, sc, "bench failed:", open(path.replace('.json','.err')).read()[-500:]); sys.exit()
a=[float(x) for x in m0.split()]; b=[float(x) for x in m1.split()]
commits=b[1]-a[1] if len(a)>1 else float('nan'); ops=b[0]-a[0] if len(a)>1 else float('nan')
print(f"{store:7} {sc:10} calls/s {r['calls_per_sec']:9.0f}  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}  cpu/call {r.get('server_cpu_us_per_call')} us  commits/s {commits/float(secs):7.0f}  ops/commit {ops/max(commits,1):5.1f}" + (f"  cycles/s {r['cycles_per_sec']:.1f}" if r.get('cycles_per_sec') else ""))
PY
  done
  for g in "${gwpids[@]}"; do kill -TERM $g; wait $g; done
  kill -TERM $pid; wait $pid
}
for pass in $PASSES; do
  case $pass in
    sqlite) run_store sqlite "" ;;
    pg) run_store pg "$PG_URL" ;;
    gateway) run_store pg "$PG_URL" gateway ;;
    nodes2|nodes3) run_store pg "$PG_URL" $pass ;;
  esac
done
