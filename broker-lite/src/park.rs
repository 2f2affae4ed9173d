//! Parking of idle TCP connections: a connection with nothing buffered, nothing queued
//! and nothing in flight ends its task and leaves its small state ([`Parked`]) here, with
//! its socket registered in a second epoll set (mio) instead of tokio's. One task waits
//! for that set, for wake-ups (a delivery, a takeover, a kick) and for the earliest
//! keep-alive deadline, and spawns the connection again when one comes. An idle
//! connection then costs its `Parked` record, not a task and a tokio I/O registration.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, MutexGuard};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::connection::{self, Parked};
use crate::core::{Core, Session};
use crate::runner::Runners;
use crate::stats::Stats;

/// The parked connections and the task that wakes them.
pub(crate) struct Parker {
    registry: Registry,
    inner: Mutex<Inner>,
    /// Parking keys (with the session uid they were given for) to wake.
    wakes: Mutex<Vec<(u32, u64)>>,
    notify: Notify,
    epoch: Instant,
    runners: Arc<Runners>,
}

struct Inner {
    entries: Slab<Box<Parked>>,
    /// Keep-alive deadlines (ms since `epoch`) and parking keys; may hold stale entries
    /// (of connections woken since), skipped when popped and dropped on rebuild.
    deadlines: BinaryHeap<Reverse<(u64, u32)>>,
    /// The deadline the task sleeps until.
    next: u64,
    /// The broker is stopping: nothing parks any more.
    closed: bool,
}

/// The session has work after all, or the broker is stopping: keep running.
#[derive(Debug)]
pub(crate) struct NotParked;

/// A parking place, with the parker locked (see [`Parker::reserve`]).
pub(crate) struct Reservation<'a> {
    parker: &'a Parker,
    inner: MutexGuard<'a, Inner>,
    key: u32,
}

impl Reservation<'_> {
    /// Parks `parked` (whose socket has left tokio).
    pub fn commit(mut self, core: &Core, parked: Box<Parked>) {
        let parker = self.parker;
        let key = self.key;
        let uid = parked.session().uid;
        let fd = parked.socket().as_raw_fd();
        let deadline = parked.deadline();
        let registered =
            parker
                .registry
                .register(&mut SourceFd(&fd), Token(key as usize), Interest::READABLE);
        self.inner.entries.insert(parked);
        Stats::add(&core.stats.connections_parked, 1);
        if let Some(d) = deadline {
            self.inner.deadlines.push(Reverse((d, key)));
        }
        let earlier = deadline.is_some_and(|d| d < self.inner.next);
        drop(self);
        if let Err(e) = registered {
            warn!(error = %e, "cannot park an idle connection; resuming it");
            parker.wake(key, uid);
        } else if earlier {
            parker.notify.notify_one();
        }
    }

    /// Gives the place up (the socket could not leave tokio).
    pub fn cancel(self, session: &Session) {
        session.parked.store(0, Ordering::SeqCst);
    }
}

/// The epoll descriptor of the parked sockets, for tokio to watch.
struct PollFd(Poll);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl std::fmt::Debug for Parker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parker").finish_non_exhaustive()
    }
}

