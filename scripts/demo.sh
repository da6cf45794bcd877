#!/usr/bin/env bash
# The imbridge demo, on a fresh machine (scripts/setup.sh installs Rust, a C toolchain with OpenSSL headers, Java 17
# and Maven where they are missing). Both ways an app can migrate:
#
#   Forced upgrade
#   1. builds the imbridge binary (or reuses an up-to-date release or debug build); starts a local Apache Kafka broker on its own port (scripts/kafka.sh), the
#      Tencent Cloud IM emulator (`imbridge emulate im`) with IM's documented frequency limits ON, and
#      `imbridge ingest`, which receives IM's callbacks;
#   2. generates a realistic sample export (deterministic seed: 200 users, 1,000 friendships, 20,000 1:1
#      messages, 30 groups, 5,000 group messages);
#   3. imports it (`imbridge import`: progress bars, then the report with the wall time beside the quota-bound
#      lower bound), verifies it (`imbridge verify`: IM read back and compared with the export);
#   Coexistence
#   4. starts the legacy emulator (`imbridge emulate legacy`) seeded with the same export, so both sides hold the
#      same history, and the sync services `imbridge to-im` and `imbridge to-legacy` (`imbridge ingest`, where
#      IM's callbacks go, runs from step 1); one generated config file, logs and ops ports on 127.0.0.1;
#   5. drives live traffic from both apps (`imbridge demo traffic`): old-app users through the legacy emulator's
#      user API, new-app users through the IM emulator's client simulation — 1:1 and group messages, groups
#      created, renamed, joined, left and dismissed — with a progress line per round;
#   6. once nothing is in flight, prints the convergence report (`imbridge demo check`): events each way,
#      end-to-end latency, echoes dropped, dead letters, and every conversation the traffic touched compared on
#      both sides — PASS, or FAIL and a non-zero exit;
#   7. says where the logs, config and reports are, then stops everything it started, the broker included (also
#      on Ctrl-C or a failure).
#
# The second mode, `scripts/demo.sh --im-to-im`: the old system is itself a Tencent Cloud IM application.
#   1. starts Kafka and two IM emulators with IM's frequency limits on: the old app (SDKAppID 1400000001) and the
#      new app (1400000002), each with its own secret key;
#   2. gives the old app a history: a generated sample (200 users, 5,000 1:1 and 2,000 group messages) imported
#      into it through its REST import APIs, as years of use would have left it;
#   3. exports the old app (`imbridge export from-im`: accounts from the operator's list — IM cannot list them —
#      then profiles, friends, 1:1 and group history, groups and members, within the old app's quotas), kills the
#      export with SIGKILL in the middle of the 1:1 history and runs it again: it resumes from its checkpoint;
#   4. imports the export into the new app (`imbridge import`) and verifies it (`imbridge verify`);
#   5. coexistence: both apps call back `imbridge ingest` (each with its own token); `imbridge to-im` applies the
#      old app's events to the new app and `imbridge to-legacy` the new app's to the old app through its REST API
#      ([old_side] kind = "im"); users of both apps chat in rounds (`imbridge demo traffic`) and the convergence
#      report compares every conversation they touched on both apps (`imbridge demo check`): PASS or FAIL.
#
# Environment:
#   DEMO_PROFILE    debug or release: which build to run (default: an up-to-date existing build, release first;
#                   else debug, whose first build takes about 6 minutes on 2 cores)
#   DEMO_SCALE      coexistence traffic: small (default, ~550 operations in ~25 s) or full (~1,500 in ~35 s)
#   DEMO_DIR        where the export, config, logs and reports go (default: a new temporary directory, kept)
#   DEMO_SEED       export seed (default 42)
#   DEMO_HOLD=1     keep everything running after the report until Ctrl-C (to look at status and /metrics)
#   DEMO_KAFKA_PORT broker port (default 29092; the controller takes the next one)
#   DEMO_IM_PORT, DEMO_LEGACY_PORT, DEMO_INGEST_PORT, DEMO_TO_IM_PORT, DEMO_TO_LEGACY_PORT
#                   the emulators' and services' ports on 127.0.0.1 (default 28081, 28082, 28080, 28102, 28103)
#   DEMO_OLD_IM_PORT the old IM app's emulator port with --im-to-im (default 28083)
set -euo pipefail
MODE=legacy
case "${1:-}" in
  "") ;;
  --im-to-im) MODE=im-to-im ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: scripts/demo.sh [--im-to-im]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
