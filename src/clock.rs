//! Time as an input. The coordinator asks its [`Clock`] for "now" (lease verdicts, the receive
//! time of what it appends, the times of its spans) instead of reading the system's, so that a
//! test can move time forward instead of sleeping through a lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::UnixNanos;

/// Where the coordinator's "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixNanos;
}

/// The system's wall clock. In a build with the test hooks (`test-hooks`),
/// `SPANFOLD_CLOCK_AHEAD_SECS=N` puts it N seconds ahead, so that an integration test can let a
/// lease run out without waiting for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixNanos {
        crate::emit::now().saturating_add(ahead())
    }
}

#[cfg(feature = "test-hooks")]
fn ahead() -> UnixNanos {
    std::env::var("SPANFOLD_CLOCK_AHEAD_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |secs| secs.saturating_mul(1_000_000_000))
}

#[cfg(not(feature = "test-hooks"))]
fn ahead() -> UnixNanos {
    0
}

/// A clock that moves only when told: for tests of what happens as time passes.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn at(now: UnixNanos) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(now)))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixNanos {
        self.0.load(Ordering::Relaxed)
    }
}