impl Parker {
    /// Starts the parking task on `tracker` and installs the parker in `core`.
    pub fn start(
        core: &Arc<Core>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
        runners: Arc<Runners>,
    ) -> io::Result<()> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // The safe constructor is deprecated because a wrapper could hand out a
        // descriptor it does not own; `PollFd` owns its epoll descriptor for as long as
        // the `AsyncFd` lives, which is what `register_with_interest` (unsafe) asks.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(PollFd(poll), tokio::io::Interest::READABLE)?;
        let parker = Arc::new(Parker {
            registry,
            inner: Mutex::new(Inner {
                entries: Slab::new(),
                deadlines: BinaryHeap::new(),
                next: u64::MAX,
                closed: false,
            }),
            wakes: Mutex::new(Vec::new()),
            notify: Notify::new(),
            epoch: Instant::now(),
            runners,
        });
        let _ = core.parker.set(parker.clone());
        tracker.spawn(parker.run(fd, core.clone(), shutdown));
        Ok(())
    }

    /// Milliseconds from the parker's epoch to `at`.
    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Milliseconds from the parker's epoch to `at`, rounded up (a keep-alive counted
    /// from it never ends early).
    pub fn ms_up(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch)
            .as_micros()
            .div_ceil(1000) as u64
    }

    /// The instant `ms` milliseconds after the parker's epoch.
    pub fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Reserves a parking place for the connection attached to `session`, if the
    /// session is idle and the broker is not stopping. From here until
    /// [`Reservation::commit`] the session counts as parked: a delivery wakes it.
    pub fn reserve<'a>(&'a self, session: &Session) -> Result<Reservation<'a>, NotParked> {
        let inner = self.inner.lock();
        if inner.closed {
            return Err(NotParked);
        }
        let key = inner.entries.vacant_key() as u32;
        let slot = session.slot.lock();
        if !slot.state.is_idle() {
            return Err(NotParked);
        }
        session.parked.store(key.wrapping_add(1), Ordering::SeqCst);
        drop(slot);
        Ok(Reservation {
            parker: self,
            inner,
            key,
        })
    }

    /// Wakes the parked connection attached to `session` as number `seq` if a takeover
    /// or kick came before it was marked parked (and so did not unpark it).
    pub fn check_kicked(&self, core: &Core, session: &Session, seq: u64) {
        if session.attach_seq.load(Ordering::SeqCst) != seq
            || session.kicked.load(Ordering::SeqCst) == seq
        {
            core.unpark(session);
        }
    }

    /// Asks the parking task to resume parked connection `key` (if it still belongs
    /// to the session `uid`).
    pub fn wake(&self, key: u32, uid: u64) {
        self.wakes.lock().push((key, uid));
        self.notify.notify_one();
    }

    /// Removes parked connection `key` (if `accept` agrees) and deregisters its socket.
    fn take(
        &self,
        core: &Core,
        inner: &mut Inner,
        key: u32,
        accept: impl Fn(&Parked) -> bool,
    ) -> Option<Box<Parked>> {
        let parked = self.remove(inner, key, accept)?;
        core.stats
            .connections_parked
            .fetch_sub(1, Ordering::Relaxed);
        Some(parked)
    }

    fn remove(
        &self,
        inner: &mut Inner,
        key: u32,
        accept: impl Fn(&Parked) -> bool,
    ) -> Option<Box<Parked>> {
        let k = key as usize;
        if !inner.entries.get(k).is_some_and(|p| accept(p)) {
            return None;
        }
        let parked = inner.entries.remove(k);
        let _ = parked.session().parked.compare_exchange(
            key.wrapping_add(1),
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let fd = parked.socket().as_raw_fd();
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        Some(parked)
    }

    fn resume(&self, core: &Arc<Core>, shutdown: &CancellationToken, parked: Box<Parked>) {
        let conn = connection::resume(core.clone(), shutdown.clone(), parked);
        self.runners.spawn(Box::pin(conn));
    }

    async fn run(
        self: Arc<Self>,
        mut fd: AsyncFd<PollFd>,
        core: Arc<Core>,
        shutdown: CancellationToken,
    ) {
        let mut events = Events::with_capacity(256);
        let mut woken = Vec::new();
        loop {
            let next = {
                let mut inner = self.inner.lock();
                inner.next = inner
                    .deadlines
                    .peek()
                    .map_or(u64::MAX, |Reverse((d, _))| *d);
                inner.next
            };
            let sleep_until =
                self.epoch + Duration::from_millis(next.min(self.ms(Instant::now()) + 86_400_000));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                guard = fd.readable_mut() => {
                    let mut guard = match guard {
                        Ok(g) => g,
                        Err(e) => {
                            warn!(error = %e, "parked connections: polling failed");
                            break;
                        }
                    };
                    let polled = guard.try_io(|poll| {
                        poll.get_mut().0.poll(&mut events, Some(Duration::ZERO))?;
                        if events.is_empty() {
                            Err(io::ErrorKind::WouldBlock.into())
                        } else {
                            Ok(())
                        }
                    });
                    if let Ok(Err(e)) = polled {
                        warn!(error = %e, "parked connections: polling failed");
                    }
                    let mut inner = self.inner.lock();
                    for ev in events.iter() {
                        if let Some(p) = self.take(&core, &mut inner, ev.token().0 as u32, |_| true) {
                            woken.push(p);
                        }
                    }
                }
                _ = self.notify.notified() => {
                    let wakes = std::mem::take(&mut *self.wakes.lock());
                    let mut inner = self.inner.lock();
                    for (key, uid) in wakes {
                        if let Some(p) = self.take(&core, &mut inner, key, |p| p.session().uid == uid) {
                            woken.push(p);
                        }
                    }
                }
                _ = tokio::time::sleep_until(sleep_until) => {
                    let now = self.ms(Instant::now());
                    let mut inner = self.inner.lock();
                    while let Some(&Reverse((d, key))) = inner.deadlines.peek() {
                        if d > now {
                            break;
                        }
                        inner.deadlines.pop();
                        let due = |p: &Parked| p.deadline().is_some_and(|at| at <= now);
                        if let Some(p) = self.take(&core, &mut inner, key, due) {
                            woken.push(p);
                        }
                    }
                    if inner.deadlines.len() > 2 * inner.entries.len() + 1024 {
                        let live: Vec<_> = inner
                            .entries
                            .iter()
                            .filter_map(|(k, p)| p.deadline().map(|d| Reverse((d, k as u32))))
                            .collect();
                        inner.deadlines = BinaryHeap::from(live);
                    }
                }
            }
            for p in woken.drain(..) {
                self.resume(&core, &shutdown, p);
            }
        }
        // Stopping: everything parked resumes to see the shutdown and close.
        let mut inner = self.inner.lock();
        inner.closed = true;
        let keys: Vec<usize> = inner.entries.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(p) = self.take(&core, &mut inner, k as u32, |_| true) {
                woken.push(p);
            }
        }
        inner.deadlines.clear();
        drop(inner);
        for p in woken.drain(..) {
            self.resume(&core, &shutdown, p);
        }
    }
}
