//! A query's stop signal. An HTTP server that stops waiting for a query (its timeout passed, or
//! the client went away) must also stop the work, or the blocking thread and the query slot stay
//! taken until the query finishes on its own. The query loops (per partition, per candidate line,
//! per series of a range aggregation, inside tantivy's collection) check a [`Cancel`] often enough
//! that a query over millions of lines stops within milliseconds and returns [`Error::Cancelled`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::Error;

/// How many lines or documents a loop handles between two checks: a check costs a clock read,
/// a stored line costs a doc-store lookup (microseconds), so 256 keeps both the cost and the
/// latency of a stop small.
pub(crate) const CHECK_EVERY: usize = 256;

/// Set by whoever gives up on a query (see the module doc); cloning shares the flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Cancel {
    /// A signal that only [`Cancel::cancel`] sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal that is also set once `deadline` has passed.
    pub fn with_deadline(deadline: Instant) -> Self {
        Self { deadline: Some(deadline), ..Self::default() }
    }

    /// Stops the work at its next check.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// Whether the work should stop.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// [`Error::Cancelled`] once the work should stop.
    pub fn check(&self) -> Result<(), Error> {
        if self.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }

    /// [`Cancel::check`] on every [`CHECK_EVERY`]th call with `i` counting up.
    pub(crate) fn check_every(&self, i: usize) -> Result<(), Error> {
        if i.is_multiple_of(CHECK_EVERY) { self.check() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_or_a_passed_deadline_stops_and_clones_share_the_flag() {
        let cancel = Cancel::new();
        assert!(cancel.check().is_ok());
        let shared = cancel.clone();
        shared.cancel();
        assert!(matches!(cancel.check(), Err(Error::Cancelled)));
        let past = Cancel::with_deadline(Instant::now());
        assert!(past.is_cancelled());
        let later = Cancel::with_deadline(Instant::now() + std::time::Duration::from_secs(3600));
        assert!(!later.is_cancelled());
        assert!(later.check_every(1).is_ok());
    }
}
