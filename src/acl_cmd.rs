//! `mqgate acl check`: prints the ACL decision for one user, client, topic and action,
//! and the rule that made it: `FILE:LINE` for a line of the ACL file, `CONFIG: [[acl.rule]]
//! N` for the N-th rule table of the configuration. With `--config`, the rule set is the
//! one `mqgate run` enforces: the `acl.file` lines, then the `[[acl.rule]]` tables.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use mqgate_config::Config;
use mqgate_proxy::acl::{Acl, Action, Decision, RuleOrigin, RuleSource, Subject};

use crate::config_cmd::EXIT_BAD_CONFIG;

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
    /// Print the decision and the deciding rule; exit status 0 = allowed, 1 = denied,
    /// 64 = the configuration or ACL file does not load.
    Check {
        /// Configuration file: its `[acl]` file and `[[acl.rule]]` tables, as `mqgate run`
        /// and `mqgate proxy` enforce them.
        #[arg(long, short, value_name = "FILE", required_unless_present = "file")]
        config: Option<PathBuf>,
        /// mosquitto-format ACL file (replaces the configuration's `acl.file`).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
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

/// The rule set to evaluate and where its parts came from (for printing).
struct Rules {
    acl: Option<Acl>,
    file: Option<PathBuf>,
    config: Option<PathBuf>,
}

/// Loads the ACL file and the configuration's rule tables, merged as `Security` does.
/// Any error (configuration, ACL file) is returned as the message to print.
fn load(config: Option<&Path>, file: Option<PathBuf>) -> Result<Rules, String> {
    let (file, tables) = match config {
        Some(path) => {
            let c = Config::load(path).map_err(|e| e.to_string())?;
            (file.or(c.acl.file), c.acl.rules)
        }
        None => (file, Vec::new()),
    };
    let from_file = file.as_deref().map(Acl::load).transpose();
    let from_tables = (!tables.is_empty())
        .then(|| Acl::from_config(&tables))
        .transpose();
    let (from_file, from_tables) = (
        from_file.map_err(|e| e.to_string())?,
        from_tables.map_err(|e| e.to_string())?,
    );
    let acl = match (from_file, from_tables) {
        (Some(f), Some(t)) => Some(f.merge(t)),
        (f, t) => f.or(t),
    };
    Ok(Rules {
        acl,
        file,
        config: config.map(Path::to_path_buf),
    })
}

/// Runs `mqgate acl`.
pub fn run(args: AclArgs) -> anyhow::Result<ExitCode> {
    let AclCommand::Check {
        config,
        file,
        user,
        client,
        topic,
        action,
    } = args.command;
    let rules = match load(config.as_deref(), file) {
        Ok(rules) => rules,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let who = Subject {
        username: user.as_deref(),
        client_id: &client,
    };
    let Some(acl) = &rules.acl else {
        return Ok(without_acl(&topic, action));
    };
    let decision = match action {
        CheckAction::Read => acl.check(who, &topic, Action::Read),
        CheckAction::Write => acl.check(who, &topic, Action::Write),
        CheckAction::Subscribe => acl.check_subscribe(who, &topic),
    };
    println!("{}", describe(&decision, &rules));
    Ok(exit(decision.allowed))
}

/// The answer when neither an ACL file nor rule tables are configured: everything is
/// allowed except writing `$SYS` (what broker-lite's authorizer does then).
fn without_acl(topic: &str, action: CheckAction) -> ExitCode {
    let sys = topic == "$SYS" || topic.starts_with("$SYS/");
    if matches!(action, CheckAction::Write) && sys {
        println!("deny: $SYS is never writable");
        return exit(false);
    }
    println!("allow: no ACL is configured (no acl.file, no [[acl.rule]])");
    exit(true)
}

/// `allow: FILE:LINE: user topic Read "a/#" (allowed by rule)` and the like.
fn describe(decision: &Decision<'_>, rules: &Rules) -> String {
    let verdict = if decision.allowed { "allow" } else { "deny" };
    let Some((source, rule)) = decision.rule else {
        return format!("{verdict}: {}", decision.reason);
    };
    let section = match source {
        RuleSource::Anonymous => "anonymous topic",
        RuleSource::User => "user topic",
        RuleSource::Pattern => "pattern",
    };
    let display = |p: &Option<PathBuf>| p.as_deref().map(Path::display).map(|d| d.to_string());
    let place = match rule.origin {
        RuleOrigin::File => format!("{}:{}", display(&rules.file).unwrap_or_default(), rule.line),
        RuleOrigin::Config => format!(
            "{}: [[acl.rule]] {}",
            display(&rules.config).unwrap_or_default(),
            rule.line
        ),
    };
    format!(
        "{verdict}: {place}: {section} {:?} {} ({})",
        rule.access, rule.topic, decision.reason
    )
}

fn exit(allowed: bool) -> ExitCode {
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