# Installs what is missing (C toolchain, OpenSSL/zlib headers, Java 17, Maven, Rust) or says how.
source scripts/setup.sh
imbridge_setup

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
# fresh PROFILE: the profile's binary exists and no source or manifest changed since it was built.
fresh() {
  local bin="$TARGET/$1/imbridge"
  [ -x "$bin" ] && [ -z "$(find services Cargo.toml Cargo.lock -newer "$bin" \( -name '*.rs' -o -name '*.toml' -o -name Cargo.lock \) -print -quit)" ]
}
if [ -n "${DEMO_PROFILE:-}" ]; then
  PROFILE="$DEMO_PROFILE"
elif fresh release; then
  PROFILE=release
else
  PROFILE=debug
fi
SCALE="${DEMO_SCALE:-small}"
SEED="${DEMO_SEED:-42}"
KAFKA_PORT="${DEMO_KAFKA_PORT:-29092}"
IM_PORT="${DEMO_IM_PORT:-28081}"
LEGACY_PORT="${DEMO_LEGACY_PORT:-28082}"
INGEST_PORT="${DEMO_INGEST_PORT:-28080}"
TO_IM_PORT="${DEMO_TO_IM_PORT:-28102}"
TO_LEGACY_PORT="${DEMO_TO_LEGACY_PORT:-28103}"
WORK="${DEMO_DIR:-$(mktemp -d -t imbridge-demo.XXXXXX)}"
mkdir -p "$WORK"
STARTED=$SECONDS

say() { printf '\n\033[1m== %s\033[0m  (%ds)\n' "$*" "$((SECONDS - STARTED))"; }
die() { printf '\033[1;31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# http_ok PORT PATH: GET http://127.0.0.1:PORT/PATH answers 2xx (plain bash, no curl needed).
http_ok() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 &&
    read -r -t 5 status <&3 && [[ "$status" == HTTP/1.[01]\ 2* ]]) 2>/dev/null
}
kafka() { KAFKA_PORT="$KAFKA_PORT" KAFKA_CONTROLLER_PORT="$((KAFKA_PORT + 1))" scripts/kafka.sh "$@"; }

case "$SCALE" in small | full) ;; *) die "DEMO_SCALE must be small or full, not $SCALE" ;; esac
for p in "$IM_PORT" "$LEGACY_PORT" "$INGEST_PORT" "$TO_IM_PORT" "$TO_LEGACY_PORT"; do
  if port_open "$p"; then die "port $p is taken: stop what runs there or pick other DEMO_*_PORT values"; fi
done

case "$PROFILE" in debug | release) ;; *) die "DEMO_PROFILE must be debug or release, not $PROFILE" ;; esac
BIN="$TARGET/$PROFILE/imbridge"
if fresh "$PROFILE"; then
  say "reusing the up-to-date $PROFILE build ($BIN)"
else
  if [ -x "$BIN" ]; then
    say "building imbridge ($PROFILE; only what changed)"
  else
    say "building imbridge ($PROFILE; the first build takes about 6 minutes on 2 cores, later ones seconds)"
  fi
  if [ "$PROFILE" = release ]; then cargo build --release -p imbridge; else cargo build -p imbridge; fi
fi

# ---- everything started here is stopped on exit, newest first ------------------------------------------------
NAMES=()
PIDS=()
KAFKA_STARTED=0
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  set +e # stop everything, whatever fails
  if [ "${#PIDS[@]}" -gt 0 ] || [ "$KAFKA_STARTED" = 1 ]; then say "stopping what the demo started"; fi
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      # A graceful stop drains and commits; SIGKILL after 15 s.
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      echo "stopped ${NAMES[$i]} (pid $pid)"
    fi
  done
  if [ "$KAFKA_STARTED" = 1 ]; then kafka stop || true; fi
  exit "$code"
}
trap cleanup EXIT
# Output may go away before we do (`scripts/demo.sh | tee log`: Ctrl-C ends tee first): a write then fails,
# instead of SIGPIPE killing the script before it has stopped what it started.
trap '' PIPE
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

