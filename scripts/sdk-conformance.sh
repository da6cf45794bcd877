#!/usr/bin/env bash
# Drives the IM emulator through a public server SDK as an independent client: starts `imbridge emulate im` on a
# free port, runs tests/sdk-java (io.github.doocs:im-server-sdk-java from Maven Central, base URL overridden to
# the emulator) through a whole migration sequence, stops the emulator. Exits non-zero on any failed step; the
# last line is `sdk: N passed, M failed`.
#
#   scripts/sdk-conformance.sh
#
# Environment:
#   IMBRIDGE_BIN   the imbridge binary (default: $CARGO_TARGET_DIR or target, debug build; built if missing)
#   IMBRIDGE_CACHE cache directory for the compiled program (default ~/.cache/imbridge, as scripts/kafka.sh)
# Needs java 17+, javac and mvn (Maven resolves the SDK and its dependencies on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
say() { echo "sdk-conformance: $*" >&2; }

for tool in java javac mvn; do
  command -v "$tool" >/dev/null || { say "$tool is required (apt-get install openjdk-17-jdk-headless maven)"; exit 1; }
done

BIN="${IMBRIDGE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/imbridge}"
if [ ! -x "$BIN" ]; then
  say "building $BIN"
  cargo build -p imbridge --locked
fi

CACHE="${IMBRIDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imbridge}/sdk-java"
WORK="$(mktemp -d)"
EMU_PID=""
cleanup() {
  if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then
    kill "$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The SDK's classpath (Maven downloads it once into ~/.m2), then the one source file compiled with javac.
PROJECT="$ROOT/tests/sdk-java"
mkdir -p "$CACHE"
CP_FILE="$CACHE/classpath.txt"
cp_stale() {
  [ ! -s "$CP_FILE" ] || [ "$PROJECT/pom.xml" -nt "$CP_FILE" ] && return 0
  local jar
  # A jar Maven's local repository no longer holds (cleaned ~/.m2): resolve again.
  for jar in $(tr ':' ' ' <"$CP_FILE"); do [ -f "$jar" ] || return 0; done
  return 1
}
if cp_stale; then
  say "resolving the SDK with Maven"
  mvn -B -q -f "$PROJECT/pom.xml" dependency:build-classpath -Dmdep.outputFile="$CP_FILE.tmp" >"$WORK/mvn.log" 2>&1 || {
    cat "$WORK/mvn.log" >&2
    say "mvn could not resolve io.github.doocs:im-server-sdk-java"
    exit 1
  }
  mv "$CP_FILE.tmp" "$CP_FILE"
fi
SDK_CP="$(cat "$CP_FILE")"
mkdir -p "$WORK/classes"
javac -d "$WORK/classes" -cp "$SDK_CP" --release 17 -Xlint:-options \
  $(find "$PROJECT/src/main/java" -name '*.java')

# A free port: bind 0, read it back (the emulator binds it again right away).
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)))"
SDKAPPID=1400000000
ADMIN=administrator
KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$BIN" --log-format text --log-level warn emulate im --listen "127.0.0.1:$PORT" \
  --sdkappid "$SDKAPPID" --secret-key "$KEY" --admin "$ADMIN" >"$WORK/emulator.log" 2>&1 &
EMU_PID=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/emulator/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$EMU_PID" 2>/dev/null; then
    cat "$WORK/emulator.log" >&2
    say "the emulator did not start"
    exit 1
  fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/emulator/healthz" >/dev/null || { say "the emulator is not ready"; exit 1; }

status=0
IM_BASE_URL="http://127.0.0.1:$PORT" IM_SDKAPPID="$SDKAPPID" IM_SECRET_KEY="$KEY" IM_ADMIN="$ADMIN" \
  java -cp "$WORK/classes:$SDK_CP" imbridge.sdk.SdkConformance || status=$?
if [ "$status" -ne 0 ]; then
  say "emulator log:"
  tail -n 40 "$WORK/emulator.log" >&2
fi
exit "$status"
