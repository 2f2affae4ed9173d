//! `mqgate ssh ...`: SSH listener helpers (the work is done by `mqgate_proxy::ssh`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mqgate_proxy::ssh::{fingerprint, load_or_generate_host_key, read_public_key};

/// Arguments of `mqgate ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SshCommand,
}

/// The SSH commands.
#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Print the SHA256 fingerprint of a host key (as `ssh-keygen -l` shows it), so
    /// device owners can pin it in their known_hosts.
    Fingerprint {
        /// Host key file (OpenSSH private key, or its `.pub`).
        #[arg(long, value_name = "FILE")]
        host_key: PathBuf,
        /// Create a new Ed25519 host key (mode 0600) if FILE does not exist.
        #[arg(long)]
        generate: bool,
    },
}

/// Runs `mqgate ssh`.
pub fn run(args: SshArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SshCommand::Fingerprint { host_key, generate } => {
            let public = if generate {
                load_or_generate_host_key(&host_key)?.public_key().clone()
            } else {
                read_public_key(&host_key)?
            };
            println!("{}", fingerprint(&public));
            Ok(ExitCode::SUCCESS)
        }
    }
}
