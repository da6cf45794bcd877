//! `[console]`: where the console listens, which services it watches, how often it refreshes, and the admin
//! token that unlocks its actions. Everything else it needs (Kafka, topic names, consumer groups, IM's rates) is
//! the rest of the one configuration file, handed over as [`Groups`](crate::Groups) and read through a [`View`](crate::View).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::ConsoleError;

/// The `[console]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address of the web page (`/`), its JSON (`/api/snapshot`, `/api/trace`) and its own `/metrics`,
    /// `/healthz` and `/readyz`.
    pub listen: SocketAddr,
    /// How often the console reads Kafka and scrapes the services, in milliseconds (the page polls as often).
    pub refresh_interval_ms: u64,
    /// Points kept per time series (lag charts, rates): `history_points × refresh_interval_ms` of history.
    pub history_points: usize,
    /// Timeout of one `/metrics` or `/readyz` request to a service, in milliseconds.
    pub scrape_timeout_ms: u64,
    /// The services to watch: their ops addresses (`/metrics`, `/readyz`). Several instances of one kind add up.
    /// Default: ingest, to-im and to-legacy at their default addresses on this host.
    pub services: Vec<ServiceEndpoint>,
    /// Unlocks the page's actions (DLQ re-drive and drop): a request must carry it as `Authorization: Bearer
    /// <token>` and confirm. Empty (the default) = read-only. Load it with `admin_token_file`.
    pub admin_token: String,
    /// Window searched around a conversation + time lookup, in seconds (either side of the time).
    pub trace_window_secs: u64,
    /// Most records one lookup reads before it stops and says so.
    pub trace_max_records: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9104)),
            refresh_interval_ms: 2000,
            history_points: 90,
            scrape_timeout_ms: 1500,
            services: default_services(),
            admin_token: String::new(),
            trace_window_secs: 300,
            trace_max_records: 2_000_000,
        }
    }
}

/// The services at their default addresses (`ingest.listen`, `to_im.listen`, `to_legacy.listen`).
fn default_services() -> Vec<ServiceEndpoint> {
    let s = |name: &str, kind, port: u16| ServiceEndpoint {
        name: name.to_owned(),
        kind,
        url: format!("http://127.0.0.1:{port}"),
    };
    vec![
        s("ingest", ServiceKind::Ingest, 8080),
        s("to-im", ServiceKind::ToIm, 9102),
        s("to-legacy", ServiceKind::ToLegacy, 9103),
    ]
}

/// One watched service instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoint {
    /// Shown on the page, e.g. `to-im-1`.
    pub name: String,
    /// Which part it is: what its metrics mean.
    pub kind: ServiceKind,
    /// Base URL of its ops endpoints, e.g. `http://127.0.0.1:9102` (`ingest.listen`, `to_im.listen`,
    /// `to_legacy.listen`).
    pub url: String,
}

/// The parts whose metrics the console reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    Ingest,
    ToIm,
    ToLegacy,
    /// Anything else with `/metrics` and `/readyz` (reconcile, once it exists): health and reconcile metrics.
    Other,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Ingest => "ingest",
            ServiceKind::ToIm => "to-im",
            ServiceKind::ToLegacy => "to-legacy",
            ServiceKind::Other => "other",
        }
    }
}

impl ConsoleConfig {
    /// Checks the section as a whole.
    pub fn validate(&self) -> Result<(), ConsoleError> {
        let bad = |m: String| Err(ConsoleError::Config(m));
        if self.refresh_interval_ms < 100 {
            return bad("console.refresh_interval_ms must be at least 100".into());
        }
        if self.history_points < 2 {
            return bad("console.history_points must be at least 2".into());
        }
        if self.scrape_timeout_ms == 0 {
            return bad("console.scrape_timeout_ms must be positive".into());
        }
        for s in &self.services {
            if s.name.trim().is_empty() {
                return bad("console.services: every service needs a name".into());
            }
            if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                return bad(format!("console.services {:?}: url {:?} is not http(s)://…", s.name, s.url));
            }
        }
        Ok(())
    }

    /// Whether the page offers actions at all.
    pub fn actions_enabled(&self) -> bool {
        !self.admin_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_services_and_checks_them() {
        let c: ConsoleConfig = toml_like(
            r#"{"listen":"127.0.0.1:1","services":[{"name":"to-im","kind":"to-im","url":"http://127.0.0.1:9102"}]}"#,
        );
        assert_eq!(c.services[0].kind, ServiceKind::ToIm);
        assert!(c.validate().is_ok());
        assert!(!c.actions_enabled());
        let mut bad = c.clone();
        bad.services[0].url = "127.0.0.1:9102".into();
        assert!(bad.validate().unwrap_err().to_string().contains("not http"));
        let mut bad = c;
        bad.refresh_interval_ms = 5;
        assert!(bad.validate().is_err());
    }

    fn toml_like(json: &str) -> ConsoleConfig {
        serde_json::from_str(json).expect("config")
    }
}
