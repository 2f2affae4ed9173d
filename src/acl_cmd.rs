//! `mqgate acl check`: prints the ACL decision for one user, client, topic and action,
//! and the rule that made it (line number in the ACL file).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use mqgate_proxy::acl::{Acl, Action, RuleSource, Subject};

/// Arguments of `mqgate acl`.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AclCommand,
}

/// The operation to check.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckAction {
    /// Receiving a message on the topic (delivery).
    Read,
    /// Publishing to the topic.
    Write,
    /// Subscribing with the topic as a filter (`$share/<group>/...` allowed).
    Subscribe,
}

/// ACL commands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Print the decision and the deciding rule; exit status 0 = allowed, 1 = denied.
    Check {
        /// mosquitto-format ACL file.
        #[arg(long)]
        file: PathBuf,
        /// User name (omit for an anonymous client).
        #[arg(long)]
        user: Option<String>,
        /// Client identifier.
        #[arg(long)]
        client: String,
        /// Topic name (read, write) or filter (subscribe).
        #[arg(long)]
        topic: String,
        /// What the client does.
        #[arg(long, value_enum)]
        action: CheckAction,
    },
}

/// Runs `mqgate acl`.
pub fn run(args: AclArgs) -> anyhow::Result<ExitCode> {
    let AclCommand::Check {
        file,
        user,
        client,
        topic,
        action,
    } = args.command;
    let acl = Acl::load(&file)?;
    let who = Subject {
        username: user.as_deref(),
        client_id: &client,
    };
    let decision = match action {
        CheckAction::Read => acl.check(who, &topic, Action::Read),
        CheckAction::Write => acl.check(who, &topic, Action::Write),
        CheckAction::Subscribe => acl.check_subscribe(who, &topic),
    };
    let verdict = if decision.allowed { "allow" } else { "deny" };
    match decision.rule {
        Some((source, rule)) => {
            let section = match source {
                RuleSource::Anonymous => "anonymous topic",
                RuleSource::User => "user topic",
                RuleSource::Pattern => "pattern",
            };
            println!(
                "{verdict}: {}:{}: {section} {:?} {} ({})",
                file.display(),
                rule.line,
                rule.access,
                rule.topic,
                decision.reason
            );
        }
        None => println!("{verdict}: {}", decision.reason),
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
