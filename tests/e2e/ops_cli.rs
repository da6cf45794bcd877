//! Commands that need IM or Kafka settings read them from the configuration like the services do, from any
//! working directory: `im usersig` takes the `[im]` section (secret from a file), `bench kafka` takes `[kafka]`
//! (no `--bootstrap`) and finds Kafka's jars without being run from the repository root.

use std::process::Command;

use imbridge_testkit::{imbridge_bin, kafka_bootstrap};

const SDKAPPID: u64 = 1_400_000_777;
const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// `imbridge` run in `dir` with none of the environment variables that would stand in for the configuration.
fn imbridge(dir: &std::path::Path) -> Command {
    let mut c = Command::new(imbridge_bin());
    c.current_dir(dir).env("IMBRIDGE_LOG_FORMAT", "text").env("IMBRIDGE_LOG", "warn");
    for name in
        ["KAFKA_BOOTSTRAP", "KAFKA_CLASSPATH", "IMBRIDGE_IM_SDKAPPID", "IMBRIDGE_IM_SECRET_KEY", "IMBRIDGE_CONFIG"]
    {
        c.env_remove(name);
    }
    c
}

#[test]
fn im_usersig_reads_the_im_section() {
    let _turn = imbridge_e2e::turn::turn_blocking(module_path!());
    let tmp = tempfile::tempdir().expect("tmp");
    let elsewhere = tempfile::tempdir().expect("cwd");
    std::fs::write(tmp.path().join("im_key"), format!("{KEY}\n")).expect("key file");
    let config = tmp.path().join("imbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[im]\nsdkappid = {SDKAPPID}\nsecret_key_file = \"{}\"\nadmin_identifier = \"root\"\n",
            tmp.path().join("im_key").display()
        ),
    )
    .expect("config");

    let out = imbridge(elsewhere.path())
        .args(["--config"])
        .arg(&config)
        .args(["im", "usersig", "--identifier", "ann"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sig = String::from_utf8(out.stdout).expect("utf8").trim().to_owned();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    imbridge_im::usersig::verify(&sig, SDKAPPID, KEY, "ann", now).expect("signed with the file's app and key");

    // Without --identifier: the configured admin identifier.
    let out = imbridge(elsewhere.path()).arg("--config").arg(&config).args(["im", "usersig"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sig = String::from_utf8(out.stdout).expect("utf8").trim().to_owned();
    imbridge_im::usersig::verify(&sig, SDKAPPID, KEY, "root", now).expect("signed for im.admin_identifier");

    // --verify checks with the same settings.
    let out = imbridge(elsewhere.path())
        .arg("--config")
        .arg(&config)
        .args(["im", "usersig", "--verify", &sig])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // No configuration at all: a clear error naming the key to set.
    let out = imbridge(elsewhere.path()).args(["im", "usersig", "--identifier", "ann"]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("im.sdkappid"), "{err}");
}

#[test]
fn bench_reads_kafka_from_the_configuration_in_any_directory() {
    let _turn = imbridge_e2e::turn::turn_blocking(module_path!());
    let elsewhere = tempfile::tempdir().expect("cwd");
    let out = imbridge(elsewhere.path())
        .env("IMBRIDGE_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap())
        .args(["bench", "kafka", "--events", "500", "--keys", "10", "--partitions", "2"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("kafka ProducerPerformance (java)"), "the Java baseline ran: {stdout}");
    assert!(stdout.contains("produce ratio"), "{stdout}");
}
