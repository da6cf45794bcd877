#!/usr/bin/env bash
# Runs every imbridge test tier against a real Apache Kafka broker.
#
#   scripts/test.sh [extra cargo test args]
#
# Uses the broker named by KAFKA_BOOTSTRAP when set; otherwise starts a local single-node KRaft broker with
# scripts/kafka.sh on KAFKA_PORT (default 39092, away from a developer's own 9092), and stops it on exit.
# Tiers: unit tests and crate integration tests (real broker, real HTTP, emulators as real servers), then the
# end-to-end scenarios in tests/ that start the parts as separate processes, then the IM emulator driven by a
# public server SDK (scripts/sdk-conformance.sh; Java SDK from Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."
# Installs what is missing (C toolchain, OpenSSL/zlib headers, Java 17, Maven, Rust) or says how.
source scripts/setup.sh
imbridge_setup
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  export KAFKA_PORT="${KAFKA_PORT:-39092}"
  export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
  scripts/kafka.sh start
  trap 'scripts/kafka.sh stop' EXIT
  export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
else
  echo "test.sh: using the broker at KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"
fi
export KAFKA_CLASSPATH="${KAFKA_CLASSPATH:-$(scripts/kafka.sh classpath)}"
# Tests that need the broker skip (with a message) when KAFKA_BOOTSTRAP is unset; here none may skip.
export IMBRIDGE_TEST_REQUIRE_KAFKA=1

echo "== build"
cargo build --workspace --all-targets --locked
export IMBRIDGE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/imbridge"

echo "== unit and integration tests"
cargo test --workspace --locked --exclude imbridge-e2e --no-fail-fast "$@"

echo "== end-to-end scenarios"
cargo test -p imbridge-e2e --locked --no-fail-fast "$@"

echo "== public SDK against the IM emulator"
scripts/sdk-conformance.sh

echo "test.sh: all tiers passed"