# start NAME CMD…: runs an imbridge part in the background, its output in $WORK/NAME.log.
start() {
  local name=$1
  shift
  "$@" > "$WORK/$name.log" 2>&1 &
  NAMES+=("$name")
  PIDS+=("$!")
}

# wait_http NAME PORT PATH: until it answers 2xx (the process NAME must stay alive meanwhile).
wait_http() {
  local name=$1 port=$2 path=$3 i pid=""
  for i in "${!NAMES[@]}"; do
    if [ "${NAMES[$i]}" = "$name" ]; then pid="${PIDS[$i]}"; fi
  done
  for _ in $(seq 1 600); do
    if http_ok "$port" "$path"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$WORK/$name.log" >&2; die "$name exited; log: $WORK/$name.log"; }
    sleep 0.1
  done
  tail -n 20 "$WORK/$name.log" >&2
  die "$name did not answer on http://127.0.0.1:$port$path in 60 s; log: $WORK/$name.log"
}

# ---- forced upgrade: Kafka, IM, export, import, verify ---------------------------------------------------------
say "starting Apache Kafka on 127.0.0.1:$KAFKA_PORT"
case "$(kafka status 2>/dev/null || true)" in
  stopped*) ;;
  *) echo "a broker from an earlier demo is still up on $KAFKA_PORT: restarting it empty"; kafka stop ;;
esac
kafka start
KAFKA_STARTED=1

if [ "$MODE" = im-to-im ]; then
  source scripts/demo-im-to-im.sh
  demo_im_to_im
  exit $?
fi

# The emulator's defaults: the SDKAppID and secret key of Tencent's public READMEs, admin `administrator`.
SDKAPPID=1400000000
IM_SECRET_KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
# Shared secrets of this demo: legacy webhooks, the legacy apply endpoint, IM's callback token.
WEBHOOK_SECRET=demo-webhook-secret
APPLY_SECRET=demo-apply-secret
CALLBACK_TOKEN=demo-callback-token

# One configuration for every part: import, verify, ingest, to-im, to-legacy, status, demo.
CONFIG="$WORK/imbridge.toml"
cat > "$CONFIG" <<TOML
# Generated by scripts/demo.sh. Every key is described in imbridge.example.toml.
[kafka]
bootstrap_servers = "127.0.0.1:$KAFKA_PORT"

[topics]
partitions = 12

[im]
base_url = "http://127.0.0.1:$IM_PORT"
sdkappid = $SDKAPPID
admin_identifier = "administrator"
secret_key = "$IM_SECRET_KEY"

[ingest]
listen = "127.0.0.1:$INGEST_PORT"
legacy_secret = "$WEBHOOK_SECRET"
im_callback_token = "$CALLBACK_TOKEN"
spool_dir = "$WORK/ingest-spool"
readiness_interval_ms = 500

[to_im]
listen = "127.0.0.1:$TO_IM_PORT"
readiness_interval_ms = 500

# A demo stops in seconds, and commits often so that lag reaches zero as soon as the work is done.
[to_im.live.consumer]
session_timeout_ms = 10000
drain_timeout_ms = 5000
auto_commit_interval_ms = 200

[to_legacy]
listen = "127.0.0.1:$TO_LEGACY_PORT"
apply_url = "http://127.0.0.1:$LEGACY_PORT/v1/apply"
health_url = "http://127.0.0.1:$LEGACY_PORT/healthz"
apply_secret = "$APPLY_SECRET"
readiness_interval_ms = 500

[to_legacy.consumer]
session_timeout_ms = 10000
drain_timeout_ms = 5000
auto_commit_interval_ms = 200
TOML
imbridge() { "$BIN" --config "$CONFIG" "$@"; }

# IM's callback URL is ingest from the start, as an app's console would have it: the import's read marks
# (admin_set_msg_read) already call back, and ingest answers them (read state is imported, not synced live).
say "starting the IM emulator on 127.0.0.1:$IM_PORT (frequency limits on) and ingest, which receives its callbacks"
# Callbacks as IM sends them: 8 deliveries in flight, unordered; to-legacy restores IM's order.
start im-emulator "$BIN" --log-format json emulate im --listen "127.0.0.1:$IM_PORT" \
  --callback-url "http://127.0.0.1:$INGEST_PORT/v1/im/callback" --callback-token "$CALLBACK_TOKEN"
