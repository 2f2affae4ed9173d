//! The clocks behind the queue's `max_age`, and how a jumping wall clock is kept out of it.
//!
//! A message's age is the queue's current wall-clock time minus its `enqueued_at_ms`, but
//! the wall clock is not trusted to be continuous: a Raspberry Pi without a real-time
//! clock boots with the time of its last shutdown (or 1970) and jumps forward when NTP
//! syncs; an operator can set it back. So the queue reads two clocks ([`Clock`]):
//!
//! * **While running**, every reading is compared with the previous one (`Frame`). If
//!   the wall clock moved more than [`JUMP_TOLERANCE_MS`] away from what the monotonic
//!   clock says elapsed, that difference is a *jump*: every queued message's
//!   `enqueued_at_ms` is moved by the same amount, so its age keeps following the
//!   monotonic clock, and the jump is logged (a `Shifted` record, see [`crate::record`]).
//!   The stamps are thereby always in the frame of the latest wall clock, which is the
//!   one most likely right (NTP or an operator set it).
//! * **At recovery**, the stamps (in the last run's frame) are compared with the wall clock
//!   now. Time the gateway was off counts when the clock agrees (it is at or after the
//!   stamps). A clock *behind* the stamps (a boot without RTC) cannot say how long the
//!   gateway was off: those messages are restamped "now" (a `Capped` record), so they
//!   age from this recovery and expire at the latest `max_age` after it, and the
//!   restamping survives the next restart.
//!
//! Limits: a clock that is already wrong *ahead* when the process starts (a bad RTC set in
//! the future) looks like a long outage and expires what it covers; a jump whose record
//! was not yet durable at a crash is judged by the old stamps after the restart. Time the
//! host is suspended (the monotonic clock stops) does not count.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A wall-clock step up to this size is the clock's own correction and counts as time
/// passed; beyond it, it is a jump and does not. NTP slews at most 0.5 ms/s, and the
/// bridge reads the queue's clocks at least every 10 s (stats reports), so slewing stays
/// far below it.
pub const JUMP_TOLERANCE_MS: u64 = 2_000;

/// The two clocks the queue reads.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Wall-clock time in milliseconds since the Unix epoch. May jump either way.
    fn wall_ms(&self) -> u64;
    /// Milliseconds since an arbitrary origin, from a clock that never jumps.
    fn monotonic_ms(&self) -> u64;
}

/// The system's clocks: [`SystemTime`] and [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// Clocks whose monotonic origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn wall_ms(&self) -> u64 {
        now_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Clocks set by hand, for tests: [`ManualClock::advance`] lets time pass on both,
/// [`ManualClock::set_wall`] makes the wall clock jump. One per simulated process run.
#[derive(Debug, Default)]
pub struct ManualClock {
    wall_ms: AtomicU64,
    mono_ms: AtomicU64,
}

impl ManualClock {
    /// A clock showing `wall_ms`, its monotonic clock at 0.
    pub fn new(wall_ms: u64) -> ManualClock {
        ManualClock {
            wall_ms: AtomicU64::new(wall_ms),
            mono_ms: AtomicU64::new(0),
        }
    }

    /// `by` passes: both clocks advance.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.wall_ms.fetch_add(ms, Ordering::Relaxed);
        self.mono_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The wall clock is set to `wall_ms` (a jump); the monotonic clock does not move.
    pub fn set_wall(&self, wall_ms: u64) {
        self.wall_ms.store(wall_ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> u64 {
        self.wall_ms.load(Ordering::Relaxed)
    }

    fn monotonic_ms(&self) -> u64 {
        self.mono_ms.load(Ordering::Relaxed)
    }
}

/// The last reading of both clocks: plain data, no clock of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    wall_ms: u64,
    mono_ms: u64,
}

impl Frame {
    pub(crate) fn new(wall_ms: u64, mono_ms: u64) -> Frame {
        Frame { wall_ms, mono_ms }
    }

    /// The wall-clock time of the last reading: the queue's "now".
    pub(crate) fn now_ms(&self) -> u64 {
        self.wall_ms
    }

    /// Takes a new reading. Returns the jump, in milliseconds (negative: backwards), when
    /// the wall clock moved more than [`JUMP_TOLERANCE_MS`] away from the monotonic
    /// clock's elapsed time since the last reading.
    pub(crate) fn observe(&mut self, wall_ms: u64, mono_ms: u64) -> Option<i64> {
        let elapsed = mono_ms.saturating_sub(self.mono_ms);
        let drift = i128::from(wall_ms) - i128::from(self.wall_ms) - i128::from(elapsed);
        *self = Frame { wall_ms, mono_ms };
        (drift.unsigned_abs() > u128::from(JUMP_TOLERANCE_MS))
            .then(|| i64::try_from(drift).unwrap_or(if drift < 0 { i64::MIN } else { i64::MAX }))
    }
}

/// `at_ms` moved by a jump of `delta_ms`.
pub(crate) fn shift(at_ms: u64, delta_ms: i64) -> u64 {
    at_ms.saturating_add_signed(delta_ms)
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_within_the_tolerance_are_time_passing() {
        let mut frame = Frame::new(1_000_000, 50);
        assert_eq!(frame.observe(1_010_000, 10_050), None);
        assert_eq!(frame.observe(1_011_500, 10_050), None, "+1.5 s step");
        assert_eq!(frame.observe(1_010_000, 10_050), None, "-1.5 s step");
        assert_eq!(frame.now_ms(), 1_010_000);
    }

    #[test]
    fn larger_steps_are_jumps_either_way() {
        let year: u64 = 365 * 86_400_000;
        let jump = i64::try_from(year).unwrap();
        let mut frame = Frame::new(1_000_000, 0);
        assert_eq!(frame.observe(1_000_000 + 5_000 + year, 5_000), Some(jump));
        assert_eq!(frame.observe(1_000_000, 5_000), Some(-5_000 - jump));
        assert_eq!(frame.observe(0, 5_000), Some(-1_000_000));
        // The monotonic clock alone advancing means the wall clock stood still: a jump back.
        assert_eq!(frame.observe(0, 10_000), Some(-5_000));
    }

    #[test]
    fn shifts_saturate() {
        assert_eq!(shift(10, -20), 0);
        assert_eq!(shift(u64::MAX - 1, 5), u64::MAX);
        assert_eq!(shift(10, 5), 15);
    }
}
