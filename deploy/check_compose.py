#!/usr/bin/env python3
"""Checks docker-compose.yml beyond its schema, without a Docker engine (run by scripts/check-compose.sh).

- every service has a healthcheck, and binds host ports on 127.0.0.1 only;
- every image version comes from the environment with a default (`${VAR:-default}`);
- every imbridge service mounts the example configuration and gets every secret it reads (`/run/secrets/<name>`),
  and every secret file exists;
- Prometheus scrapes each imbridge service (the console too) on the port its configuration override listens on,
  and the console watches each service (deploy/console.toml) at its compose host name and that port;
- the emulators' secrets are the ones in deploy/dev-secrets (what imbridge reads), so the stack authenticates.

Exits non-zero with one line per problem.
"""

import re
import sys
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
problems = []


def problem(msg):
    problems.append(msg)


compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
services = compose.get("services") or {}
secrets = compose.get("secrets") or {}
example = (ROOT / "imbridge.example.toml").read_text()
example_secrets = sorted(set(re.findall(r'^\s*[^#\n]*_file"?\s*=\s*"/run/secrets/([^"]+)"', example, re.M)))
if not example_secrets:
    problem("imbridge.example.toml reads no secret from /run/secrets (expected *_file keys)")

for name, svc in services.items():
    hc = svc.get("healthcheck") or {}
    if not hc.get("test") or hc.get("disable"):
        problem(f"{name}: no healthcheck")
    for p in svc.get("ports") or []:
        host_ip = p.get("host_ip") if isinstance(p, dict) else (str(p).split(":")[0] if str(p).count(":") >= 2 else None)
        if host_ip != "127.0.0.1":
            problem(f"{name}: port {p!r} does not bind to 127.0.0.1 only")
    image = svc.get("image", "")
    if not re.search(r"\$\{[A-Z0-9_]+:-[^}]+\}", image):
        problem(f"{name}: image {image!r} does not take its version from the environment with a default")
    command = svc.get("command") or []
    if image.startswith("imbridge:") and command[:1] != ["emulate"]:
        volumes = [str(v) for v in svc.get("volumes") or []]
        if not any(v.startswith("./imbridge.example.toml:") for v in volumes):
            problem(f"{name}: does not mount ./imbridge.example.toml")
        env = svc.get("environment") or {}
        if env.get("IMBRIDGE_CONFIG") not in [v.split(":")[1] for v in volumes if v.startswith("./imbridge.example.toml:")]:
            problem(f"{name}: IMBRIDGE_CONFIG does not point at the mounted example configuration")
        got = sorted(s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or [])
        for s in example_secrets:
            if s not in got:
                problem(f"{name}: secret {s} (read by imbridge.example.toml) is not mounted")

for s in example_secrets:
    spec = secrets.get(s)
    if not spec or "file" not in spec:
        problem(f"secret {s}: not defined with a file")
    elif not (ROOT / spec["file"]).is_file():
        problem(f"secret {s}: file {spec['file']} does not exist")

# Prometheus scrapes every imbridge service where it listens.
prom = YAML(typ="safe").load((ROOT / "deploy" / "prometheus.yml").read_text())
targets = {}
for job in prom.get("scrape_configs") or []:
    for sd in job.get("dns_sd_configs") or []:
        for n in sd.get("names") or []:
            targets[n] = sd.get("port")
    for sc in job.get("static_configs") or []:
        for t in sc.get("targets") or []:
            host, _, port = t.rpartition(":")
            targets[host] = int(port)
listen_env = {
    "ingest": "IMBRIDGE_INGEST__LISTEN",
    "to-im": "IMBRIDGE_TO_IM__LISTEN",
    "to-legacy": "IMBRIDGE_TO_LEGACY__LISTEN",
    "console": "IMBRIDGE_CONSOLE__LISTEN",
}
listens = {}
for svc, var in listen_env.items():
    if svc not in services:
        problem(f"service {svc} is missing")
        continue
    listen = (services[svc].get("environment") or {}).get(var, "")
    port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
    if targets.get(svc) != port:
        problem(f"prometheus scrapes {svc} on {targets.get(svc)}, but it listens on {listen!r}")
    hc = " ".join(services[svc]["healthcheck"]["test"])
    if f":{port}/readyz" not in hc:
        problem(f"{svc}: healthcheck {hc!r} does not probe /readyz on its port {port}")
    listens[svc] = port

# The console watches the services where they listen, through the file it is started with.
console_cmd = (services.get("console") or {}).get("command") or []
if "--services-file" not in console_cmd:
    problem("console: not started with --services-file (its [[console.services]] default is 127.0.0.1)")