start ingest "$BIN" --config "$CONFIG" --log-format json ingest
wait_http im-emulator "$IM_PORT" /emulator/healthz
wait_http ingest "$INGEST_PORT" /readyz

say "generating the sample export (seed $SEED) into $WORK/export"
imbridge export generate "$WORK/export" --seed "$SEED" --users 200 --friendships 1000 --c2c-messages 20000 \
  --groups 30 --group-messages 5000

say "importing (IM's quotas bound the wall time; the report compares the two)"
imbridge --log-level warn import "$WORK/export" --report "$WORK/import-report.json"

say "verifying: IM read back and compared with the export"
imbridge --log-level warn verify "$WORK/export" --report "$WORK/verify-report.json"

# ---- coexistence: the legacy system, the sync services, live traffic from both apps ---------------------------
say "coexistence: the legacy emulator (seeded with the same export), to-im and to-legacy"
# --echo-webhooks: legacy also announces the changes imbridge applied to it (marked "origin":"im"), like a
# backend whose webhook pipeline cannot tell them apart; ingest drops those echoes.
start legacy-emulator "$BIN" --log-format json emulate legacy --listen "127.0.0.1:$LEGACY_PORT" \
  --seed "$WORK/export" --ingest-url "http://127.0.0.1:$INGEST_PORT" --webhook-secret "$WEBHOOK_SECRET" \
  --apply-secret "$APPLY_SECRET" --echo-webhooks
start to-im "$BIN" --config "$CONFIG" --log-format json to-im
start to-legacy "$BIN" --config "$CONFIG" --log-format json to-legacy
wait_http legacy-emulator "$LEGACY_PORT" /healthz
wait_http to-im "$TO_IM_PORT" /readyz
wait_http to-legacy "$TO_LEGACY_PORT" /readyz
for i in "${!NAMES[@]}"; do printf '  %-16s pid %-7s log %s\n' "${NAMES[$i]}" "${PIDS[$i]}" "$WORK/${NAMES[$i]}.log"; done

say "live traffic from both apps ($SCALE)"
imbridge --log-level warn demo traffic --scale "$SCALE" --summary "$WORK/traffic.json"

say "convergence report"
RESULT=0
imbridge --log-level warn demo check --summary "$WORK/traffic.json" --report "$WORK/convergence-report.json" \
  | tee "$WORK/convergence-report.txt" || RESULT=1

say "consumer groups (imbridge status)"
imbridge --log-level warn status > "$WORK/status.txt"
grep -v '^ ' "$WORK/status.txt" || true   # the per-partition rows are in status.txt

say "where things are"
cat <<EOF
  config         $CONFIG   (imbridge --config $CONFIG config validate)
  export         $WORK/export
  reports        $WORK/import-report.json, verify-report.json, traffic.json, convergence-report.{txt,json}
  logs           $WORK/*.log  (JSON lines: grep '"level":"WARN"' $WORK/to-im.log)
  while it runs  imbridge --config $CONFIG status   (lag per partition, DLQ, parked conversations)
                 curl http://127.0.0.1:$INGEST_PORT/metrics   (ingest)
                 curl http://127.0.0.1:$TO_IM_PORT/metrics   (to-im)
                 curl http://127.0.0.1:$TO_LEGACY_PORT/metrics   (to-legacy)
                 curl http://127.0.0.1:$LEGACY_PORT/api/stats   (legacy)   curl http://127.0.0.1:$IM_PORT/emulator/stats   (IM)
                 (DEMO_HOLD=1 scripts/demo.sh keeps everything running after the report, until Ctrl-C)
EOF
if [ "${DEMO_HOLD:-0}" = 1 ]; then
  say "DEMO_HOLD=1: everything keeps running for a look around; Ctrl-C stops it all"
  while true; do sleep 1; done
fi
if [ "$RESULT" = 0 ]; then
  say "done in $((SECONDS - STARTED)) s: PASS"
else
  say "done in $((SECONDS - STARTED)) s: FAIL (see above)"
fi
exit "$RESULT"
