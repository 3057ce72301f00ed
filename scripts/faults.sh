#!/usr/bin/env bash
# The fault suite: one fault at a time against a busy muster, each followed by a reconcile.
#
# Runs on an isolated set of services (its own Kafka, registry and PostgreSQL cluster, on ports
# of their own, started if needed), so a broker restart disturbs no test on the usual ones.
# Each worker kind runs as its own process under a supervisor that restarts it (as systemd
# would); the simulator serves the upstreams (polled every second, pushing check-ins) and a
# partner's webhook receiver; a reader asks the partner API five times a second. Per fault:
# inject it, wait for its end, measure the seconds until fresh data is visible (a snapshot
# polled after the end, in the API; for a hung receiver, a delivery), then `muster reconcile`
# (nothing lost or doubled from the upstreams' answers through topics and tables to the
# receiver). Prints a line per fault and, with --report, writes the table as markdown.
#
#   scripts/faults.sh [--short] [--repeat N] [--soak DURATION] [--report FILE] FAULT... | all
#
#   kill-ingest kill-process kill-project kill-webhooks kill-insights kill-api
#                   kill -9 of that worker (its supervisor starts it again)
#   broker-restart  kill -9 of the broker, down 10 s (--short: 5), started again
#   pg-restart      restart (fast) of the PostgreSQL cluster
#   registry-down   kill -9 of the schema registry, down 30 s (--short: 10), started again
#   upstream-hang   one event's service holds every request for 30 s (--short: 10)
#   receiver-hang   the partner's webhook receiver holds every request for 30 s (--short: 10)
#   --soak 30m      no faults for that long, resident memory of each worker sampled every 10 s:
#                   the slope after the first sixth (warm-up), and the errors logged
#   --short         30 events instead of 200, shorter outages, projections compared with a
#                   rebuild after each fault (else once, at the end): the test command's form
#
# Environment: MUSTER_FAULTS_HOME [~/.cache/muster/faults] (services' data, each run's logs);
# MUSTER_FAULTS_BIN [a copy of ${CARGO_TARGET_DIR:-target}/debug/muster]; MUSTER_FAULTS_TIMEOUT
# [180] seconds to wait for recovery; MUSTER_FAULTS_KEEP_SERVICES=1 leaves the services up.
# Ports: Kafka 19092/19093, registry 18081/19081, PostgreSQL 15432 (cluster "faults"), API
# 18080, workers' ops 18091-18096, simulator 19100. Loopback only; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

all_faults=(kill-ingest kill-process kill-project kill-webhooks kill-insights kill-api
  broker-restart pg-restart registry-down upstream-hang receiver-hang)
usage() { sed -n '14,15p' "$0" | sed 's/^# *//' >&2; exit 2; }
command="scripts/faults.sh $*"
repeat=1 short=0 soak="" report="" faults=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --short) short=1; shift ;;
    --soak) soak=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    all) faults+=("${all_faults[@]}"); shift ;;
    *) [[ " ${all_faults[*]} " == *" $1 "* ]] || usage; faults+=("$1"); shift ;;
  esac
