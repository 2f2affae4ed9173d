//! Rate limit for "access denied" log lines: at most [`LINES_PER_SECOND`] per client per
//! one-second window; the suppressed ones are counted and reported with the client's
//! next logged line (or in a summary when the client's entry is pruned).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::warn;

/// Most denial lines logged per client in one second.
pub const LINES_PER_SECOND: u32 = 5;
/// Clients tracked at once; beyond this, stale entries are pruned, and if all are fresh
/// the untracked clients share one bucket.
const MAX_TRACKED: usize = 4096;
/// The bucket shared by untracked clients.
const OVERFLOW: &str = "";
const WINDOW: Duration = Duration::from_secs(1);

/// What to do with one denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it, mentioning how many of this client's denials were not logged before it.
    Log {
        /// Denials suppressed since the client's previous logged line.
        suppressed: u64,
    },
    /// Count it, do not log it.
    Suppress,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-client denial log windows.
#[derive(Debug, Default)]
pub struct DenialLimiter {
    clients: HashMap<String, Window>,
}

impl DenialLimiter {
    /// An empty limiter.
    pub fn new() -> DenialLimiter {
        DenialLimiter {
            clients: HashMap::new(),
        }
    }

    /// Decides whether a denial for `client_id` at `now` is logged.
    pub fn admit(&mut self, client_id: &str, now: Instant) -> Admit {
        if !self.clients.contains_key(client_id) && self.clients.len() >= MAX_TRACKED {
            self.prune(now);
        }
        let key = if self.clients.contains_key(client_id) || self.clients.len() < MAX_TRACKED {
            client_id
        } else {
            OVERFLOW
        };
        let w = self.clients.entry(key.to_owned()).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= WINDOW {
            w.start = now;
            w.logged = 0;
        }
        if w.logged < LINES_PER_SECOND {
            w.logged += 1;
            let suppressed = std::mem::take(&mut w.suppressed);
            Admit::Log { suppressed }
        } else {
            w.suppressed += 1;
            Admit::Suppress
        }
    }

    /// Drops the entries whose window is over, logging the denials they had suppressed.
    fn prune(&mut self, now: Instant) {
        let mut lost = 0u64;
        let mut clients = 0usize;
        self.clients.retain(|_, w| {
            let stale = now.saturating_duration_since(w.start) >= WINDOW;
            if stale && w.suppressed > 0 {
                lost += w.suppressed;
                clients += 1;
            }
            !stale
        });
        if lost > 0 {
            warn!(
                suppressed = lost,
                clients, "access denials not logged (rate limit)"
            );
        }
    }

    /// Clients currently tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_limit_counts_suppressed_lines() {
        let t0 = Instant::now();
        let mut l = DenialLimiter::new();
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(l.admit("a", t0), Admit::Log { suppressed: 0 });
        }
        for _ in 0..3 {
            assert_eq!(l.admit("a", t0), Admit::Suppress);
        }
        // Another client has its own budget.
        assert_eq!(l.admit("b", t0), Admit::Log { suppressed: 0 });
        // Next window: logged again, with the count of what was suppressed.
        let t1 = t0 + WINDOW;
        assert_eq!(l.admit("a", t1), Admit::Log { suppressed: 3 });
        assert_eq!(l.admit("a", t1), Admit::Log { suppressed: 0 });
    }

    #[test]
    fn tracking_is_bounded() {
        let t0 = Instant::now();
        let mut l = DenialLimiter::new();
        for i in 0..MAX_TRACKED + 10 {
            l.admit(&format!("c{i}"), t0);
        }
        // All fresh: the extra clients share the one overflow bucket.
        assert_eq!(l.tracked(), MAX_TRACKED + 1);
        let t1 = t0 + WINDOW;
        assert_eq!(l.admit("new", t1), Admit::Log { suppressed: 0 });
        // Stale entries were pruned.
        assert_eq!(l.tracked(), 1);
    }
}
