#!/usr/bin/env bash
# Local services for muster (DESIGN.md §6), as plain processes on 127.0.0.1 — no Docker needed:
#   * PostgreSQL      127.0.0.1:5432  Debian's postgresql package, the Debian cluster "main"
#   * Apache Kafka    127.0.0.1:9092  KRaft combined broker+controller (controller on :9093),
#                                     jars from Maven Central (org.apache.kafka:kafka_2.13)
#   * Apicurio Registry 3  127.0.0.1:8081  Confluent-compatible API at /apis/ccompat/v7,
#                                     SQL storage in the PostgreSQL database "apicurio"
#
# Usage: scripts/services.sh up|down|status|reset|env
#   up      install what is missing, start everything, wait until each answers, print env exports
#   down    stop the registry and Kafka (TERM, then KILL after a timeout) and the PostgreSQL cluster
#   status  print each service up/down with its address (exit 0 if all up, 3 otherwise)
#   reset   down + wipe Kafka's data + drop and recreate the "muster" and "apicurio" databases
#   env     print only the export lines:  eval "$(scripts/services.sh env)"
#
# Layout (outside the repo, so clones and CI runs reuse the downloads):
#   ${MUSTER_HOME:-$HOME/.cache/muster}/downloads  Kafka jars, Apicurio distribution
#                                        /data       Kafka log dir, generated configs
#                                        /logs       kafka.log, registry.log
#                                        /run        pid files, lock
# Maven's default local repository (~/.m2) is used for the fetches.
#
# Overridable: MUSTER_KAFKA_VERSION, MUSTER_APICURIO_VERSION, MUSTER_WAIT_TIMEOUT (s, per service).
# A second, isolated set (the fault runs of scripts/faults.sh restart its broker and database
# without disturbing tests on the first) takes its own MUSTER_HOME, ports and Debian cluster:
#   MUSTER_PG_PORT, MUSTER_PG_CLUSTER (default main), MUSTER_KAFKA_PORT,
#   MUSTER_KAFKA_CONTROLLER_PORT, MUSTER_REGISTRY_PORT, MUSTER_REGISTRY_MGMT_PORT
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ASSETS="$SCRIPT_DIR/services"

MUSTER_HOME="${MUSTER_HOME:-$HOME/.cache/muster}"
DL_DIR="$MUSTER_HOME/downloads"
DATA_DIR="$MUSTER_HOME/data"
LOG_DIR="$MUSTER_HOME/logs"
RUN_DIR="$MUSTER_HOME/run"

KAFKA_VERSION="${MUSTER_KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION="${MUSTER_LOG4J_VERSION:-2.25.5}"
APICURIO_VERSION="${MUSTER_APICURIO_VERSION:-3.3.3}"
WAIT_TIMEOUT="${MUSTER_WAIT_TIMEOUT:-180}"
STOP_TIMEOUT="${MUSTER_STOP_TIMEOUT:-30}"

HOST=127.0.0.1
PG_PORT="${MUSTER_PG_PORT:-5432}"
PG_CLUSTER="${MUSTER_PG_CLUSTER:-main}" # the Debian cluster (pg_createcluster) on PG_PORT
KAFKA_PORT="${MUSTER_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${MUSTER_KAFKA_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${MUSTER_REGISTRY_PORT:-8081}"
REGISTRY_MGMT_PORT="${MUSTER_REGISTRY_MGMT_PORT:-9081}" # Quarkus management interface (health/metrics)

DB_USER=muster
DB_PASSWORD=muster
DB_NAME=muster
REGISTRY_DB=apicurio
# Search (pg_trgm) needs a UTF-8 ctype: under C, Korean letters are not letters to it. The
# cluster is created with it, and databases are created with it whatever the cluster's default.
DB_LOCALE=C.UTF-8
DB_CREATE_OPTIONS="TEMPLATE template0 ENCODING 'UTF8' LOCALE '$DB_LOCALE'"

