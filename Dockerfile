# The one imbridge binary (every part: ingest, to-im, to-legacy, import, the emulators), built in a Rust image and
# shipped on a slim Debian with only what it links against.
#   docker build -t imbridge .
#   docker run --rm imbridge --help
# docker-compose.yml builds and runs it for every service.

# Build: librdkafka is compiled from source by rdkafka-sys (make, a C compiler, zlib and OpenSSL headers: TLS and
# SASL/SCRAM to an existing cluster).
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends cmake pkg-config zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p imbridge && strip target/release/imbridge

# Run: OpenSSL and zlib at run time, CA certificates for TLS, curl for the compose healthchecks; a non-root user.
FROM debian:bookworm-slim
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates curl libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 imbridge \
    && mkdir -p /var/lib/imbridge && chown imbridge /var/lib/imbridge
COPY --from=build /src/target/release/imbridge /usr/local/bin/imbridge
COPY imbridge.example.toml /etc/imbridge/imbridge.example.toml
USER imbridge
ENV IMBRIDGE_LOG_FORMAT=json
# ingest, to-im ops, to-legacy ops, IM emulator, legacy emulator (each binds what its configuration says).
EXPOSE 8080 9102 9103 8081 8082
ENTRYPOINT ["/usr/local/bin/imbridge"]
CMD ["--help"]
