//! The `mqgate` command line: parses arguments and wires the workspace crates together.
//! All behaviour lives in the crates; this file only dispatches.

mod acl_cmd;
mod bench;
mod bridges;
mod certs_cmd;
mod config_cmd;
mod passwd_cmd;
mod proxy_cmd;
mod run;
mod ssh_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// MQTT edge gateway: broker-lite, store-and-forward bridge, security proxy and a small CA.
#[derive(Debug, Parser)]
#[command(name = "mqgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (by default: an MQTT broker on 127.0.0.1:1883, state in ./mqgate-data).
    Run(run::RunArgs),
    /// Run the security proxy alone in front of an existing broker ([proxy] upstream).
    Proxy(proxy_cmd::ProxyArgs),
    /// Check or print configuration files.
    Config {
        #[command(subcommand)]
        command: config_cmd::ConfigCommand,
    },
    /// The small CA: issue, sign, revoke and list certificates.
    Certs(certs_cmd::CertsArgs),
    /// Manage a password file (argon2id; mosquitto files are read and upgraded).
    Passwd(passwd_cmd::PasswdArgs),
    /// Check an ACL file: which rule decides a given access.
    Acl(acl_cmd::AclArgs),
    /// SSH helpers: print (or create) the SSH listener's host key fingerprint.
    Ssh(ssh_cmd::SshArgs),
    /// Load generator: measure an MQTT broker (mqgate, mosquitto, rumqttd, ...).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Proxy(args) => proxy_cmd::run(args),
        Command::Config { command } => config_cmd::run(command),
        Command::Certs(args) => certs_cmd::run(args),
        Command::Passwd(args) => passwd_cmd::run(args),
        Command::Acl(args) => acl_cmd::run(args),
        Command::Ssh(args) => ssh_cmd::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mqgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}