# Apicurio Registry >= 3.3 is compiled for Java 21. Its JVM is the first Java >= 21 of:
# $MUSTER_REGISTRY_JAVA, $JAVA_HOME, PATH, /usr/lib/jvm/* (the polyglot image has a Temurin 25 there).
# With no such Java, fall back to Apicurio 3.0.9 (the last 3.x on Maven Central that runs on Java 17).
APICURIO_FALLBACK_VERSION=3.0.9

KAFKA_HOME="$DL_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$DATA_DIR/kafka"
KAFKA_CONF="$DATA_DIR/kafka-server.properties"
KAFKA_LOG="$LOG_DIR/kafka.log"
KAFKA_PID="$RUN_DIR/kafka.pid"

REGISTRY_LOG="$LOG_DIR/registry.log"
REGISTRY_PID="$RUN_DIR/registry.pid"
REGISTRY_URL="http://$HOST:$REGISTRY_PORT/apis/ccompat/v7"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# pid from a pid file if that process is alive and still looks like ours ($2: cmdline pattern)
live_pid() {
  local file=$1 pattern=$2 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
  echo "$pid"
}

# True, saying why, when service $1 needs no start: the process of pid file $2 (cmdline
# pattern $3) still runs, or another process holds its port $4 (used as is).
already_up() {
  local name=$1 file=$2 pattern=$3 port=$4 pid
  if pid=$(live_pid "$file" "$pattern"); then
    log "$name: already running (pid $pid)"
  elif port_open "$HOST" "$port"; then
    log "$name: port $port is already taken by a process we did not start; using it as is"
  else
    return 1
  fi
}

stop_pidfile() {
  local name=$1 file=$2 pattern=$3 pid i
  if ! pid=$(live_pid "$file" "$pattern"); then
    rm -f "$file"
    log "$name: not running"
    return 0
  fi
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${STOP_TIMEOUT}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$file"
}

fail_with_log() {
  local name=$1 file=$2
  log "$name did not become ready within ${WAIT_TIMEOUT}s; last 50 lines of $file:"
  tail -n 50 "$file" >&2 2>/dev/null || true
  exit 1
}

ensure_java() {
  if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
  [ "${v%%.*}" -ge 17 ] 2>/dev/null || die "Java 17 or newer needed (found ${v:-none})"
}

ensure_maven() {
  command -v mvn >/dev/null || apt_install maven
}

# ---------------------------------------------------------------- PostgreSQL

pg_version() {
  # newest installed server major version
  local d best=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$d" ] || continue
    d=${d#/usr/lib/postgresql/}; d=${d%%/*}
    if [ -z "$best" ] || [ "$d" -gt "$best" ] 2>/dev/null; then best=$d; fi
  done
  echo "$best"
}

pg_install() {
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(pg_version)" ]; then
    apt_install postgresql
  fi
  PG_VER=$(pg_version)
  [ -n "$PG_VER" ] || die "no PostgreSQL server found after installing"
  if ! pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VER" -v c="$PG_CLUSTER" '$1 == v && $2 == c' | grep -q .; then
    log "postgres: creating cluster $PG_VER/$PG_CLUSTER"
    as_root pg_createcluster "$PG_VER" "$PG_CLUSTER" --port "$PG_PORT" --locale "$DB_LOCALE" --encoding UTF8 >&2
  fi
}

pg_running() {
  [ -n "${PG_VER:-}" ] || PG_VER=$(pg_version)
  [ -n "$PG_VER" ] || return 1
  pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VER" -v c="$PG_CLUSTER" '$1 == v && $2 == c && $4 == "online"' |
    grep -q .
}

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$PG_PORT" "$@"; }

pg_start() {
  pg_install
  if pg_running; then
    log "postgres $PG_VER/$PG_CLUSTER: already running"
  else
    log "postgres $PG_VER/$PG_CLUSTER: starting"
    as_root pg_ctlcluster "$PG_VER" "$PG_CLUSTER" start >&2 || {
      log "pg_ctlcluster failed; last 50 lines of the cluster log:"
      tail -n 50 "/var/log/postgresql/postgresql-$PG_VER-$PG_CLUSTER.log" >&2 2>/dev/null || true
      exit 1
    }
  fi
  local i
  for ((i = 0; i < WAIT_TIMEOUT * 2; i++)); do
    pg_isready -q -h "$HOST" -p "$PG_PORT" && break
    sleep 0.5
  done
  pg_isready -q -h "$HOST" -p "$PG_PORT" ||
    fail_with_log "postgres" "/var/log/postgresql/postgresql-$PG_VER-$PG_CLUSTER.log"
  pg_bootstrap
}

pg_bootstrap() {
  # role muster (LOGIN CREATEDB, password muster); databases muster and apicurio owned by it
  psql_admin -d postgres <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
SQL
  local db
  for db in "$DB_NAME" "$REGISTRY_DB"; do
    if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      log "postgres: creating database $db"
      psql_admin -d postgres -c "CREATE DATABASE $db OWNER $DB_USER $DB_CREATE_OPTIONS"
    fi
  done
  local ctype
  ctype=$(psql_admin -d postgres -tAc "SELECT datctype FROM pg_database WHERE datname = '$DB_NAME'")
  case "$ctype" in
    C | POSIX) log "postgres: WARNING database $DB_NAME has LC_CTYPE $ctype, which search cannot" \
      "use (the API refuses to start); '$0 reset' recreates it with $DB_LOCALE (its data is lost)" ;;
  esac
}

