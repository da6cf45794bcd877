#!/usr/bin/env bash
# Local Apache Kafka for tests, the demo and CI: a single KRaft node (broker + controller) on 127.0.0.1.
#
#   scripts/kafka.sh start | stop | status | fetch | logs | classpath
#
# On first use it fetches the official broker (org.apache.kafka:kafka_2.13 and kafka-tools, with their runtime
# dependencies) from Maven Central with `mvn dependency:copy-dependencies` into a cache outside the repository.
# Several brokers can run at once on different ports; each keeps its data under the cache, per port.
#
# Environment:
#   KAFKA_PORT             client port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT + 1)
#   KAFKA_VERSION          Apache Kafka version (default 4.1.1)
#   IMBRIDGE_CACHE         cache directory (default ~/.cache/imbridge)
#   KAFKA_HEAP_OPTS        JVM heap (default -Xms256m -Xmx768m)
#   KAFKA_KEEP_DATA=1      keep the previous data on start (default: a fresh, empty broker every start)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
CACHE="${IMBRIDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imbridge}"
LIB="$CACHE/kafka-$KAFKA_VERSION/libs"
RUN="$CACHE/run/kafka-$KAFKA_PORT"
PIDFILE="$RUN/kafka.pid"
LOG="$RUN/kafka.log"

say() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$LIB/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { say "mvn is required to fetch Kafka's jars (apt-get install maven)"; exit 1; }
  command -v java >/dev/null || { say "java 17+ is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
  say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIB"
  local work; work="$(mktemp -d)"
  cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>imbridge.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- slf4j 2 + log4j2 binding: without them the broker logs nothing and start-up cannot be observed. -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  mkdir -p "$LIB"
  (cd "$work" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB") \
    || { say "mvn failed"; rm -rf "$work"; exit 1; }
  rm -rf "$work"
  ls "$LIB"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || { say "kafka_2.13 jar missing after fetch"; exit 1; }
  cat > "$CACHE/kafka-$KAFKA_VERSION/log4j2.properties" <<'L4J'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
L4J
  touch "$LIB/.complete"
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  fetch
  if running; then say "already running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$PIDFILE"))"; return 0; fi
  if port_open "$KAFKA_PORT"; then say "port $KAFKA_PORT is taken by another process"; exit 1; fi
  local cp="$LIB/*"
  if [ "${KAFKA_KEEP_DATA:-0}" != 1 ]; then rm -rf "$RUN"; fi
  mkdir -p "$RUN/data"
  cat > "$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$RUN/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=1000
group.min.session.timeout.ms=1000
log.segment.bytes=134217728
PROPS
  if [ ! -f "$RUN/data/meta.properties" ]; then
    local uuid; uuid="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    java -cp "$cp" -Dlog4j2.configurationFile="$CACHE/kafka-$KAFKA_VERSION/log4j2.properties" \
      kafka.tools.StorageTool format -t "$uuid" -c "$RUN/server.properties" >"$RUN/format.log" 2>&1 \
      || { say "formatting storage failed:"; cat "$RUN/format.log" >&2; exit 1; }
  fi
  say "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  # setsid: the broker outlives this script and is stopped by `stop`, never by the caller's Ctrl-C.
  setsid java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CACHE/kafka-$KAFKA_VERSION/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$RUN/server.properties" >"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  local i
  for i in $(seq 1 240); do
    if ! running; then say "broker exited during start-up; last log lines:"; tail -n 30 "$LOG" >&2; exit 1; fi
    if port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOG"; then
      say "ready: KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    sleep 0.5
  done
  say "broker did not become ready in 120 s; last log lines:"; tail -n 30 "$LOG" >&2
  stop; exit 1
}

stop() {
  if ! running; then say "not running on port $KAFKA_PORT"; rm -f "$PIDFILE"; return 0; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped (port $KAFKA_PORT)"; return 0; }
    sleep 0.5
  done
  say "broker did not stop in 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

status() {
  if running && port_open "$KAFKA_PORT"; then
    echo "running: 127.0.0.1:$KAFKA_PORT pid $(cat "$PIDFILE") (Kafka $KAFKA_VERSION)"
  elif running; then
    echo "starting: pid $(cat "$PIDFILE"), port $KAFKA_PORT not open yet"; return 1
  else
    echo "stopped (port $KAFKA_PORT)"; return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  logs) tail -n "${2:-100}" "$LOG" ;;
  classpath) fetch; echo "$LIB/*" ;;
  *) echo "usage: $0 start|stop|status|fetch|logs [N]|classpath" >&2; exit 2 ;;
esac
