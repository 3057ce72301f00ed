#!/usr/bin/env bash
# One measured fault at a time against an isolated set of services (its own Kafka, registry
# and PostgreSQL cluster, on ports of their own), so a broker restart disturbs no test running
# on the usual ones. Starts that set if needed, then muster (`all`) and the simulator, waits for
# fresh data, and per fault: injects it, waits for it to end, and measures the seconds from
# its end until a snapshot polled after it is visible in the API (`/api/public/events`,
# i.e. `event_realtime`). Prints one line per fault; stops what it started; loopback only.
#
#   scripts/faults.sh [--repeat N] broker-restart|pg-restart|registry-down ...
#
#   broker-restart  kill -9 of the broker, down MUSTER_FAULTS_DOWN s (default 10), started again
#   pg-restart      pg_ctlcluster restart of the isolated cluster
#   registry-down   kill -9 of the schema registry, down 30 s, started again
#
# Environment (defaults in brackets):
#   MUSTER_FAULTS_HOME [~/.cache/muster/faults]  services' data, logs and this run's files
#   MUSTER_FAULTS_BIN  [copy of ${CARGO_TARGET_DIR:-target}/debug/muster]  the muster binary
#   MUSTER_FAULTS_TIMEOUT [180]  seconds to wait for recovery before calling it failed
#   MUSTER_FAULTS_KEEP_SERVICES=1  leave the isolated services running at the end
# The isolated ports: Kafka 19092 (controller 19093), registry 18081 (management 19081),
# PostgreSQL 15432 (Debian cluster "faults"), muster API 18080, simulator 19100.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

repeat=1
faults=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    broker-restart | pg-restart | registry-down) faults+=("$1"); shift ;;
    *) echo "usage: $0 [--repeat N] broker-restart|pg-restart|registry-down ..." >&2; exit 2 ;;
  esac
done
[ ${#faults[@]} -gt 0 ] || { echo "usage: $0 [--repeat N] broker-restart|pg-restart|registry-down ..." >&2; exit 2; }

main_home="${MUSTER_HOME:-$HOME/.cache/muster}"
export MUSTER_HOME="${MUSTER_FAULTS_HOME:-$main_home/faults}"
export MUSTER_KAFKA_PORT=19092 MUSTER_KAFKA_CONTROLLER_PORT=19093 MUSTER_REGISTRY_PORT=18081 \
  MUSTER_REGISTRY_MGMT_PORT=19081 MUSTER_PG_PORT=15432 MUSTER_PG_CLUSTER=faults
api_addr=127.0.0.1:18080
sim_addr=127.0.0.1:19100
api="http://$api_addr"
down_secs="${MUSTER_FAULTS_DOWN:-10}"
timeout="${MUSTER_FAULTS_TIMEOUT:-180}"
run="$MUSTER_HOME/run-pipeline"
mkdir -p "$MUSTER_HOME" "$run"
# the jars the usual services use: nothing is fetched again
[ -e "$MUSTER_HOME/downloads" ] || ln -s "$main_home/downloads" "$MUSTER_HOME/downloads"

log() { printf '[faults] %s\n' "$*" >&2; }
services() { "$repo/scripts/services.sh" "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started_services=0
pids=()
cleanup() {
  local pid i
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$started_services" = 1 ] && [ "${MUSTER_FAULTS_KEEP_SERVICES:-0}" != 1 ]; then
    services down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if ! services status >/dev/null 2>&1; then
  log "starting the isolated services in $MUSTER_HOME"
  started_services=1
  services up >"$run/services-up.log" 2>&1 || { tail -20 "$run/services-up.log" >&2; exit 1; }
fi
eval "$(services env)"

bin="${MUSTER_FAULTS_BIN:-}"
if [ -z "$bin" ]; then
  # a copy, so a build meanwhile does not replace the binary under the running pipeline
  bin="$run/muster"
  cp "${CARGO_TARGET_DIR:-target}/debug/muster" "$bin"
fi
for p in ${api_addr##*:} ${sim_addr##*:}; do
  ! port_open "$p" || { log "port $p is taken (another run of this script?)"; exit 1; }
done

export MUSTER_API_ADDR=$api_addr MUSTER_DEVELOPMENT=true
export MUSTER_ADMIN_TOKEN="faults-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
export MUSTER_LOG="${MUSTER_LOG:-info,rdkafka=warn}"
"$bin" all >"$run/muster.log" 2>&1 &
pids+=($!)
for _ in $(seq 240); do
  curl -fsS -o /dev/null "$api/readyz" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -30 "$run/muster.log" >&2; exit 1; }
  sleep 0.5
done
"$bin" simulate --events 5 --interval 1 --addr "$sim_addr" --register-with "$api" \
  --push-checkins >"$run/simulator.log" 2>&1 &
pids+=($!)

# The newest observedAt in event_realtime, epoch seconds (0 while there is none or no answer).
newest() {
  curl -fsS -m 2 "$api/api/public/events" 2>/dev/null | python3 -c '
import datetime, json, sys
try:
    t = [datetime.datetime.fromisoformat(e["observedAt"].replace("Z", "+00:00")).timestamp()
         for e in json.load(sys.stdin)["events"] if e.get("observedAt")]
    print(max(t))
except Exception:
    print(0)'
}

# Waits until a snapshot observed at or after $1 (epoch s) is visible; prints the seconds
# from $1, or "none" after the timeout.
fresh_after() {
  local since=$1 deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    if awk -v n="$(newest)" -v s="$since" 'BEGIN { exit !(n >= s) }'; then
      elapsed "$since" "$(now)"
      return
    fi
    sleep 0.2
  done
  echo none
}

steady() {
  log "waiting for fresh data"
  [ "$(fresh_after "$(now)")" != none ] || { log "no fresh data; see $run/muster.log"; exit 1; }
}

pid_of() { cat "$MUSTER_HOME/run/$1.pid"; }
pg_ver() { pg_lsclusters -h | awk -v c="$MUSTER_PG_CLUSTER" '$2 == c { print $1; exit }'; }

# Each fault: inject, wait for its end, echo the epoch time the service answered again.
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
  sleep 30
  # schemas are cached, so data may keep flowing while the registry is down
  log "registry-down: at the end of the outage the newest data was $(elapsed "$(newest)" "$(now)")s old"
  services up >>"$run/services-up.log" 2>&1 || { log "the registry did not start again"; exit 1; }
  now
}

steady
for fault in "${faults[@]}"; do
  for ((i = 1; i <= repeat; i++)); do
    back=$("fault_${fault//-/_}")
    secs=$(fresh_after "$back")
    echo "$fault #$i: fresh data in event_realtime ${secs}s after the fault ended"
    [ "$secs" != none ] || exit 1
    steady
  done
done