pg_stop() {
  PG_VER=$(pg_version)
  if [ -z "$PG_VER" ]; then log "postgres: not installed"; return 0; fi
  if pg_running; then
    log "postgres $PG_VER/$PG_CLUSTER: stopping"
    as_root pg_ctlcluster "$PG_VER" "$PG_CLUSTER" stop -m fast >&2 || true
  else
    log "postgres $PG_VER/$PG_CLUSTER: not running"
  fi
}

# ---------------------------------------------------------------- Kafka

kafka_install() {
  if [ -f "$KAFKA_HOME/.complete" ]; then return 0; fi
  ensure_maven
  log "kafka $KAFKA_VERSION: fetching jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_HOME.tmp"
  mkdir -p "$KAFKA_HOME.tmp"
  mvn -B -Dstyle.color=never -f "$ASSETS/kafka-pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_HOME.tmp/libs" >"$LOG_DIR/mvn-kafka.log" 2>&1 || {
    tail -n 50 "$LOG_DIR/mvn-kafka.log" >&2
    die "maven could not fetch Kafka $KAFKA_VERSION (log: $LOG_DIR/mvn-kafka.log)"
  }
  # leave no build dir behind next to the POM (it lives in the repo)
  rm -rf "$ASSETS/target"
  touch "$KAFKA_HOME.tmp/.complete"
  rm -rf "$KAFKA_HOME"
  mv "$KAFKA_HOME.tmp" "$KAFKA_HOME"
}

kafka_java() {
  # $1: log4j2 config, rest: java args
  local conf=$1; shift
  java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$conf" "$@"
}

kafka_tool() { kafka_java "$ASSETS/tools-log4j2.properties" -Xmx256m -XX:TieredStopAtLevel=1 "$@"; }

kafka_configure() {
  mkdir -p "$KAFKA_DATA"
  sed -e "s#@KAFKA_LOG_DIR@#$KAFKA_DATA#" -e "s#@HOST@#$HOST#g" -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" \
    -e "s#@KAFKA_CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
    "$ASSETS/server.properties.template" >"$KAFKA_CONF"
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    local cid
    cid=$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n 1)
    log "kafka: formatting $KAFKA_DATA (cluster id $cid)"
    kafka_tool kafka.tools.StorageTool format --standalone -t "$cid" -c "$KAFKA_CONF" \
      >>"$LOG_DIR/kafka-format.log" 2>&1 || {
      tail -n 50 "$LOG_DIR/kafka-format.log" >&2
      die "kafka storage format failed"
    }
  fi
}

