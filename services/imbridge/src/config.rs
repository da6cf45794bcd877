//! `imbridge.toml`: one file for every part, every key overridable from the environment, secrets from files.
//!
//! - Sections: `[kafka]` (plus `[kafka.client]`, passed to librdkafka as is), `[topics]`, `[im]`, and one
//!   section per service. Every section has defaults, so a missing file or section is fine.
//! - Environment: `IMBRIDGE_<SECTION>__<KEY>[__<SUBKEY>…]=value` overrides a key (double underscore between
//!   levels, since keys contain single ones), e.g. `IMBRIDGE_IM__SDKAPPID=1400000000`,
//!   `IMBRIDGE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092`; under `kafka.client` underscores become dots
//!   (`IMBRIDGE_KAFKA__CLIENT__SASL_MECHANISM=PLAIN` sets `sasl.mechanism`).
//! - Secrets: any key `<name>_file` is replaced by `<name>` = the file's contents, trimmed
//!   (`im.secret_key_file = "/run/secrets/im_key"`), so secrets never need to sit in the file or environment.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use imbridge_core::topics::TopicNames;
use imbridge_im::ImConfig;
use imbridge_kafka::KafkaConfig;
use serde::{Deserialize, Serialize};

const ENV_PREFIX: &str = "IMBRIDGE_";

/// The whole resolved configuration. Services add their section here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    pub im: ImConfig,
    /// What the old system is: the legacy contract (default) or another IM app.
    pub old_side: imbridge_runtime::OldSideConfig,
    pub ingest: imbridge_ingest::IngestConfig,
    pub to_legacy: imbridge_to_legacy::ToLegacyConfig,
    pub to_im: imbridge_to_im::ToImConfig,
    pub import: imbridge_importer::ImportConfig,
    pub console: imbridge_console::ConsoleConfig,
    pub reconcile: imbridge_reconcile::ReconcileConfig,
    pub export: imbridge_exporter::ExportConfig,
}

/// Where the configuration came from, for `config validate` and start-up logs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: AppConfig,
    pub file: Option<PathBuf>,
    pub env_overrides: Vec<String>,
}

/// Reads `path` (or `./imbridge.toml` when it exists and no path is given), applies environment overrides and
/// secret files, and checks the result.
pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let file = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("imbridge.toml")).filter(|p| p.exists()),
    };
    let mut root = match &file {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            text.parse::<toml::Table>().with_context(|| format!("{} is not valid TOML", p.display()))?
        }
        None => toml::Table::new(),
    };
    let env_overrides = apply_env(&mut root, std::env::vars())?;
    resolve_secret_files(&mut root)?;
    let config: AppConfig = toml::Value::Table(root)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration: {}", e.message()))?;
    validate(&config)?;
    Ok(Loaded { config, file, env_overrides })
}

fn validate(c: &AppConfig) -> anyhow::Result<()> {
    if c.kafka.bootstrap_servers.trim().is_empty() {
        anyhow::bail!("kafka.bootstrap_servers is empty");
    }
    c.topics.validate().map_err(anyhow::Error::msg)?;
    c.old_side.validate(&c.im).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(())
}

/// Applies `IMBRIDGE_A__B=v` variables; returns the keys set (never the values: they may be secrets).
fn apply_env(root: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        if !rest.contains("__") {
            // IMBRIDGE_LOG, IMBRIDGE_CONFIG, … are command-line options, not configuration keys.
            continue;
        }
        let mut path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let client = path.len() >= 3 && path[0] == "kafka" && path[1] == "client";
        if client {
            let key = path[2..].join(".").replace('_', ".");
            path.truncate(2);
            path.push(key);
        }
        // librdkafka's settings are strings whatever they look like ("16384", "true").
        let value = if client { toml::Value::String(value) } else { parse_scalar(&value) };
        set_path(root, &path, value).with_context(|| format!("environment variable {name}"))?;
        applied.push(path.join("."));
    }
    applied.sort();
    Ok(applied)
}

/// Numbers and booleans become TOML numbers/booleans; anything else stays a string.
fn parse_scalar(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = v.parse::<f64>()
        && v.contains('.')
    {
        return toml::Value::Float(f);
    }
    match v {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(v.to_owned()),
    }
}