done
[ ${#faults[@]} -gt 0 ] || [ -n "$soak" ] || usage
# The long form rebuilds the projections once, at the end: a rebuild reads every topic from
# its start, minutes at 200 services after a quarter of an hour (a debug build).
if [ "$short" = 1 ]; then events=30 down_secs=5 outage=10 rebuild=(); else
  events=200 down_secs=10 outage=30 rebuild=(--no-projections); fi

main_home="${MUSTER_HOME:-$HOME/.cache/muster}"
export MUSTER_HOME="${MUSTER_FAULTS_HOME:-$main_home/faults}"
export MUSTER_KAFKA_PORT=19092 MUSTER_KAFKA_CONTROLLER_PORT=19093 MUSTER_REGISTRY_PORT=18081 \
  MUSTER_REGISTRY_MGMT_PORT=19081 MUSTER_PG_PORT=15432 MUSTER_PG_CLUSTER=faults
api="http://127.0.0.1:18080"
sim="http://127.0.0.1:19100"
timeout="${MUSTER_FAULTS_TIMEOUT:-180}"
id=$(date +%Y%m%d%H%M%S)
run="$MUSTER_HOME/runs/$id"
mkdir -p "$run"
[ -e "$MUSTER_HOME/downloads" ] || ln -s "$main_home/downloads" "$MUSTER_HOME/downloads"

log() { printf '[faults] %s\n' "$*" >&2; }
services() { "$repo/scripts/services.sh" "$@"; }
now() { date +%s.%N; }
now_ms() { date +%s%3N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
post() { curl -fsS -X POST -H 'content-type: application/json' -d "$2" "${@:3}" "$1"; }

started_services=0
pids=()
cleanup() {
  local pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$started_services" = 1 ] && [ "${MUSTER_FAULTS_KEEP_SERVICES:-0}" != 1 ]; then
    services down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

for p in 18080 19100 18091 18092 18093 18094 18095 18096; do
  ! port_open "$p" || { log "port $p is taken (another run of this script?)"; exit 1; }
done
if ! services status >/dev/null 2>&1; then
  log "starting the isolated services in $MUSTER_HOME (Kafka's data wiped: earlier runs' topics)"
  started_services=1
  rm -rf "$MUSTER_HOME/data/kafka" "$MUSTER_HOME/data/kafka-server.properties"
  services up >"$run/services-up.log" 2>&1 || { tail -20 "$run/services-up.log" >&2; exit 1; }
fi
eval "$(services env)"

bin="${MUSTER_FAULTS_BIN:-}"
if [ -z "$bin" ]; then
  # a copy, so a build meanwhile does not replace the binary under the running pipeline
  bin="$run/muster"
  cp "${CARGO_TARGET_DIR:-target}/debug/muster" "$bin"
fi

# This run's own topics, groups and database; earlier runs' databases are dropped.
export MUSTER__KAFKA__TOPIC_PREFIX="faults-$id." MUSTER__KAFKA__GROUP_PREFIX="faults-$id"
db="muster_faults_$id"
export MUSTER_DATABASE_URL="${MUSTER_DATABASE_URL%/*}/$db"
psql_admin() { psql -q -v ON_ERROR_STOP=1 "${MUSTER_DATABASE_URL%/*}/postgres" "$@"; }
for old in $(psql_admin -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'muster_faults_%'"); do
  psql_admin -c "DROP DATABASE \"$old\" WITH (FORCE)"
done
psql_admin -c "CREATE DATABASE \"$db\""

export MUSTER_DEVELOPMENT=true MUSTER_LOG="${MUSTER_LOG:-info,rdkafka=warn}" MUSTER_API_ADDR=127.0.0.1:18080
export MUSTER_ADMIN_TOKEN="faults-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
export MUSTER__WEBHOOKS__ALLOW_NETWORKS='["127.0.0.1/32"]' MUSTER__WEBHOOKS__JITTER=0 \
  MUSTER__WEBHOOKS__REQUEST_TIMEOUT=5s MUSTER__INGEST__REQUEST_TIMEOUT=5s
"$bin" migrate >"$run/migrate.log" 2>&1 || { cat "$run/migrate.log" >&2; exit 1; }

# A worker under a supervisor that starts it again 0.5 s after it ends; its pid in $run/KIND.pid.
supervise() {
  local kind=$1 ops=$2
  shift 2
  (
    child=
    trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM
    while :; do
      MUSTER__OPS__ADDR="127.0.0.1:$ops" "$bin" "$@" >>"$run/$kind.log" 2>&1 &
      child=$!
      echo "$child" >"$run/$kind.pid"
      wait "$child" || echo "[faults] $kind ended ($?); starting it again" >>"$run/$kind.log"
      sleep 0.5
    done
  ) 2>>"$run/$kind.log" &  # the shell's "Killed" notices go with the worker's log
  pids+=($!)
}
workers=(api ingest process project webhooks insights)
for i in "${!workers[@]}"; do supervise "${workers[$i]}" $((18091 + i)) "${workers[$i]}"; done
for _ in $(seq 240); do curl -fsS -o /dev/null "$api/readyz" 2>/dev/null && break; sleep 0.5; done
curl -fsS -o /dev/null "$api/readyz" || { tail -30 "$run/api.log" >&2; exit 1; }

"$bin" simulate --events "$events" --interval 1 --cycle 2m --addr "${sim#http://}" \
  --register-with "$api" --push-checkins >"$run/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do curl -fsS -o /dev/null "$sim/services" 2>/dev/null && break; sleep 0.5; done
event_ids=$(curl -fsS "$sim/services" | python3 -c 'import json, sys; print(json.dumps([s["eventId"] for s in json.load(sys.stdin)]))')
key=$(post "$api/api/admin/partners" "{\"name\": \"Fault suite\", \"tier\": \"premium\", \"eventIds\": $event_ids}" \
  -H "authorization: Bearer $MUSTER_ADMIN_TOKEN" | python3 -c 'import json, sys; print(json.load(sys.stdin)["apiKey"])')
post "$api/api/partner/webhooks" "{\"url\": \"$sim/hooks/partner\", \"eventTypes\": [\"alert.raised\", \"alert.resolved\"], \"retrySchedule\": [0, 1, 1, 2, 2, 5, 5, 5, 10, 10, 10, 10]}" \
  -H "x-api-key: $key" >/dev/null
first_event=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])[0])' "$event_ids")
# The reader: what a partner's dashboard asks, five times a second; one status code a line.
(while :; do
  curl -s -o /dev/null -w '%{http_code}\n' -m 2 -H "x-api-key: $key" \
    "$api/api/partner/events/$first_event/attendance" || true
  sleep 0.2
done) >"$run/reader.log" 2>/dev/null &
pids+=($!)

# The newest observedAt in event_realtime (of event $1, or of any), epoch s; 0 without one.
newest() {
  curl -fsS -m 2 "$api/api/public/events" 2>/dev/null | python3 -c '
import datetime, json, sys
try:
    only = sys.argv[1] if len(sys.argv) > 1 else None
    t = [datetime.datetime.fromisoformat(e["observedAt"].replace("Z", "+00:00")).timestamp()
         for e in json.load(sys.stdin)["events"]
         if e.get("observedAt") and only in (None, e["eventId"])]
    print(max(t))
except Exception:
    print(0)' "$@"
}
# The newest arrival at the partner's receiver, epoch s; 0 without one.
newest_delivery() {
  curl -fsS -m 2 "$sim/hooks/partner" 2>/dev/null |
    python3 -c 'import json, sys; print(max([r["at"] / 1000 for r in json.load(sys.stdin)] or [0]))'
}
# Seconds from $1 (epoch s) until `${2:-newest}` reaches it, or "none" after the timeout.
fresh_after() {
  local since=$1 probe=${2:-newest} deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    if awk -v n="$($probe "${@:3}")" -v s="$since" 'BEGIN { exit !(n >= s) }'; then
      elapsed "$since" "$(now)"
      return
    fi
    sleep 0.2
  done
  echo none
}
steady() {
  [ "$(fresh_after "$(now)")" != none ] || { log "no fresh data; see $run/*.log"; exit 1; }
}

pid_of() { cat "$MUSTER_HOME/run/$1.pid"; }
pg_ver() { pg_lsclusters -h | awk -v c="$MUSTER_PG_CLUSTER" '$2 == c { print $1; exit }'; }

# Each fault: inject it, wait for its end, echo the epoch time it ended.
kill_worker() {
  kill -KILL "$(cat "$run/$1.pid")"
  # Taken after the signal, not before: a snapshot answered between the two instants may have
  # died with ingest too (one answered 2 ms after a time taken before the kill was counted lost).
  [ "$1" != ingest ] || now_ms >>"$run/ingest-kills"
  now
}
fault_broker_restart() {
  kill -KILL "$(pid_of kafka)"
  sleep "$down_secs"
  services up >>"$run/services-up.log" 2>&1 &
  until port_open "$MUSTER_KAFKA_PORT"; do sleep 0.1; done
  now
  wait $! || { log "the broker did not start again"; exit 1; }
}
fault_pg_restart() {
  local ver
  ver=$(pg_ver)
  if [ "$(id -u)" -eq 0 ]; then pg_ctlcluster "$ver" "$MUSTER_PG_CLUSTER" restart -m fast >&2; else
    sudo pg_ctlcluster "$ver" "$MUSTER_PG_CLUSTER" restart -m fast >&2; fi
  until pg_isready -q -h 127.0.0.1 -p "$MUSTER_PG_PORT"; do sleep 0.1; done
  now
}
fault_registry_down() {
  kill -KILL "$(pid_of registry)"
  sleep "$outage"
  services up >>"$run/services-up.log" 2>&1 || { log "the registry did not start again"; exit 1; }
  now
}
fault_upstream_hang() {
  post "$sim/events/$first_event/mode" '{"mode": "hang"}' >/dev/null
  sleep "$outage"
  post "$sim/events/$first_event/mode" '{"mode": "healthy"}' >/dev/null
  now
}
fault_receiver_hang() {
  post "$sim/hooks/partner/mode" '{"hang": true}' >/dev/null
  sleep "$outage"
  post "$sim/hooks/partner/mode" '{"hang": false}' >/dev/null
  now
}

results="$run/results.jsonl"
: >"$results"
failed=0
log "run $id: $events events; logs in $run"
steady
for fault in "${faults[@]}"; do
  for ((i = 1; i <= repeat; i++)); do
    reader_before=$(wc -l <"$run/reader.log")
    case "$fault" in
      kill-*) back=$(kill_worker "${fault#kill-}"); probe=(newest) ;;
      upstream-hang) back=$(fault_upstream_hang); probe=(newest "$first_event") ;;
      receiver-hang) back=$(fault_receiver_hang); probe=(newest_delivery) ;;
      *) back=$("fault_${fault//-/_}"); probe=(newest) ;;
    esac
    secs=$(fresh_after "$back" "${probe[@]}")
    reader_errors=$(tail -n +$((reader_before + 1)) "$run/reader.log" | grep -cv '^200$' || true)
    kills=$(paste -sd, "$run/ingest-kills" 2>/dev/null || true)
    verdict=passed
    rlog="$run/reconcile-$fault-$i.log"
    "$bin" reconcile --simulator "$sim" ${kills:+--ingest-killed-at "$kills"} "${rebuild[@]}" \
      >"$run/reconcile.out" 2>"$rlog" || verdict=FAILED
    tail -1 "$run/reconcile.out" >"$run/reconcile.json"
    [ "$secs" != none ] || verdict=FAILED
    [ "$verdict" = passed ] || failed=1
    python3 -c 'import json, sys
