//! `mqgate passwd add|delete|list|upgrade`: manage a password file of argon2id PHC
//! strings (mosquitto `$6$`/`$7$`/argon2id entries are read and can be upgraded).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use mqgate_proxy::password::{check_username, read_password, Argon2Cost, PasswordFile, StoredHash};

/// Arguments of `mqgate passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PasswdCommand,
}

/// Cost of new argon2id hashes (defaults: OWASP's m=19456 KiB, t=2, p=1).
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Memory per hash, in KiB.
    #[arg(long, default_value_t = 19_456)]
    pub memory_kib: u32,
    /// Passes over the memory.
    #[arg(long, default_value_t = 2)]
    pub iterations: u32,
    /// Lanes.
    #[arg(long, default_value_t = 1)]
    pub parallelism: u32,
}

impl CostArgs {
    fn cost(&self) -> anyhow::Result<Argon2Cost> {
        let cost = Argon2Cost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        };
        cost.validate()?;
        Ok(cost)
    }
}

/// The password-file commands. Passwords are read from a prompt, or from stdin when it
/// is not a terminal (one line) — never from the command line.
#[derive(Debug, Subcommand)]
pub enum PasswdCommand {
    /// Add a user, or set a new password for an existing one (file created 0600).
    Add {
        /// The password file.
        file: PathBuf,
        /// The user name.
        user: String,
        /// Hash cost.
        #[command(flatten)]
        cost: CostArgs,
    },
    /// Remove a user.
    Delete {
        /// The password file.
        file: PathBuf,
        /// The user name.
        user: String,
    },
    /// List users and the scheme of their hash.
    List {
        /// The password file.
        file: PathBuf,
    },
    /// Rehash USER's entry as argon2id after checking the password against the current
    /// hash; without USER, list the entries still to upgrade (they are also upgraded
    /// automatically at the user's next successful login when the file is writable).
    Upgrade {
        /// The password file.
        file: PathBuf,
        /// The user to upgrade.
        user: Option<String>,
        /// Hash cost.
        #[command(flatten)]
        cost: CostArgs,
    },
}

/// Runs `mqgate passwd`.
pub fn run(args: PasswdArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PasswdCommand::Add { file, user, cost } => {
            let cost = cost.cost()?;
            check_username(&user)?;
            let mut pw = PasswordFile::load_or_empty(&file)?;
            let password = read_password("Password: ", true)?;
            pw.set(&user, StoredHash::new_argon2id(password.as_bytes(), cost)?);
            pw.save(&file)?;
            eprintln!("{user}: password set (argon2id)");
            Ok(ExitCode::SUCCESS)
        }
        PasswdCommand::Delete { file, user } => {
            let mut pw = PasswordFile::load(&file)?;
            if !pw.remove(&user) {
                bail!("{}: no user {user:?}", file.display());
            }
            pw.save(&file)?;
            eprintln!("{user}: deleted");
            Ok(ExitCode::SUCCESS)
        }
        PasswdCommand::List { file } => {
            let pw = PasswordFile::load(&file)?;
            for (user, hash) in pw.users() {
                println!("{user}\t{}", hash.scheme());
            }
            Ok(ExitCode::SUCCESS)
        }
        PasswdCommand::Upgrade { file, user, cost } => {
            let cost = cost.cost()?;
            let mut pw = PasswordFile::load(&file)?;
            let Some(user) = user else {
                let mut pending = 0;
                for (user, hash) in pw.users() {
                    if hash.needs_rehash(cost) {
                        pending += 1;
                        println!("{user}\t{}", hash.scheme());
                    }
                }
                eprintln!(
                    "{pending} entr{} to upgrade",
                    if pending == 1 { "y" } else { "ies" }
                );
                return Ok(ExitCode::SUCCESS);
            };
            let stored = pw
                .get(&user)
                .with_context(|| format!("{}: no user {user:?}", file.display()))?
                .clone();
            let password = read_password(&format!("Current password of {user}: "), false)?;
            if !stored.verify(password.as_bytes()) {
                eprintln!("{user}: wrong password; entry unchanged");
                return Ok(ExitCode::FAILURE);
            }
            pw.set(&user, StoredHash::new_argon2id(password.as_bytes(), cost)?);
            pw.save(&file)?;
            eprintln!("{user}: upgraded from {} to argon2id", stored.scheme());
            Ok(ExitCode::SUCCESS)
        }
    }
}