fn set_path(root: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let (last, parents) = path.split_last().context("empty key")?;
    let mut t = root;
    for p in parents {
        let entry = t.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry.as_table_mut().with_context(|| format!("{p} is not a table"))?;
    }
    // A key the file holds as a string keeps string type even if the value looks numeric (ids, hex keys).
    let value = match (t.get(last), value) {
        (Some(toml::Value::String(_)), v) if !v.is_str() => toml::Value::String(scalar_text(&v)),
        (_, v) => v,
    };
    t.insert(last.clone(), value);
    Ok(())
}

fn scalar_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `<name>_file = "path"` with `<name> = <contents of path>`, recursively.
fn resolve_secret_files(t: &mut toml::Table) -> anyhow::Result<()> {
    let file_keys: Vec<String> = t.keys().filter(|k| k.ends_with("_file")).cloned().collect();
    for k in file_keys {
        let Some(toml::Value::String(path)) = t.get(&k).cloned() else { continue };
        let base = k.trim_end_matches("_file").to_owned();
        // Keys that are genuinely paths (a state file) stay as they are.
        if !is_secret_name(&base) {
            continue;
        }
        let contents = std::fs::read_to_string(&path).with_context(|| format!("cannot read {k} = {path:?}"))?;
        t.remove(&k);
        t.insert(base, toml::Value::String(contents.trim().to_owned()));
    }
    for (_, v) in t.iter_mut() {
        if let toml::Value::Table(sub) = v {
            resolve_secret_files(sub)?;
        }
    }
    Ok(())
}

/// Names whose values are secrets: masked when printed, loadable from `<name>_file`.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "token", "password", "passwd", "private_key"].iter().any(|s| n.contains(s))
        || n == "secret_key"
        || n == "secrets"
}

/// The configuration as TOML with every secret replaced by `***`.
pub fn render_masked(c: &AppConfig) -> anyhow::Result<String> {
    let mut v = toml::Value::try_from(c).context("cannot render configuration")?;
    mask(&mut v);
    toml::to_string_pretty(&v).context("cannot render configuration")
}

