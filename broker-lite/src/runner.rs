//! A pool of long-lived tasks that run TCP connections (new or resumed from parking), so
//! a connection does not allocate a fresh tokio task each time it becomes active: a task
//! cell is allocated 128-byte aligned, and glibc cannot reuse a freed one for the next
//! (see `ARCHITECTURE.md`, memory). A runner that finished its connection waits in the
//! pool for the next one; beyond `MAX_IDLE` idle runners, it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A connection to run.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Idle runners kept for the next connections.
const MAX_IDLE: usize = 64;

/// The runner pool of one broker.
pub(crate) struct Runners {
    idle: Mutex<Vec<Arc<Runner>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// One runner's mailbox.
#[derive(Default)]
struct Runner {
    job: Mutex<Option<Job>>,
    ready: Notify,
}

impl std::fmt::Debug for Runners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runners").finish_non_exhaustive()
    }
}

impl Runners {
    /// A pool spawning its runners on `tracker`; idle runners end at `shutdown`.
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken) -> Runners {
        Runners {
            idle: Mutex::new(Vec::new()),
            tracker,
            shutdown,
        }
    }

    /// Runs `job` on an idle runner, or on a new one.
    pub fn spawn(self: &Arc<Self>, job: Job) {
        let idle = self.idle.lock().pop();
        match idle {
            Some(runner) => {
                *runner.job.lock() = Some(job);
                runner.ready.notify_one();
            }
            None => {
                let runner = Arc::new(Runner::default());
                self.tracker.spawn(self.clone().run(runner, job));
            }
        }
    }

    /// Takes `me` out of the idle pool; false if someone already took it (and is
    /// handing it a job).
    fn leave(&self, me: &Arc<Runner>) -> bool {
        let mut idle = self.idle.lock();
        match idle.iter().position(|r| Arc::ptr_eq(r, me)) {
            Some(i) => {
                idle.swap_remove(i);
                true
            }
            None => false,
        }
    }

    async fn run(self: Arc<Self>, me: Arc<Runner>, first: Job) {
        let mut job = first;
        loop {
            job.await;
            {
                let mut idle = self.idle.lock();
                if self.shutdown.is_cancelled() || idle.len() >= MAX_IDLE {
                    return;
                }
                idle.push(me.clone());
            }
            job = loop {
                tokio::select! {
                    _ = me.ready.notified() => {
                        if let Some(job) = me.job.lock().take() {
                            break job;
                        }
                    }
                    _ = self.shutdown.cancelled() => {
                        // Leave the pool, unless a job is already on its way here.
                        if self.leave(&me) {
                            return;
                        }
                        me.ready.notified().await;
                        if let Some(job) = me.job.lock().take() {
                            break job;
                        }
                        return;
                    }
                }
            };
        }
    }
}
