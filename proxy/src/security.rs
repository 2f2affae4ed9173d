//! [`Security`]: broker-lite's [`Authorizer`] built from `[auth]` and `[acl]` — password
//! and transport-identity authentication, ACL checks per operation, and reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use mqgate_broker_lite::{AuthFuture, Authorizer, ClientInfo, ConnectRequest, Identity};
use mqgate_protocol::topic::{validate_topic_filter, validate_topic_name};
use mqgate_protocol::{QoS, ReasonCode};
use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::acl::{Acl, Action, Subject};
use crate::error::Error;
use crate::password::{PasswordFile, Verifier, VerifierSettings};

/// Most denial log lines per second; the rest are counted and summarised.
const DENIAL_LOGS_PER_SECOND: u32 = 10;

/// Rate limit for "access denied" log lines.
#[derive(Debug)]
struct DenialLog {
    window: Instant,
    logged: u32,
    suppressed: u64,
}

/// Authentication and authorization for broker-lite (and the standalone proxy).
pub struct Security {
    allow_anonymous: bool,
    verifier: Option<Verifier>,
    acl_path: Option<PathBuf>,
    acl: ArcSwapOption<Acl>,
    denials: Mutex<DenialLog>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("verifier", &self.verifier)
            .field("acl_path", &self.acl_path)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Builds from the configuration: loads the password file (if any) and the ACL file
    /// (if any). Verifier tuning comes from `[auth]` ([`VerifierSettings::from_config`]).
    pub fn from_config(
        auth: &mqgate_config::AuthConfig,
        acl: &mqgate_config::AclConfig,
    ) -> Result<Security, Error> {
        Security::new(
            auth.password_file.clone(),
            acl.file.clone(),
            auth.anonymous_allowed(),
            VerifierSettings::from_config(auth),
        )
    }