fn mask(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                if is_secret_name(k) && !matches!(v, toml::Value::Table(_)) {
                    mask_secret(v);
                } else {
                    mask(v);
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Masks one secret value and keeps its shape: an unset secret (empty string) or an empty list of secrets
/// prints as what it is, so `config validate` shows which secrets are missing instead of a misleading `***`.
fn mask_secret(v: &mut toml::Value) {
    match v {
        toml::Value::String(s) if s.is_empty() => {}
        toml::Value::Array(a) => a.iter_mut().for_each(mask_secret),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| mask_secret(v)),
        other => *other = toml::Value::String("***".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn env_overrides_nested_keys_and_kafka_client_dots() {
        let mut t: toml::Table = "[im]\nsecret_key = \"abc\"\n".parse().expect("toml");
        let set = apply_env(
            &mut t,
            vars(&[
                ("IMBRIDGE_IM__SDKAPPID", "1400000000"),
                ("IMBRIDGE_IM__SECRET_KEY", "123"),
                ("IMBRIDGE_KAFKA__CLIENT__SASL_MECHANISM", "PLAIN"),
                ("IMBRIDGE_KAFKA__CLIENT__QUEUED_MAX_MESSAGES_KBYTES", "2048"),
                ("IMBRIDGE_LOG", "debug"),
                ("OTHER", "x"),
            ]),
        )
        .expect("apply");
        assert_eq!(
            set,
            vec![
                "im.sdkappid",
                "im.secret_key",
                "kafka.client.queued.max.messages.kbytes",
                "kafka.client.sasl.mechanism"
            ]
        );
        let c: AppConfig = toml::Value::Table(t).try_into().expect("valid");
        assert_eq!(c.im.sdkappid, 1_400_000_000);
        assert_eq!(c.im.secret_key, "123", "a string key stays a string even when the value looks numeric");
        assert_eq!(c.kafka.client.get("sasl.mechanism").map(String::as_str), Some("PLAIN"));
        assert_eq!(
            c.kafka.client.get("queued.max.messages.kbytes").map(String::as_str),
            Some("2048"),
            "librdkafka settings stay strings even when they look numeric"
        );
    }

    #[test]
    fn secrets_from_files_and_masked_output() {
        let dir = std::env::temp_dir().join(format!("imbridge-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("key");
        std::fs::write(&key, "s3cr3t\n").expect("write");
        let mut t: toml::Table =
            format!("[im]\nsecret_key_file = {:?}\nsdkappid = 7\n", key.display().to_string()).parse().expect("toml");
        resolve_secret_files(&mut t).expect("resolve");
        let c: AppConfig = toml::Value::Table(t).try_into().expect("valid");
        assert_eq!(c.im.secret_key, "s3cr3t");
        let shown = render_masked(&c).expect("render");
        assert!(shown.contains("secret_key = \"***\""), "{shown}");
        assert!(!shown.contains("s3cr3t"));
    }

    #[test]
    fn masking_keeps_the_shape_of_unset_and_listed_secrets() {
        let mut c = AppConfig::default();
        let shown = render_masked(&c).expect("render");
        assert!(shown.contains("legacy_previous_secrets = []"), "an empty list is not a secret: {shown}");
        assert!(shown.contains("secret_key = \"\""), "an unset secret shows as unset: {shown}");
        c.ingest.legacy_previous_secrets = vec![imbridge_legacy::SigningSecret::new("old-one")];
        c.kafka.client.insert("sasl.password".into(), "hunter2".into());
        c.kafka.client.insert("sasl.username".into(), "imbridge".into());
        let shown = render_masked(&c).expect("render");
        assert!(shown.contains("legacy_previous_secrets = [\"***\"]"), "{shown}");
        assert!(shown.contains("\"sasl.password\" = \"***\""), "{shown}");
        assert!(shown.contains("\"sasl.username\" = \"imbridge\""), "{shown}");
        assert!(!shown.contains("old-one") && !shown.contains("hunter2"));
    }

    /// The shipped example with every `*_file` secret pointed at a temporary file (and, when `uncomment` is set,
    /// the commented `"dotted.key" = …` lines of `[kafka.client]` switched on), loaded like `load` does.
    fn example(uncomment: bool) -> (toml::Table, AppConfig) {
        let text = include_str!("../../../imbridge.example.toml");
        let text: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if uncomment && rest.starts_with('"') && rest.contains("\" = \"") && rest.ends_with('"') => {
                    rest.to_owned()
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let raw: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string()).expect("valid TOML");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = raw.clone();
        fn point_files_at(t: &mut toml::Table, dir: &Path) {
            for (k, v) in t.iter_mut() {
                match v {
                    toml::Value::Table(sub) => point_files_at(sub, dir),
                    toml::Value::String(path) if k.ends_with("_file") => {
                        assert!(path.starts_with("/run/secrets/"), "{k}: secrets come from /run/secrets");
                        let f = dir.join(k.replace('.', "_"));
                        std::fs::write(&f, format!("secret-of-{k}\n")).expect("write");
                        *path = f.display().to_string();
                    }
                    _ => {}
                }
            }
        }
        point_files_at(&mut t, dir.path());
        resolve_secret_files(&mut t).expect("secret files resolve");
        let c: AppConfig = toml::Value::Table(t).try_into().expect("the example parses into AppConfig");
        validate(&c).expect("valid");
        (raw, c)
    }

    #[test]
    fn the_example_configuration_parses_and_every_part_accepts_it() {
        let (_, c) = example(false);
        c.im.validate().expect("[im]");
        c.ingest.validate().expect("[ingest]");
        c.to_legacy.validate().expect("[to_legacy]");
        c.to_im.live.validate().expect("[to_im.live]");
        c.import.validate().expect("[import]");
        c.reconcile.validate().expect("[reconcile]");
        assert_eq!(c.im.secret_key, "secret-of-secret_key_file", "secrets come from their files");
        assert_eq!(c.ingest.im_callback_token.as_deref(), Some("secret-of-im_callback_token_file"));
        // Every value the example spells out is the default: the file documents defaults, it changes nothing
        // (secrets and the legacy apply URL aside).
        let mut d = AppConfig::default();
        d.im.secret_key = c.im.secret_key.clone();
        d.ingest.legacy_secret = c.ingest.legacy_secret.clone();
        d.ingest.im_callback_token = c.ingest.im_callback_token.clone();
        d.to_legacy.apply_secret = c.to_legacy.apply_secret.clone();
        d.to_legacy.apply_url = c.to_legacy.apply_url.clone();
        d.reconcile.legacy_secret = c.reconcile.legacy_secret.clone();
        d.im.sdkappid = c.im.sdkappid;
        assert_eq!(toml::Value::try_from(&c).expect("c"), toml::Value::try_from(&d).expect("d"));
    }

    #[test]
    fn the_example_names_every_key() {
        let (raw, _) = example(false);
        let defaults = toml::Value::try_from(AppConfig::default()).expect("render");
        fn walk(path: &str, v: &toml::Value, example: &toml::Table, missing: &mut Vec<String>) {
            let toml::Value::Table(t) = v else { return };
            for (k, sub) in t {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                let found = example.contains_key(k) || example.contains_key(&format!("{k}_file"));
                if !found {
                    missing.push(p);
                    continue;
                }
                if let (toml::Value::Table(_), Some(toml::Value::Table(et))) = (sub, example.get(k)) {
                    walk(&p, sub, et, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk("", &defaults, &raw, &mut missing);
        assert!(missing.is_empty(), "imbridge.example.toml does not document: {missing:?}");
    }

    #[test]
    fn the_example_sasl_block_works_when_switched_on() {
        let (_, c) = example(true);
        let client = &c.kafka.client;
        assert_eq!(client.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.password").map(String::as_str), Some("secret-of-sasl.password_file"));
        // The pass-through reaches librdkafka's configuration of every client kind.
        let producer = c.kafka.producer_config().expect("producer config");
        assert_eq!(producer.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        let consumer = c.kafka.consumer_config("g", &c.to_im.live.consumer).expect("consumer config");
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        // librdkafka accepts it: this build has TLS and SCRAM (rdkafka's `ssl` feature). Creating a client does
        // not connect; the CA file of the example does not exist here, so the system's CAs stand in.
        let mut kafka = c.kafka.clone();
        kafka.client.remove("ssl.ca.location");
        imbridge_kafka::Producer::new(&kafka).expect("a SASL_SSL producer can be created");
    }

    #[test]
    fn the_compose_stack_emulator_configurations_parse() {
        let im: imbridge_im_emulator::EmulatorConfig =
            toml::from_str(include_str!("../../../deploy/im-emulator.toml")).expect("deploy/im-emulator.toml");
        im.validate().expect("valid im emulator config");
        let legacy: imbridge_legacy_emulator::LegacyEmulatorConfig =
            toml::from_str(include_str!("../../../deploy/legacy-emulator.toml")).expect("deploy/legacy-emulator.toml");
        legacy.validate().expect("valid legacy emulator config");
        // The example configuration talks to that IM app.
        let (_, c) = example(false);
        assert_eq!(c.im.sdkappid, im.sdkappid);
        assert!(im.admin_identifiers.contains(&c.im.admin_identifier));
    }

    /// `load` of a file holding `text`, with no environment overrides.
    fn load_text(text: &str) -> anyhow::Result<Loaded> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("imbridge.toml");
        std::fs::write(&path, text).expect("write");
        load(Some(&path))
    }

    #[test]
    fn the_old_side_is_checked_at_load() {
        let new_app = "[im]\nsdkappid = 1400000002\nsecret_key = \"n\"\n";
        let old = |body: &str| format!("{new_app}[old_side]\n{body}");
        let c = load_text(new_app).expect("no [old_side]: the legacy contract").config;
        assert_eq!(c.old_side.kind, imbridge_runtime::OldSideKind::Legacy);
        let c = load_text(&old(
            "kind = \"im\"\nim_callback_token = \"t\"\n[old_side.im]\nsdkappid = 1400000001\nsecret_key = \"o\"\n",
        ))
        .expect("an IM old side")
        .config;
        assert_eq!(c.old_side.old_im().map(|i| i.sdkappid), Some(1_400_000_001));
        let err = |body: &str| format!("{:#}", load_text(&old(body)).expect_err("refused"));
        let e = err("kind = \"mainframe\"\n");
        assert!(e.contains("unknown variant `mainframe`, expected `legacy` or `im`"), "{e}");
        let e = err("kind = \"im\"\n[old_side.im]\nsecret_key = \"o\"\n");
        assert!(e.contains("old_side.im.sdkappid is not set"), "{e}");
        let e = err("kind = \"im\"\n[old_side.im]\nsdkappid = 1400000002\nsecret_key = \"o\"\n");
        assert!(e.contains("also im.sdkappid"), "{e}");
        let e = err("kind = \"im\"\n");
        assert!(e.contains("needs an [old_side.im] section"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let t: toml::Table = "[im]\nsdkapid = 1\n".parse().expect("toml");
        let r: Result<AppConfig, _> = toml::Value::Table(t).try_into();
        assert!(r.is_err());
    }
}
