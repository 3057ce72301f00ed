#!/usr/bin/env bash
# The test command: starts the real services (installing what is missing), then runs the format
# check, clippy, and every test, unit and end-to-end, against them.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- pipeline     extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
MUSTER_HOME="${MUSTER_HOME:-$HOME/.cache/muster}"
step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "build dependencies"
scripts/build-deps.sh

step "services"
scripts/services.sh up
eval "$(scripts/services.sh env)"
# A fresh database per run, so tests never depend on what an earlier run or a demo left behind.
admin_url="${MUSTER_DATABASE_URL%/*}/postgres"
psql -q "$admin_url" -c "DROP DATABASE IF EXISTS muster_test WITH (FORCE)" -c "CREATE DATABASE muster_test"
export MUSTER_DATABASE_URL="${MUSTER_DATABASE_URL%/*}/muster_test"

step "third-party client (Python confluent-kafka) for the interoperability test"
venv="$MUSTER_HOME/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/third_party/requirements.txt
export MUSTER_PYTHON="$venv/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
shift_args=()
[ "${1:-}" = "--" ] && shift && shift_args=("$@")
cargo test --workspace "${shift_args[@]}"

step "all green in $((SECONDS - started)) s"
