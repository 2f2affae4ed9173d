//! [`Security`]: broker-lite's [`Authorizer`] built from `[auth]` and `[acl]` — password
//! and transport-identity authentication, ACL checks per operation, and reload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use mqgate_broker_lite::{
    AuthFuture, Authorizer, ClientInfo, ConnectRequest, Credential, Identity,
};
use mqgate_protocol::topic::{validate_topic_filter, validate_topic_name};
use mqgate_protocol::{QoS, ReasonCode};
use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::acl::{Acl, Action, Subject};
use crate::error::Error;
use crate::password::{PasswordFile, Verifier, VerifierSettings};

#[path = "security_denials.rs"]
mod denials;

use denials::{Admit, DenialLimiter};

/// A CONNECT's will, checked against the ACL at CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    /// The will topic.
    pub topic: &'a str,
    /// The will QoS.
    pub qos: QoS,
    /// The will retain flag.
    pub retain: bool,
}

/// Authentication and authorization for broker-lite (and the standalone proxy).
pub struct Security {
    allow_anonymous: bool,
    verifier: Option<Verifier>,
    acl_path: Option<PathBuf>,
    /// `[[acl.rule]]` tables: fixed at start, appended to the file's rules.
    config_rules: Option<Acl>,
    acl: ArcSwapOption<Acl>,
    disconnect_on_denied_publish: bool,
    denials: Mutex<DenialLimiter>,
    /// Bumped by every reload ([`Authorizer::rules_epoch`]).
    epoch: AtomicU64,
    /// `[acl] strict`.
    strict: bool,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("verifier", &self.verifier)
            .field("acl_path", &self.acl_path)
            .field("config_rules", &self.config_rules.is_some())
            .field(
                "disconnect_on_denied_publish",
                &self.disconnect_on_denied_publish,
            )
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Builds from the configuration: loads the password file (if any), the ACL file (if
    /// any) and the `[[acl.rule]]` tables, which are appended to the file's rules.
    /// Verifier tuning comes from `[auth]` ([`VerifierSettings::from_config`]).
    pub fn from_config(
        auth: &mqgate_config::AuthConfig,
        acl: &mqgate_config::AclConfig,
    ) -> Result<Security, Error> {
        let config_rules = if acl.rules.is_empty() {
            None
        } else {
            Some(Acl::from_config(&acl.rules)?)
        };
        let mut security = Security::build(
            auth.password_file.clone(),
            acl.file.clone(),
            config_rules,
            acl.disconnect_on_denied_publish,
            auth.anonymous_allowed(),
            VerifierSettings::from_config(auth),
        )?;
        security.strict = acl.strict;
        Ok(security)
    }

    /// Turns `[acl] strict` on or off (see [`Security::is_strict`]).
    pub fn with_strict(mut self, strict: bool) -> Security {
        self.strict = strict;
        self
    }

    /// `[acl] strict`: refusals instead of silent narrowing. SUBSCRIBE filters must lie
    /// within one read grant ([`Acl::check_subscribe_strict`]), denied publishes
    /// disconnect 3.1.1 clients, and `$` topics are never writable.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Builds from explicit parts (tests and the standalone proxy): no `[[acl.rule]]`
    /// tables, denied 3.1.1 publishes acknowledged and dropped.
    pub fn new(
        password_file: Option<PathBuf>,
        acl_file: Option<PathBuf>,
        allow_anonymous: bool,
        settings: VerifierSettings,
    ) -> Result<Security, Error> {
        Security::build(
            password_file,
            acl_file,
            None,
            false,
            allow_anonymous,
            settings,
        )
    }

    fn build(
        password_file: Option<PathBuf>,
        acl_file: Option<PathBuf>,
        config_rules: Option<Acl>,
        disconnect_on_denied_publish: bool,
        allow_anonymous: bool,
        settings: VerifierSettings,
    ) -> Result<Security, Error> {
        let verifier = match &password_file {
            Some(p) => Some(Verifier::load(p, settings)?),
            None => None,
        };
        let file = match &acl_file {
            Some(p) => Some(Acl::load(p)?),
            None => None,
        };
        let acl = combine(file, config_rules.as_ref()).map(Arc::new);
        Ok(Security {
            allow_anonymous,
            verifier,
            acl_path: acl_file,
            config_rules,
            acl: ArcSwapOption::new(acl),
            disconnect_on_denied_publish,
            denials: Mutex::new(DenialLimiter::new()),
            epoch: AtomicU64::new(0),
            strict: false,
        })
    }

    /// Re-reads the password file and the ACL file (SIGHUP); the `[[acl.rule]]` tables
    /// (configuration, not reloaded) stay appended to the new file's rules. Each file that
    /// fails to load keeps its previous contents, and the error is logged and returned
    /// (the first one).
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
                    let acl = combine(Some(acl), self.config_rules.as_ref()).map(Arc::new);
                    self.acl.store(acl);
                }
                Err(e) => {
                    error!(error = %e, "ACL file reload failed; keeping the previous one");
                    first.get_or_insert(e);
                }
            }
        }
        // After the new rules are in place: deliveries queued before now are checked
        // again when sent (a message queued later was checked under the new rules).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether a connected client's password login still stands after a reload: its user
    /// is still in the password file. Clients proven otherwise (certificate, SSH key,
    /// anonymous) are judged by their transport, so this says yes for them.
    pub fn still_valid(&self, client: &ClientInfo) -> bool {
        let by_password = matches!(
            *client.credential,
            Credential::Password | Credential::Ssh { key: None }
        );
        if !by_password {
            return true;
        }
        match (&self.verifier, client.username.as_deref()) {
            (Some(v), Some(user)) => v.file().get(user).is_some(),
            _ => true,
        }
    }

    /// The password verifier, when a password file is configured.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    /// The ACL in force (file rules, then `[[acl.rule]]` tables), if either is configured.
    pub fn acl(&self) -> Option<Arc<Acl>> {
        self.acl.load_full()
    }

    /// The loaded password file, if any.
    pub fn passwords(&self) -> Option<Arc<PasswordFile>> {
        self.verifier.as_ref().map(Verifier::file)
    }

    /// Whether an MQTT 3.1.1 client whose PUBLISH the ACL denied is disconnected
    /// (`[acl] disconnect_on_denied_publish`) instead of acknowledged and dropped.
    pub fn disconnect_on_denied_publish(&self) -> bool {
        self.disconnect_on_denied_publish || self.strict
    }

    /// Logs one denial with user, client id, topic and action, at most
    /// [`denials::LINES_PER_SECOND`] lines per second per client; suppressed lines are
    /// counted and the count is logged with the client's next logged denial.
    fn log_denial(&self, client: &ClientInfo, topic: &str, action: &'static str, why: &str) {
        let admit = self.denials.lock().admit(&client.client_id, Instant::now());
        let Admit::Log { suppressed } = admit else {
            return;
        };
        warn!(
            peer = %client.peer,
            client_id = %client.client_id,
            user = client.username.as_deref().unwrap_or(""),
            topic,
            action,
            reason = why,
            suppressed_before = suppressed,
            "access denied"
        );
    }

    /// The ACL's write decision, logged when denied under `action`.
    fn check_write(&self, client: &ClientInfo, topic: &str, action: &'static str) -> bool {
        if validate_topic_name(topic).is_err() {
            self.log_denial(client, topic, action, "invalid topic name");
            return false;
        }
        if self.strict && topic.starts_with('$') {
            self.log_denial(client, topic, action, "strict: $ topics are not writable");
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
            self.log_denial(client, topic, action, decision.1);
        }
        decision.0
    }

    /// Authenticates like [`Authorizer::authenticate`], then refuses the CONNECT with
    /// `NotAuthorized` (MQTT 5 CONNACK 0x87, 3.1.1 return code 5) when the client may
    /// not publish its will, so a forbidden will is refused at CONNECT, not silently
    /// dropped at disconnect.
    pub async fn authenticate_with_will(
        &self,
        identity: &Identity,
        request: ConnectRequest<'_>,
        will: Option<Will<'_>>,
    ) -> Result<Option<String>, ReasonCode> {
        let user = self.authenticate_inner(identity, request).await?;
        if let Some(will) = will {
            let client = ClientInfo {
                client_id: request.client_id.to_owned(),
                username: user.clone(),
                peer: identity.peer,
                credential: identity.credential.clone().shared(),
            };
            if !self.check_write(&client, will.topic, "will") {
                info!(peer = %identity.peer, client_id = request.client_id, topic = will.topic, "CONNECT refused: will topic not authorized");
                return Err(ReasonCode::NotAuthorized);
            }
        }
        Ok(user)
    }

    async fn authenticate_inner(
        &self,
        identity: &Identity,
        request: ConnectRequest<'_>,
    ) -> Result<Option<String>, ReasonCode> {
        let ip = identity.peer.ip();
        // A certificate (or SSH login) already proved who this is; a CONNECT claiming
        // another name is refused where the transport says so (SSH by default).
        if identity.transport_user.is_some() {
            return identity
                .resolve_username(request.username)
                .inspect_err(|_| {
                    info!(
                        peer = %identity.peer,
                        client_id = request.client_id,
                        transport_user = identity.transport_user.as_deref().unwrap_or(""),
                        claimed = request.username.unwrap_or(""),
                        "login refused: CONNECT claims another user name than the transport proved"
                    );
                });
        }
        if let (Some(user), Some(v)) = (request.username, &self.verifier) {
            if user.len() > v.max_username_bytes() {
                v.reject_without_check(None, ip).await;
                info!(peer = %identity.peer, client_id = request.client_id, len = user.len(),
                    limit = "max_username_bytes", max = v.max_username_bytes(),
                    "login refused: user name too long");
                return Err(ReasonCode::BadUserNameOrPassword);
            }
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

/// The file's rules followed by the `[[acl.rule]]` tables; `None` when neither exists.
fn combine(file: Option<Acl>, config_rules: Option<&Acl>) -> Option<Acl> {
    match (file, config_rules) {
        (Some(file), Some(rules)) => Some(file.merge(rules.clone())),
        (Some(file), None) => Some(file),
        (None, rules) => rules.cloned(),
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
        let will = request.will.map(|w| Will {
            topic: w.topic,
            qos: w.qos,
            retain: w.retain,
        });
        Box::pin(self.authenticate_with_will(identity, request, will))
    }

    fn authorize_publish(
        &self,
        client: &ClientInfo,
        topic: &str,
        _qos: QoS,
        _retain: bool,
    ) -> bool {
        self.check_write(client, topic, "write")
    }

    fn disconnect_on_denied_publish(&self) -> bool {
        Security::disconnect_on_denied_publish(self)
    }

    fn rules_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn strict(&self) -> bool {
        self.strict
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, _qos: QoS) -> bool {
        if validate_topic_filter(filter).is_err() {
            self.log_denial(client, filter, "subscribe", "invalid topic filter");
            return false;
        }
        let Some(acl) = self.acl.load_full() else {
            return true;
        };
        let d = if self.strict {
            acl.check_subscribe_strict(subject(client), filter)
        } else {
            acl.check_subscribe(subject(client), filter)
        };
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
