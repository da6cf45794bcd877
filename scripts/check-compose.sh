#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine:
#   1. against the Compose specification's JSON Schema (check-jsonschema --builtin-schema vendor.compose-spec);
#   2. deploy/check_compose.py: healthchecks, 127.0.0.1-only ports, versions from the environment, the example
#      configuration and its secrets mounted, Prometheus targets, emulator secrets.
# check-jsonschema comes from PyPI into a virtualenv in the cache (never into the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${IMBRIDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imbridge}"
VENV="$CACHE/venv-compose-check"
if [ ! -x "$VENV/bin/check-jsonschema" ]; then
  echo "check-compose: installing check-jsonschema into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check check-jsonschema
fi
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
"$VENV/bin/python" deploy/check_compose.py
