//! The world of the IM → IM forced-upgrade scenarios: an old app and a new app (two emulators, two
//! SDKAppIDs, two keys), each with its own import world, `imbridge export from-im` run as a real process
//! against the old one, and exports compared record by record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use imbridge_im::ImConfig;
use imbridge_im_emulator::EmulatorConfig;
use imbridge_importer::GenerateOptions;
use serde_json::Value;

use crate::import::{World, wait};

/// The old app's SDKAppID.
pub const OLD_APP: u64 = 1_400_000_001;
/// The new app's SDKAppID.
pub const NEW_APP: u64 = 1_400_000_002;

/// An emulated app of its own SDKAppID and key; limits on as in IM when `limits`.
pub fn app_config(sdkappid: u64, limits: bool) -> EmulatorConfig {
    let key = format!("{:064x}", u128::from(sdkappid) * 0x9e37_79b9);
    EmulatorConfig { sdkappid, secret_key: key, rate_limits_enabled: limits, ..EmulatorConfig::default() }
}

/// An import world whose app is `sdkappid` (its generated export is what seeds it, when imported).
pub async fn app_world(name: &str, sdkappid: u64, export: GenerateOptions) -> World {
    World::with_emulator(name, export, app_config(sdkappid, false)).await
}

/// Points `w`'s `[export.from_im]` at the app `c` (the app `export from-im` reads).
pub fn read_from(w: &mut World, c: &ImConfig) {
    for (k, v) in [
        ("BASE_URL", c.base_url.clone()),
        ("SDKAPPID", c.sdkappid.to_string()),
        ("ADMIN_IDENTIFIER", c.admin_identifier.clone()),
        ("SECRET_KEY", c.secret_key.clone()),
    ] {
        w.env.insert(format!("IMBRIDGE_EXPORT__FROM_IM__{k}"), v);
    }
}

/// Writes the accounts list (`ids`, one a line) into `w`'s directory.
pub fn accounts_file(w: &World, ids: &[String]) -> PathBuf {
    let path = w.dir.path().join("accounts.txt");
    std::fs::write(&path, ids.join("\n") + "\n").expect("write accounts list");
    path
}

/// Starts `imbridge export from-im DIR --accounts FILE` in the background (output `<name>.out/.err`, JSON
/// report `<name>.json`).
pub fn spawn_export(w: &World, dir: &Path, accounts: &Path, name: &str) -> Child {
    let log = |ext: &str| w.dir.path().join(format!("{name}.{ext}"));
    let report = log("json");
    let args = [
        "export",
        "from-im",
        dir.to_str().expect("utf8"),
        "--accounts",
        accounts.to_str().expect("utf8"),
        "--progress",
        "lines",
        "--report",
        report.to_str().expect("utf8"),
    ];
    w.command(&args)
        .stdout(Stdio::from(std::fs::File::create(log("out")).expect("out")))
        .stderr(Stdio::from(std::fs::File::create(log("err")).expect("err")))
        .spawn()
        .expect("spawn imbridge export from-im")
}

/// Runs `export from-im` to the end: its status and JSON report.
pub async fn export(w: &World, dir: &Path, accounts: &Path, name: &str) -> (ExitStatus, Value) {
    let mut child = spawn_export(w, dir, accounts, name);
    let status = wait(&mut child, Duration::from_secs(180)).await;
    let report = std::fs::read_to_string(w.dir.path().join(format!("{name}.json")))
        .unwrap_or_else(|_| panic!("{name} wrote no report:\n{}", w.output(name)));
    (status, serde_json::from_str(&report).expect("report json"))
}

/// The export's checkpoint: (phase, units done), once one is written.
pub fn checkpoint(dir: &Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(dir.join(imbridge_exporter::CHECKPOINT_FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some((v["phase"].as_str()?.to_owned(), v["done"].as_u64()?))
}

/// Every record of `file` in `dir` without the fields named in `drop` (ids an app assigns), sorted: two apps
/// hold the same data when these are equal.
pub fn records(dir: &Path, file: &str, drop: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: BTreeMap<String, Value> = serde_json::from_str(l).expect("record json");
            for d in drop {
                v.remove(*d);
            }
            serde_json::to_string(&v).expect("json")
        })
        .collect();
    out.sort();
    out
}
