//! `mqgate config check|default`.

use std::path::PathBuf;
use std::process::ExitCode;

use mqgate_config::{Config, DEFAULT_CONFIG_TOML};

/// Exit code for a configuration error (EX_USAGE, as linkerd and sysexits use it).
pub const EXIT_BAD_CONFIG: u8 = 64;

/// `mqgate config ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: prints OK, or every error as file:line:column (exit 64).
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print the annotated default configuration (what `mqgate run` uses without a file).
    Default,
}

/// Runs a `config` subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check { file } => match Config::load(&file) {
            Ok(_) => {
                println!("OK");
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("{err}");
                Ok(ExitCode::from(EXIT_BAD_CONFIG))
            }
        },
        ConfigCommand::Default => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
