//! `imbridge im …`: operator tools for the Tencent Cloud IM side. `im usersig` signs a UserSig for
//! debugging with curl, or checks one (`--verify`), using `imbridge_im::usersig`.
//!
//! The SDKAppID, secret key and admin identifier come from the configuration's `[im]` section like the
//! services' (file, `IMBRIDGE_IM__…`, `secret_key_file`); the flags override them.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use imbridge_im::sigcache::unix_now_secs;
use imbridge_im::usersig;

use crate::cmd::GlobalArgs;
use crate::config;

/// Arguments of `imbridge im`.
#[derive(Debug, Args)]
pub struct ImArgs {
    #[command(subcommand)]
    pub command: ImCommand,
}

/// `imbridge im` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImCommand {
    /// Print a UserSig for an identifier, or check one with `--verify SIG`.
    Usersig(UsersigArgs),
}

/// Options of `imbridge im usersig`.
#[derive(Debug, Args)]
pub struct UsersigArgs {
    /// UserID to sign for (default: the configuration's `im.admin_identifier`).
    #[arg(long, conflicts_with = "verify")]
    pub identifier: Option<String>,
    /// Lifetime of the signature, in seconds.
    #[arg(long, default_value_t = 86_400, conflicts_with = "verify")]
    pub expire: u64,
    /// A UserSig to decode and verify: prints for whom and until when; exits non-zero if it is invalid.
    #[arg(long, value_name = "SIG")]
    pub verify: Option<String>,
    /// The application's SDKAppID (default: the configuration's `im.sdkappid`).
    #[arg(long, env = "IMBRIDGE_IM_SDKAPPID")]
    pub sdkappid: Option<u64>,
    /// The console secret key (default: the configuration's `im.secret_key` / `im.secret_key_file`).
    #[arg(long, env = "IMBRIDGE_IM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
}

pub fn run(args: ImArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ImCommand::Usersig(a) => usersig_cmd(a, global),
    }
}

fn usersig_cmd(a: UsersigArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(global.config.as_deref())?;
    let im = loaded.config.im;
    let from = || match &loaded.file {
        Some(f) => format!("the [im] section of {}", f.display()),
        None => "the configuration (no file: pass --config FILE)".to_owned(),
    };
    let sdkappid = a.sdkappid.or(Some(im.sdkappid).filter(|n| *n != 0)).with_context(|| {
        format!("no SDKAppID: set im.sdkappid in {} or IMBRIDGE_IM__SDKAPPID, or pass --sdkappid", from())
    })?;
    let key = a.secret_key.or(Some(im.secret_key).filter(|k| !k.is_empty())).with_context(|| {
        format!(
            "no secret key: set im.secret_key or im.secret_key_file in {} or IMBRIDGE_IM__SECRET_KEY, or pass \
             --secret-key",
            from()
        )
    })?;
    let now = unix_now_secs();
    if let Some(sig) = a.verify {
        let inspection = usersig::inspect(&sig, sdkappid, &key, now);
        print!("{inspection}");
        return Ok(if inspection.is_valid() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let identifier = a.identifier.unwrap_or(im.admin_identifier);
    anyhow::ensure!(!identifier.is_empty(), "--identifier is empty and im.admin_identifier is not set");
    println!("{}", usersig::generate(sdkappid, &key, &identifier, a.expire, now));
    Ok(ExitCode::SUCCESS)
}
