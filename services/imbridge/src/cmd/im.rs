//! `imbridge im …`: operator tools for the Tencent Cloud IM side. `im usersig` signs a UserSig for
//! debugging with curl, or checks one (`--verify`), using `imbridge_im::usersig`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use imbridge_im::sigcache::unix_now_secs;
use imbridge_im::usersig;

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
    /// UserID to sign for (e.g. the admin identifier).
    #[arg(long, required_unless_present = "verify", conflicts_with = "verify")]
    pub identifier: Option<String>,
    /// Lifetime of the signature, in seconds.
    #[arg(long, default_value_t = 86_400, conflicts_with = "verify")]
    pub expire: u64,
    /// A UserSig to decode and verify: prints for whom and until when; exits non-zero if it is invalid.
    #[arg(long, value_name = "SIG")]
    pub verify: Option<String>,
    /// The application's SDKAppID.
    #[arg(long, env = "IMBRIDGE_IM_SDKAPPID")]
    pub sdkappid: Option<u64>,
    /// The console secret key.
    #[arg(long, env = "IMBRIDGE_IM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
}

pub fn run(args: ImArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ImCommand::Usersig(a) => usersig_cmd(a),
    }
}

fn usersig_cmd(a: UsersigArgs) -> anyhow::Result<ExitCode> {
    let sdkappid = a.sdkappid.context("--sdkappid or IMBRIDGE_IM_SDKAPPID is required")?;
    let key = a.secret_key.context("--secret-key or IMBRIDGE_IM_SECRET_KEY is required")?;
    let now = unix_now_secs();
    if let Some(sig) = a.verify {
        let inspection = usersig::inspect(&sig, sdkappid, &key, now);
        print!("{inspection}");
        return Ok(if inspection.is_valid() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let identifier = a.identifier.context("--identifier is required")?;
    println!("{}", usersig::generate(sdkappid, &key, &identifier, a.expire, now));
    Ok(ExitCode::SUCCESS)
}