kafka_start() {
  already_up kafka "$KAFKA_PID" "kafka.Kafka" "$KAFKA_PORT" && return
  kafka_install
  kafka_configure
  log "kafka $KAFKA_VERSION: starting on $HOST:$KAFKA_PORT"
  : >"$KAFKA_LOG"
  nohup java -cp "$KAFKA_LIBS/*" \
    -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ASSETS/log4j2.properties" -Dkafka.logs.dir="$LOG_DIR" \
    kafka.Kafka "$KAFKA_CONF" >>"$KAFKA_LOG" 2>&1 </dev/null &
  echo $! >"$KAFKA_PID"
}

kafka_wait() {
  local deadline=$((SECONDS + WAIT_TIMEOUT))
  while ! port_open "$HOST" "$KAFKA_PORT"; do
    if [ -f "$KAFKA_PID" ] && ! live_pid "$KAFKA_PID" "kafka.Kafka" >/dev/null; then
      log "kafka: process exited"; fail_with_log kafka "$KAFKA_LOG"
    fi
    [ $SECONDS -lt $deadline ] || fail_with_log kafka "$KAFKA_LOG"
    sleep 0.5
  done
  # a real metadata round trip (ApiVersions against the broker)
  until kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "$HOST:$KAFKA_PORT" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail_with_log kafka "$KAFKA_LOG"
    sleep 1
  done
  log "kafka: ready at $HOST:$KAFKA_PORT"
}

# ---------------------------------------------------------------- Apicurio Registry

java_major() { # $1: java binary -> major version, or nothing
  "$1" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ {sub(/^1\./, "", $2); print $2; exit}'
}

