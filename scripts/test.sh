#!/usr/bin/env bash
# The test command: starts the real services (installing what is missing), then runs the format
# check, clippy, and every test, unit and end-to-end, against them.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- pipeline     extra arguments go to `cargo nextest run` (a test filter here)
set -euo pipefail
cd "$(dirname "$0")/.."
MUSTER_HOME="${MUSTER_HOME:-$HOME/.cache/muster}"
step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "build dependencies"
scripts/build-deps.sh

step "browser for the web tests (Debian's chromium and chromedriver, CJK fonts for Korean)"
browser_pkgs=()
command -v chromium >/dev/null || browser_pkgs+=(chromium)
command -v chromedriver >/dev/null || browser_pkgs+=(chromium-driver)
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -q CJK || browser_pkgs+=(fonts-noto-cjk)
if [ ${#browser_pkgs[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${browser_pkgs[@]}"
fi

# cargo-nextest (the test runner: one process per test, a bound on a stuck test). A cold install
# compiles for minutes, so it runs beside the services' start and clippy's build.
nextest_version=0.9.151
tools="$MUSTER_HOME/tools"
nextest_log="$(mktemp)"
nextest_pid=""
if ! "$tools/bin/cargo-nextest" nextest --version 2>/dev/null | grep -q "$nextest_version"; then
    echo "installing cargo-nextest $nextest_version in the background"
    # Built lightly optimised: it only starts test processes, and a full release build of it
    # costs minutes of the two cores the clippy build needs.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
        cargo install --locked --quiet cargo-nextest --version "$nextest_version" --root "$tools" \
        --no-default-features --features default-no-update >"$nextest_log" 2>&1 &
    nextest_pid=$!
fi
export PATH="$tools/bin:$PATH"

step "services"
scripts/services.sh up
eval "$(scripts/services.sh env)"
# A fresh database per run, so tests never depend on what an earlier run or a demo left behind.
admin_url="${MUSTER_DATABASE_URL%/*}/postgres"
# Each end-to-end test makes its own `muster_test_t<8 hex>` on first use (tests/e2e/common).
# A drop can meet a backend it may not end (an autovacuum worker runs as the superuser: "must
# be a member of the role whose process is being terminated"); those end by themselves, so the
# drop is tried again.
for db in $(psql -qAt "$admin_url" -c "SELECT datname FROM pg_database WHERE datname LIKE 'muster\_test%'"); do
    for attempt in 1 2 3 4 5 6; do
        psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" && break
        [ "$attempt" -lt 6 ] || exit 1
        sleep 2
    done
done
# A UTF-8 ctype, whatever the cluster's default: search (pg_trgm) needs it.
psql -q "$admin_url" -c "CREATE DATABASE muster_test TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"
export MUSTER_DATABASE_URL="${MUSTER_DATABASE_URL%/*}/muster_test"

step "third-party client (Python confluent-kafka) for the interoperability test"
venv="$MUSTER_HOME/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/third_party/requirements.txt
export MUSTER_PYTHON="$venv/bin/python"

step "test topics and subjects of earlier runs"
"$MUSTER_PYTHON" scripts/clean-test-topics.py --brokers "$MUSTER_KAFKA_BROKERS" \
    --registry "$MUSTER_SCHEMA_REGISTRY_URL"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

if [ -n "$nextest_pid" ]; then
    step "cargo-nextest install (started in the background)"
    wait "$nextest_pid" || { cat "$nextest_log" >&2; echo "installing cargo-nextest failed" >&2; exit 1; }
fi

step "cargo nextest run (every crate's unit tests and tests/e2e)"
shift_args=()
[ "${1:-}" = "--" ] && shift && shift_args=("$@")
cargo nextest run --workspace "${shift_args[@]}"

if [ ${#shift_args[@]} -eq 0 ]; then
    # The README's first command, with the binary the tests just built: its shell glue (the
    # partner it makes through the admin API) broke once unnoticed when an answer's shape changed.
    step "the demo starts, and its partner key reads its events"
    MUSTER_DEMO_BUILD=0 scripts/demo.sh --events 3 >"$MUSTER_HOME/logs/demo-smoke.log" 2>&1 \
        || { tail -40 "$MUSTER_HOME/logs/demo-smoke.log"; scripts/demo.sh stop; exit 1; }
    demo_ok=$(curl -fsS -H "x-api-key: $(cat .muster/demo/partner-key)" \
        "http://${MUSTER_API_ADDR:-127.0.0.1:8080}/api/partner/events" | grep -o '"eventId"' | wc -l)
    scripts/demo.sh stop
    [ "$demo_ok" -ge 1 ] || { echo "the demo's partner sees no event" >&2; exit 1; }

    # RELIABILITY.md holds a full run (scripts/faults.sh --report RELIABILITY.md all).
    step "the fault suite, short form: each fault under load, then nothing lost or doubled"
    scripts/faults.sh --short all \
        || { echo "a fault run failed: see the newest run in ${MUSTER_HOME:-$HOME/.cache/muster}/faults/runs" >&2; exit 1; }
fi

step "all green in $((SECONDS - started)) s"
