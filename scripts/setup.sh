#!/usr/bin/env bash
# The one set-up step of imbridge: makes sure this machine has what building, testing and running the demo need,
# and installs what is missing where it can. Sourced by scripts/demo.sh, scripts/test.sh and .ci/run (so the PATH
# it sets, e.g. ~/.cargo/bin, carries over), or run on its own:
#
#   scripts/setup.sh [--ci]
#
# Needs: a C toolchain and make (librdkafka is built from source), pkg-config, OpenSSL and zlib headers (librdkafka
# with TLS), curl, a Java 17+ JDK and Maven (scripts/kafka.sh fetches Apache Kafka's jars from Maven Central and runs the
# broker), Rust (rustup, minimal profile, with clippy and rustfmt). `--ci` adds what only CI's gates use
# (python3-venv for the docker-compose schema check, `prometheus` for promtool's check of the alert rules, `chromium`
# for the console's end-to-end test in headless mode).
#
# As root on Debian or Ubuntu it installs what is missing with apt-get (and Rust with rustup) and says what it
# installs; otherwise it prints the exact command to run and fails. Quiet when everything is present; running it
# again changes nothing.

# Kept in functions and `return`s so that sourcing it never exits the caller's shell by itself.
imbridge_setup_say() { echo "setup: $*" >&2; }

# Debian package for each missing requirement; one list, read by every caller.
imbridge_setup_missing_packages() {
  local ci="$1" pkgs=()
  command -v cc >/dev/null 2>&1 || pkgs+=(build-essential)
  command -v make >/dev/null 2>&1 || pkgs+=(make)
  command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl ca-certificates)
  imbridge_setup_has_header openssl libssl-dev || pkgs+=(libssl-dev)
  imbridge_setup_has_header zlib zlib1g-dev || pkgs+=(zlib1g-dev)
  # A JDK, not only a JRE: the SDK conformance tier compiles a small Java program.
  imbridge_setup_java_ok || pkgs+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  if [ "$ci" = 1 ]; then
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    { command -v dpkg >/dev/null 2>&1 && dpkg -s python3-venv >/dev/null 2>&1; } ||
      python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs+=(python3-venv)
    command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
  fi
  echo "${pkgs[*]}"
}

# A library's development files: the Debian package when dpkg exists, pkg-config's word elsewhere.
imbridge_setup_has_header() {
  if command -v dpkg >/dev/null 2>&1; then
    dpkg -s "$2" >/dev/null 2>&1
  else
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$1"
  fi
}

# Java 17 or newer (Kafka 4 needs 17), with its compiler.
imbridge_setup_java_ok() {
  command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 || return 1
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$v" ] && [ "$v" -ge 17 ]
}

imbridge_setup() {
  local ci=0
  [ "${1:-}" = "--ci" ] && ci=1
  local missing
  missing=$(imbridge_setup_missing_packages "$ci")
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      imbridge_setup_say "installing $missing (apt-get)"
      export DEBIAN_FRONTEND=noninteractive
      # shellcheck disable=SC2086 # one word per package
      apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        { imbridge_setup_say "apt-get failed installing $missing"; return 1; }
    else
      imbridge_setup_say "missing: $missing"
      imbridge_setup_say "on Debian or Ubuntu run: sudo apt-get install -y $missing"
      return 1
    fi
  fi

  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # rustup-init straight from the Rust project's own distribution server (what sh.rustup.rs would download).
    local init_url="https://static.rust-lang.org/rustup/dist/$(uname -m)-unknown-linux-gnu/rustup-init"
    local rustup_args="-y --no-modify-path --profile minimal --component clippy,rustfmt"
    if command -v curl >/dev/null 2>&1; then
      imbridge_setup_say "installing Rust (rustup, minimal profile, clippy and rustfmt) into ~/.cargo"
      local init
      init="$(mktemp -d)/rustup-init"
      { curl -sSfL "$init_url" -o "$init" && chmod +x "$init" && "$init" $rustup_args >/dev/null 2>&1; } ||
        { imbridge_setup_say "rustup failed; run: curl -sSfL $init_url -o rustup-init && sh -c './rustup-init $rustup_args'"; return 1; }
      rm -rf "$(dirname "$init")"
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      imbridge_setup_say "Rust is missing; install curl, then run scripts/setup.sh again (or see https://rustup.rs)"
      return 1
    fi
  fi
  # clippy and rustfmt: the lint gates and `cargo fmt`; present already on most toolchains.
  if command -v rustup >/dev/null 2>&1; then
    { cargo clippy --version && cargo fmt --version; } >/dev/null 2>&1 ||
      { imbridge_setup_say "adding rustup components clippy and rustfmt"; rustup component add clippy rustfmt >/dev/null 2>&1; } ||
      imbridge_setup_say "could not add clippy/rustfmt (only the lint gates need them)"
  fi
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  imbridge_setup "$@" || exit 1
fi