# sets REGISTRY_JAVA, REGISTRY_VERSION and REGISTRY_HOME
registry_pick() {
  [ -z "${REGISTRY_HOME:-}" ] || return 0
  local c m need=21
  REGISTRY_JAVA="" REGISTRY_VERSION=$APICURIO_VERSION
  case "$APICURIO_VERSION" in 3.0.* | 3.1.* | 3.2.* | 2.*) need=17 ;; esac
  local best=0
  for c in ${MUSTER_REGISTRY_JAVA:-} ${JAVA_HOME:+$JAVA_HOME/bin/java} "$(command -v java || true)" \
    /usr/lib/jvm/*/bin/java; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    m=$(java_major "$c")
    [ -n "$m" ] && [ "$m" -ge "$need" ] 2>/dev/null || continue
    # an explicit MUSTER_REGISTRY_JAVA wins; otherwise the newest Java found
    if [ "$c" = "${MUSTER_REGISTRY_JAVA:-}" ]; then REGISTRY_JAVA=$c; break; fi
    if [ "$m" -gt "$best" ]; then best=$m REGISTRY_JAVA=$c; fi
  done
  if [ -z "$REGISTRY_JAVA" ]; then
    log "registry: no Java >= $need found for Apicurio $APICURIO_VERSION;" \
      "falling back to Apicurio $APICURIO_FALLBACK_VERSION on $(command -v java)"
    REGISTRY_JAVA=$(command -v java)
    REGISTRY_VERSION=$APICURIO_FALLBACK_VERSION
  fi
  REGISTRY_HOME="$DL_DIR/apicurio-registry-$REGISTRY_VERSION"
}

registry_jar() { # quarkus fast-jar (3.1+) or legacy runner jar (3.0.x)
  if [ -f "$REGISTRY_HOME/quarkus-run.jar" ]; then echo "$REGISTRY_HOME/quarkus-run.jar"; else
    ls "$REGISTRY_HOME"/*-runner.jar 2>/dev/null | head -n 1; fi
}

registry_install() {
  registry_pick
  if [ -f "$REGISTRY_HOME/.complete" ]; then return 0; fi
  ensure_maven
  # Maven Central carries the runnable Quarkus fast-jar layout as the attached
  # io.apicurio:apicurio-registry-app:<v>:tar.gz:all (quarkus-run.jar + lib/ + app/ + quarkus/;
  # 3.0.x: the legacy *-runner.jar + lib/).
  log "apicurio-registry $REGISTRY_VERSION: fetching distribution from Maven Central"
  rm -rf "$REGISTRY_HOME.tmp"
  mkdir -p "$REGISTRY_HOME.tmp"
  # run outside the repo: without a POM the plugin writes its marker files under a literal
  # "${project.basedir}" directory in the working directory
  (cd "$REGISTRY_HOME.tmp" && mvn -B -Dstyle.color=never dependency:unpack \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
    -DoutputDirectory="$REGISTRY_HOME.tmp" \
    -Dmdep.overWriteReleases=true -Dmdep.overWriteSnapshots=true >"$LOG_DIR/mvn-registry.log" 2>&1) || {
    tail -n 50 "$LOG_DIR/mvn-registry.log" >&2
    die "maven could not fetch apicurio-registry-app $REGISTRY_VERSION (log: $LOG_DIR/mvn-registry.log)"
  }
  [ -f "$REGISTRY_HOME.tmp/quarkus-run.jar" ] || compgen -G "$REGISTRY_HOME.tmp/*-runner.jar" >/dev/null ||
    die "the apicurio distribution has no runnable jar"
  rm -rf "$REGISTRY_HOME.tmp/\${project.basedir}"
  touch "$REGISTRY_HOME.tmp/.complete"
  rm -rf "$REGISTRY_HOME"
  mv "$REGISTRY_HOME.tmp" "$REGISTRY_HOME"
}

registry_start() {
  already_up registry "$REGISTRY_PID" "muster.service=registry" "$REGISTRY_PORT" && return
  registry_install
  log "apicurio-registry $REGISTRY_VERSION: starting on $HOST:$REGISTRY_PORT with $REGISTRY_JAVA" \
    "(SQL storage: postgresql/$REGISTRY_DB)"
  local jar
  jar=$(registry_jar)
  : >"$REGISTRY_LOG"
  (
    cd "$REGISTRY_HOME"
    # Config names: io.apicurio:apicurio-registry-app application.properties (3.x)
    export QUARKUS_HTTP_HOST=$HOST QUARKUS_HTTP_PORT=$REGISTRY_PORT
    export QUARKUS_MANAGEMENT_HOST=$HOST QUARKUS_MANAGEMENT_PORT=$REGISTRY_MGMT_PORT
    export APICURIO_STORAGE_KIND=sql APICURIO_STORAGE_SQL_KIND=postgresql
    export APICURIO_DATASOURCE_URL="jdbc:postgresql://$HOST:$PG_PORT/$REGISTRY_DB"
    export APICURIO_DATASOURCE_USERNAME=$DB_USER APICURIO_DATASOURCE_PASSWORD=$DB_PASSWORD
    export APICURIO_DATASOURCE_JDBC_INITIAL_SIZE=2 APICURIO_DATASOURCE_JDBC_MIN_SIZE=2
    export APICURIO_DATASOURCE_JDBC_MAX_SIZE=20
    # Confluent semantics: ccompat schema ids are content ids (the default, made explicit)
    export APICURIO_CCOMPAT_LEGACY_ID_MODE_ENABLED=false
    # let tests delete subjects/versions (DELETE /subjects/...), off by default in 3.x
    export APICURIO_REST_DELETION_GROUP_ENABLED=true APICURIO_REST_DELETION_ARTIFACT_ENABLED=true
    export APICURIO_REST_DELETION_ARTIFACT_VERSION_ENABLED=true
    export QUARKUS_OTEL_SDK_DISABLED=true
    exec nohup "$REGISTRY_JAVA" -Xms128m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dmuster.service=registry -jar "$jar" >>"$REGISTRY_LOG" 2>&1 </dev/null
  ) &
  echo $! >"$REGISTRY_PID"
}

registry_answers() {
  [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$REGISTRY_URL/subjects")" = 200 ]
}

registry_wait() {
  local deadline=$((SECONDS + WAIT_TIMEOUT))
  until registry_answers; do
    if [ -f "$REGISTRY_PID" ] && ! live_pid "$REGISTRY_PID" "muster.service=registry" >/dev/null; then
      log "registry: process exited"; fail_with_log registry "$REGISTRY_LOG"
    fi
    [ $SECONDS -lt $deadline ] || fail_with_log registry "$REGISTRY_LOG"
    sleep 0.5
  done
  log "registry: ready at $REGISTRY_URL"
}

# ---------------------------------------------------------------- commands

print_env() {
  cat <<EOF
export MUSTER_KAFKA_BROKERS=$HOST:$KAFKA_PORT
export MUSTER_SCHEMA_REGISTRY_URL=$REGISTRY_URL
export MUSTER_DATABASE_URL=postgres://$DB_USER:$DB_PASSWORD@$HOST:$PG_PORT/$DB_NAME
EOF
}

# Serialise up/down/reset: re-run this script under flock(1). With -o the lock's fd is not
# inherited by the command, so the daemons started here do not keep holding the lock.
with_lock() {
  [ -z "${MUSTER_SERVICES_LOCKED:-}" ] || return 0
  mkdir -p "$RUN_DIR"
  MUSTER_SERVICES_LOCKED=1 exec flock -o -w 120 -E 75 "$RUN_DIR/services.lock" \
    "$BASH" "$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")" "$@"
}

cmd_up() {
  mkdir -p "$DL_DIR" "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"
  ensure_java
  local t0=$SECONDS
  pg_start
  log "postgres: ready at $HOST:$PG_PORT"
  # fetch both (first run) before starting, so the slow parts happen up front
  kafka_install
  registry_install
  kafka_start
  registry_start
  kafka_wait
  registry_wait
  log "all services up in $((SECONDS - t0))s"
  print_env
}

cmd_down() {
  stop_pidfile registry "$REGISTRY_PID" "muster.service=registry"
  stop_pidfile kafka "$KAFKA_PID" "kafka.Kafka"
  pg_stop
}

cmd_status() {
  local all=0 pid
  if pg_isready -q -h "$HOST" -p "$PG_PORT" 2>/dev/null; then
    echo "postgres  up    $HOST:$PG_PORT  postgres://$DB_USER:***@$HOST:$PG_PORT/$DB_NAME"
  else
    echo "postgres  down  $HOST:$PG_PORT"; all=3
  fi
  if port_open "$HOST" "$KAFKA_PORT"; then
    pid=$(live_pid "$KAFKA_PID" "kafka.Kafka" || echo "?")
    echo "kafka     up    $HOST:$KAFKA_PORT  (controller $HOST:$KAFKA_CONTROLLER_PORT, pid $pid)"
  else
    echo "kafka     down  $HOST:$KAFKA_PORT"; all=3
  fi
  if registry_answers; then
    pid=$(live_pid "$REGISTRY_PID" "muster.service=registry" || echo "?")
    echo "registry  up    $REGISTRY_URL  (pid $pid)"
  else
    echo "registry  down  $REGISTRY_URL"; all=3
  fi
  return $all
}

cmd_reset() {
  cmd_down
  log "kafka: wiping $KAFKA_DATA"
  rm -rf "$KAFKA_DATA" "$KAFKA_CONF"
  # the databases live in PostgreSQL: start it just long enough to recreate them
  pg_start
  local db
  for db in "$DB_NAME" "$REGISTRY_DB"; do
    log "postgres: dropping and recreating database $db"
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  done
  pg_bootstrap
  pg_stop
  log "reset done; run '$0 up' to start again"
}

case "${1:-}" in
  up | down | reset) with_lock "$@" ;;
esac
case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  env) print_env ;;
  *)
    echo "usage: $0 up|down|status|reset|env" >&2
    exit 2
    ;;
esac
