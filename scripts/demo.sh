#!/usr/bin/env bash
# The imbridge demo, on a fresh machine with Rust, Java 17 and Maven:
#
#   1. builds the imbridge binary;
#   2. starts a local Apache Kafka broker on its own port (scripts/kafka.sh) and the Tencent Cloud IM emulator
#      (`imbridge emulate im`) with IM's documented frequency limits ON;
#   3. generates a realistic sample export (deterministic seed: 200 users, 1,000 friendships, 20,000 1:1
#      messages, 30 groups, 5,000 group messages);
#   4. imports it (`imbridge import`: progress bars, then the report with the wall time beside the quota-bound
#      lower bound), verifies it (`imbridge verify`: IM read back and compared with the export);
#   5. stops everything it started.
#
# Environment:
#   DEMO_PROFILE    debug (default) or release: which build to run
#   DEMO_KAFKA_PORT broker port (default 29092; the controller takes the next one)
#   DEMO_IM_PORT    emulator port (default 28081)
#   DEMO_DIR        where the export, config and reports go (default: a new temporary directory, kept)
#   DEMO_SEED       export seed (default 42)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${DEMO_PROFILE:-debug}"
KAFKA_PORT="${DEMO_KAFKA_PORT:-29092}"
IM_PORT="${DEMO_IM_PORT:-28081}"
SEED="${DEMO_SEED:-42}"
WORK="${DEMO_DIR:-$(mktemp -d -t imbridge-demo.XXXXXX)}"
mkdir -p "$WORK"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building imbridge ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release -p imbridge
  BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/imbridge"
else
  cargo build -p imbridge
  BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/imbridge"
fi

EMULATOR_PID=""
KAFKA_STARTED=0
cleanup() {
  if [ -n "$EMULATOR_PID" ] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  if [ "$KAFKA_STARTED" = 1 ]; then
    KAFKA_PORT="$KAFKA_PORT" KAFKA_CONTROLLER_PORT="$((KAFKA_PORT + 1))" scripts/kafka.sh stop || true
  fi
}
trap cleanup EXIT

say "starting Apache Kafka on 127.0.0.1:$KAFKA_PORT"
KAFKA_PORT="$KAFKA_PORT" KAFKA_CONTROLLER_PORT="$((KAFKA_PORT + 1))" scripts/kafka.sh start
KAFKA_STARTED=1

say "starting the IM emulator on 127.0.0.1:$IM_PORT (frequency limits on)"
"$BIN" emulate im --listen "127.0.0.1:$IM_PORT" --log-format json > "$WORK/emulator.log" 2>&1 &
EMULATOR_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$IM_PORT") 2>/dev/null; then break; fi
  kill -0 "$EMULATOR_PID" 2>/dev/null || { echo "the emulator exited:"; cat "$WORK/emulator.log"; exit 1; }
  sleep 0.1
done

# The emulator's defaults: the SDKAppID and secret key of Tencent's public READMEs, admin `administrator`.
cat > "$WORK/imbridge.toml" <<TOML
[kafka]
bootstrap_servers = "127.0.0.1:$KAFKA_PORT"

[topics]
partitions = 12

[im]
base_url = "http://127.0.0.1:$IM_PORT"
sdkappid = 1400000000
admin_identifier = "administrator"
secret_key = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
TOML

say "generating the sample export (seed $SEED) into $WORK/export"
"$BIN" export generate "$WORK/export" --seed "$SEED" --users 200 --friendships 1000 --c2c-messages 20000 \
  --groups 30 --group-messages 5000

say "importing (IM's quotas bound the wall time; the report compares the two)"
"$BIN" --config "$WORK/imbridge.toml" --log-level warn import "$WORK/export" --report "$WORK/import-report.json"

say "verifying: IM read back and compared with the export"
"$BIN" --config "$WORK/imbridge.toml" --log-level warn verify "$WORK/export" --report "$WORK/verify-report.json"

if command -v curl >/dev/null; then
  say "emulator counters"
  curl -s "http://127.0.0.1:$IM_PORT/emulator/stats" | tr ',' '\n' | grep -E '"rate_limited"' || true
fi

say "done: reports in $WORK (import-report.json, verify-report.json)"
