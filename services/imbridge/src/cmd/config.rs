//! `imbridge config validate`: checks a configuration file and prints what it resolves to, secrets masked.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cmd::GlobalArgs;
use crate::config;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub what: ConfigWhat,
}

#[derive(Debug, Subcommand)]
pub enum ConfigWhat {
    /// Read the file given by --config (or ./imbridge.toml), apply IMBRIDGE_… environment overrides and *_file
    /// secrets, check it, and print the resolved configuration with secrets masked.
    Validate,
}

pub fn run(args: ConfigArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        ConfigWhat::Validate => {
            let loaded = config::load(global.config.as_deref())?;
            match &loaded.file {
                Some(f) => println!("# from {}", f.display()),
                None => println!("# no file: defaults"),
            }
            for k in &loaded.env_overrides {
                println!("# overridden from the environment: {k}");
            }
            print!("{}", config::render_masked(&loaded.config)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