f, n, secs, errors, verdict, path = sys.argv[1:]
try:
    rec = json.load(open(path))
except Exception:
    rec = None
print(json.dumps({"fault": f, "n": int(n), "recoverySecs": None if secs == "none" else float(secs),
                  "readerErrors": int(errors), "verdict": verdict, "reconcile": rec}))' \
      "$fault" "$i" "$secs" "$reader_errors" "$verdict" "$run/reconcile.json" >>"$results"
    echo "$fault #$i: back in ${secs}s, reader errors $reader_errors, reconcile $verdict: $(grep -a '^reconcile: \(passed\|FAILED\)' "$rlog" | tail -1)"
    [ "$verdict" = passed ] || grep -a '^reconcile: ' "$rlog" | grep -v 'not there yet' | tail -21 >&2
    steady
  done
done

if [ -n "$soak" ]; then
  secs=$(python3 -c 'import re, sys
m = re.fullmatch(r"(\d+)([smh]?)", sys.argv[1]) or sys.exit("--soak: like 30m, 600s or 1h")
print(int(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[m[2]])' "$soak")
  log "soak: $soak, resident memory every 10 s"
  : >"$run/rss.csv"
  declare -A before
  for w in "${workers[@]}"; do before[$w]=$(wc -l <"$run/$w.log"); done
  end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    for w in "${workers[@]}"; do
      echo "$SECONDS,$w,$(ps -o rss= -p "$(cat "$run/$w.pid")" 2>/dev/null | tr -d ' ' || echo)" >>"$run/rss.csv"
    done
    sleep 10
  done
  verdict=passed
  "$bin" reconcile --simulator "$sim" >"$run/reconcile.out" 2>"$run/reconcile-soak.log" || verdict=FAILED
  tail -1 "$run/reconcile.out" >"$run/reconcile.json"
  [ "$verdict" = passed ] || failed=1
  # what the workers logged as errors during the soak (logs may be coloured)
  for w in "${workers[@]}"; do tail -n +$((before[$w] + 1)) "$run/$w.log" | grep -a 'ERROR' || true; done \
    >"$run/soak-errors.log"
  errors=$(wc -l <"$run/soak-errors.log")
  python3 "$repo/scripts/faults-report.py" soak "$run/rss.csv" "$secs" "$errors" "$verdict" "$run/reconcile.json" >>"$results"
  tail -1 "$results"
fi

if [ ${#rebuild[@]} -gt 0 ] && [ -z "$soak" ] && [ ${#faults[@]} -gt 0 ]; then
  log "the projections against a rebuild from their topics"
  "$bin" reconcile --simulator "$sim" >"$run/reconcile.out" 2>"$run/reconcile-end.log" || failed=1
  grep -a '^reconcile: \(passed\|FAILED\)' "$run/reconcile-end.log" | tail -1
fi
if [ -n "$report" ]; then
  python3 "$repo/scripts/faults-report.py" report "$results" "$command" >"$report"
  log "wrote $report"
fi
exit "$failed"