else:
    mounted = console_cmd[console_cmd.index("--services-file") + 1]
    cvols = [str(v) for v in services["console"].get("volumes") or []]
    if f"./deploy/console.toml:{mounted}:ro" not in cvols:
        problem(f"console: deploy/console.toml is not mounted at {mounted}")
    watched = {s["name"]: s["url"] for s in tomllib.loads((ROOT / "deploy" / "console.toml").read_text())["services"]}
    for svc in ("ingest", "to-im", "to-legacy"):
        if watched.get(svc) != f"http://{svc}:{listens.get(svc)}":
            problem(f"deploy/console.toml watches {svc} at {watched.get(svc)!r}, not http://{svc}:{listens.get(svc)}")

# Prometheus loads the alert rules, and Grafana gets its provisioning and dashboards.
if "/etc/prometheus/alerts.yml" not in (prom.get("rule_files") or []):
    problem("deploy/prometheus.yml does not load /etc/prometheus/alerts.yml")
if "prometheus" in services:
    pvols = [str(v) for v in services["prometheus"].get("volumes") or []]
    if "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" not in pvols:
        problem("prometheus: deploy/prometheus/alerts.yml is not mounted at /etc/prometheus/alerts.yml")
if "grafana" not in services:
    problem("service grafana is missing")
else:
    gvols = [str(v) for v in services["grafana"].get("volumes") or []]
    for want in ("./deploy/grafana/provisioning:/etc/grafana/provisioning:ro", "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro"):
        if want not in gvols:
            problem(f"grafana: volume {want} missing")
    for d in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"):
        import json
        try:
            dash = json.loads(d.read_text())
        except ValueError as e:
            problem(f"{d.name}: not JSON: {e}")
            continue
        uids = {p.get("datasource", {}).get("uid") for p in dash.get("panels", [])}
        if uids != {"imbridge-prometheus"}:
            problem(f"{d.name}: panels use data sources {uids}, not the provisioned imbridge-prometheus")

# Every imbridge_* metric the alerts and dashboards use is one a service exports (names grepped from the code),
# or one of the names agreed for parts still being built (ingest's spool, reconcile).
exported = set()
for f in (ROOT / "services").glob("*/src/**/*.rs"):
    exported |= set(re.findall(r'"(imbridge_[a-z0-9_]+)"', f.read_text()))
    # The ordered consumer's family, registered as imbridge_<part>_<name> (services/kafka/src/metrics.rs).
    for part in ("to_im", "to_legacy"):
        for name in re.findall(r'p\("([a-z_]+)"\)', f.read_text()):
            exported.add(f"imbridge_{part}_{name}")
agreed = {"imbridge_ingest_spool_bytes", "imbridge_ingest_spool_capacity_bytes", "imbridge_reconcile_differences_total"}
used_in = {
    "deploy/prometheus/alerts.yml": (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(),
    **{f"deploy/grafana/dashboards/{d.name}": d.read_text() for d in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")},
}
for where, text in used_in.items():
    names = set(re.findall(r"imbridge_[a-z0-9_]+", text))
    # Name-regex matchers (`imbridge_to_(im|legacy)_…`) are expanded by hand in the alerts; skip their fragments.
    for n in sorted(names - exported - agreed):
        if n.endswith("_") or n.endswith("_bucket") and n[: -len("_bucket")] in exported:
            continue
        problem(f"{where}: metric {n} is not exported by any service")

# The emulators authenticate with the same secrets imbridge reads.
dev = {p.name: p.read_text().strip() for p in (ROOT / "deploy" / "dev-secrets").iterdir() if p.name != "README.md"}
im = tomllib.loads((ROOT / "deploy" / "im-emulator.toml").read_text())
legacy = tomllib.loads((ROOT / "deploy" / "legacy-emulator.toml").read_text())
pairs = [
    ("im-emulator secret_key", im.get("secret_key"), "im_secret_key"),
    ("im-emulator callback_token", im.get("callback_token"), "im_callback_token"),
    ("legacy-emulator webhook_secret", legacy.get("webhook_secret"), "legacy_webhook_secret"),
    ("legacy-emulator apply_secrets[0]", (legacy.get("apply_secrets") or [None])[0], "legacy_apply_secret"),
]
for what, value, secret in pairs:
    if value != dev.get(secret):
        problem(f"{what} differs from deploy/dev-secrets/{secret}")

for p in problems:
    print(f"compose: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"compose: {len(services)} services: healthchecks, 127.0.0.1 binds, versions, config, secrets and scrape targets ok")
