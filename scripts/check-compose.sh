#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine:
#   1. against the Compose specification's JSON Schema (check-jsonschema --builtin-schema vendor.compose-spec);
#   2. deploy/check_compose.py: healthchecks, 127.0.0.1-only ports, versions from the environment, the example
#      configuration and its secrets mounted, Prometheus targets and alert rules, Grafana provisioning, metric
#      names in alerts and dashboards, emulator secrets;
#   3. the alert rules with promtool (check rules, and the unit tests in deploy/prometheus/alerts_test.yml).
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
# The alert rules: syntax (promtool check rules) and their unit tests (promtool test rules). promtool comes from
# Debian's `prometheus` package (scripts/setup.sh --ci installs it); CI must run it, elsewhere it is skipped.
if command -v promtool >/dev/null 2>&1; then
  promtool check rules deploy/prometheus/alerts.yml
  promtool test rules deploy/prometheus/alerts_test.yml
elif [ "${CI:-}" = true ]; then
  echo "check-compose: promtool is missing (apt-get install prometheus)" >&2
  exit 1
else
  echo "check-compose: promtool not installed, alert rules not checked (apt-get install prometheus)" >&2
fi