    /// Builds from explicit parts (tests and the standalone proxy).
    pub fn new(
        password_file: Option<PathBuf>,
        acl_file: Option<PathBuf>,
        allow_anonymous: bool,
        settings: VerifierSettings,
    ) -> Result<Security, Error> {
        let verifier = match &password_file {
            Some(p) => Some(Verifier::load(p, settings)?),
            None => None,
        };
        let acl = match &acl_file {
            Some(p) => Some(Arc::new(Acl::load(p)?)),
            None => None,
        };
        Ok(Security {
            allow_anonymous,
            verifier,
            acl_path: acl_file,
            acl: ArcSwapOption::new(acl),
            denials: Mutex::new(DenialLog {
                window: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        })
    }

    /// Re-reads the password file and the ACL file (SIGHUP). Each file that fails to load
    /// keeps its previous contents, and the error is logged and returned (the first one).
    /// Connected clients keep their session; their next publish, subscribe and delivery
    /// are checked against the new rules.
    pub fn reload(&self) -> Result<(), Error> {
        let mut first = None;
        if let Some(v) = &self.verifier {
            if let Err(e) = v.reload() {
                error!(error = %e, "password file reload failed; keeping the previous one");
                first.get_or_insert(e);
            }
        }
        if let Some(path) = &self.acl_path {
            match Acl::load(path) {
                Ok(acl) => {
                    info!(path = %path.display(), "ACL file reloaded");
                    self.acl.store(Some(Arc::new(acl)));
                }
                Err(e) => {
                    error!(error = %e, "ACL file reload failed; keeping the previous one");
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The password verifier, when a password file is configured.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    /// The ACL in force, if an ACL file is configured.
    pub fn acl(&self) -> Option<Arc<Acl>> {
        self.acl.load_full()
    }

    /// The loaded password file, if any.
    pub fn passwords(&self) -> Option<Arc<PasswordFile>> {
        self.verifier.as_ref().map(Verifier::file)
    }

    fn log_denial(&self, client: &ClientInfo, topic: &str, action: &'static str, why: &str) {
        let mut d = self.denials.lock();
        let now = Instant::now();
        if now.duration_since(d.window) >= Duration::from_secs(1) {
            if d.suppressed > 0 {
                warn!(suppressed = d.suppressed, "more access denials not logged");
            }
            d.window = now;
            d.logged = 0;
            d.suppressed = 0;
        }
        if d.logged < DENIAL_LOGS_PER_SECOND {
            d.logged += 1;
            warn!(
                peer = %client.peer,
                client_id = %client.client_id,
                user = client.username.as_deref().unwrap_or(""),
                topic,
                action,
                reason = why,
                "access denied"
            );
        } else {
            d.suppressed += 1;
        }
    }

    async fn authenticate_inner(
        &self,
        identity: &Identity,
        request: ConnectRequest<'_>,
    ) -> Result<Option<String>, ReasonCode> {
        let ip = identity.peer.ip();
        // A certificate (or SSH login) already proved who this is.
        if let Some(user) = &identity.transport_user {
            return Ok(Some(user.clone()));
        }
        match (request.username, &self.verifier) {
            (Some(user), Some(v)) => match request.password {
                Some(pw) if v.verify(user, pw, ip).await => Ok(Some(user.to_owned())),
                Some(_) => {
                    info!(peer = %identity.peer, client_id = request.client_id, user, "login refused: bad user name or password");
                    Err(ReasonCode::BadUserNameOrPassword)
                }
                None => {
                    v.reject_without_check(Some(user), ip).await;
                    info!(peer = %identity.peer, client_id = request.client_id, user, "login refused: no password");
                    Err(ReasonCode::BadUserNameOrPassword)
                }
            },
            // No password file: the name is taken as given, as mosquitto does.
            (Some(user), None) if self.allow_anonymous => Ok(Some(user.to_owned())),
            (None, _) if self.allow_anonymous => Ok(None),
            (user, v) => {
                if let Some(v) = v {
                    v.reject_without_check(user, ip).await;
                }
                info!(peer = %identity.peer, client_id = request.client_id, "login refused: anonymous access is off");
                Err(ReasonCode::NotAuthorized)
            }
        }
    }
}

fn subject(client: &ClientInfo) -> Subject<'_> {
    Subject {
        username: client.username.as_deref(),
        client_id: &client.client_id,
    }
}

impl Authorizer for Security {
    fn authenticate<'a>(
        &'a self,
        identity: &'a Identity,
        request: ConnectRequest<'a>,
    ) -> AuthFuture<'a> {
        Box::pin(self.authenticate_inner(identity, request))
    }

    fn authorize_publish(
        &self,
        client: &ClientInfo,
        topic: &str,
        _qos: QoS,
        _retain: bool,
    ) -> bool {
        if validate_topic_name(topic).is_err() {
            self.log_denial(client, topic, "write", "invalid topic name");
            return false;
        }
        let decision = match self.acl.load().as_deref() {
            Some(acl) => {
                let d = acl.check(subject(client), topic, Action::Write);
                (d.allowed, d.reason)
            }
            None if topic == "$SYS" || topic.starts_with("$SYS/") => {
                (false, "$SYS is never writable")
            }
            None => (true, ""),
        };
        if !decision.0 {
            self.log_denial(client, topic, "write", decision.1);
        }
        decision.0
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, _qos: QoS) -> bool {
        if validate_topic_filter(filter).is_err() {
            self.log_denial(client, filter, "subscribe", "invalid topic filter");
            return false;
        }
        let Some(acl) = self.acl.load_full() else {
            return true;
        };
        let d = acl.check_subscribe(subject(client), filter);
        if !d.allowed {
            self.log_denial(client, filter, "subscribe", d.reason);
        }
        d.allowed
    }

    fn authorize_delivery(&self, client: &ClientInfo, topic: &str) -> bool {
        let Some(acl) = self.acl.load_full() else {
            return true;
        };
        let d = acl.check(subject(client), topic, Action::Read);
        if !d.allowed {
            // Expected filtering of broad subscriptions: not a warning.
            debug!(client_id = %client.client_id, topic, reason = d.reason, "delivery filtered by ACL");
        }
        d.allowed
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
