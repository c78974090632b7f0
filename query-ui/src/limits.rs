//! The request limits that need shared state: how many queries run at once
//! (`server.max_concurrent_queries`), how long a log query may take (`server.log_query_timeout`)
//! and each tenant's ingest rate (`server.max_log_bytes_per_second`,
//! `server.max_samples_per_second`: token buckets). Like every limit, each answers with an error
//! naming its key ([`ApiError::Limit`]) and is counted in `tarsier_limit_hits_total{limit}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::HttpConfig;
use crate::error::ApiError;

/// How long a query waits for a slot before it is refused.
const QUERY_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Buckets kept before full (idle) ones are forgotten: the tenant header is the client's choice.
const MAX_BUCKETS: usize = 10_000;

/// What an ingest rate limit counts.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Rate {
    LogBytes,
    Samples,
}

impl Rate {
    fn key(self) -> &'static str {
        match self {
            Rate::LogBytes => "server.max_log_bytes_per_second",
            Rate::Samples => "server.max_samples_per_second",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Rate::LogBytes => "bytes of log lines",
            Rate::Samples => "samples",
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    per_second: f64,
}

impl Bucket {
    fn capacity(&self) -> f64 {
        2.0 * self.per_second
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.capacity());
        self.at = now;
    }
}

/// A semaphore whose size a reload may change while permits are out. Growing adds permits;
/// shrinking forgets free ones and owes the rest, paid by forgetting permits as they are next
/// taken, so running work is never cut off and the new bound holds once it ends.
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    /// (size, permits still to forget).
    state: parking_lot::Mutex<(usize, usize)>,
}

impl Slots {
    pub(crate) fn new(size: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(size)), state: parking_lot::Mutex::new((size, 0)) }
    }

    pub(crate) fn size(&self) -> usize {
        self.state.lock().0
    }

    pub(crate) fn resize(&self, size: usize) {
        let mut state = self.state.lock();
        let (old, debt) = *state;
        if size > old {
            let grow = size - old;
            let paid = grow.min(debt);
            self.semaphore.add_permits(grow - paid);
            *state = (size, debt - paid);
        } else if size < old {
            let shrink = old - size;
            let forgotten = self.semaphore.forget_permits(shrink);
            *state = (size, debt + shrink - forgotten);
        }
    }

    /// A permit unless the debt takes it; `None` if it did (the caller tries again).
    fn keep(&self, permit: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
        let mut state = self.state.lock();
        if state.1 > 0 {
            state.1 -= 1;
            permit.forget();
            return None;
        }
        Some(permit)
    }

    /// Waits for a permit.
    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        loop {
            let permit = Arc::clone(&self.semaphore).acquire_owned().await.expect("never closed");
            if let Some(permit) = self.keep(permit) {
                return permit;
            }
        }
    }

    /// A permit if one is free now.
    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
            if let Some(permit) = self.keep(permit) {
                return Some(permit);
            }
        }
    }
}

/// Shared by all handlers through the [`crate::AppState`].
pub(crate) struct Limits {
    queries: Slots,
    queue_wait: Duration,
    buckets: parking_lot::Mutex<HashMap<(TenantId, Rate), Bucket>>,
}

impl Limits {
    pub(crate) fn new(config: &HttpConfig) -> Self {
        Self {
            queries: Slots::new(config.max_concurrent_queries),
            queue_wait: QUERY_QUEUE_WAIT,
            buckets: Default::default(),
        }
    }

    /// Applies a reloaded `server.max_concurrent_queries`.
    pub(crate) fn resize_queries(&self, max: usize) {
        self.queries.resize(max);
    }

    /// A slot among `server.max_concurrent_queries`, waiting up to 5 s for one. Hold it until
    /// the query's work ends (move it into the blocking task).
    pub(crate) async fn query_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.queue_wait, self.queries.acquire()).await {
            Ok(permit) => Ok(permit),
            _ => Err(ApiError::Limit {
                key: "server.max_concurrent_queries",
                status: 429,
                retry_after: Some(1),
                message: format!(
                    "too many concurrent queries: {} are running (server.max_concurrent_queries); retry later",
                    self.queries.size()
                ),
            }),
        }
    }

    /// Takes `cost` from the tenant's bucket for `rate` (`per_second` 0: no limit). A bucket
    /// holds two seconds' worth; a request gets in while its bucket is not empty and may leave
    /// it in debt, so a batch of any size passes and the average stays at the rate.
    pub(crate) fn take(&self, tenant: &TenantId, rate: Rate, per_second: u64, cost: u64) -> Result<(), ApiError> {
        if per_second == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < b.capacity()
            });
        }
        let per_second = per_second as f64;
        let bucket = buckets.entry((tenant.clone(), rate)).or_insert_with(|| Bucket {
            tokens: 2.0 * per_second,
            at: now,
            per_second,
        });
        bucket.per_second = per_second;
        bucket.refill(now);
        if bucket.tokens <= 0.0 {
            let wait = (-bucket.tokens / per_second).ceil().max(1.0) as u64;
            return Err(ApiError::Limit {
                key: rate.key(),
                status: 429,
                retry_after: Some(wait),
                message: format!(
                    "ingest rate limit exceeded for tenant {tenant}: {per_second} {} per second ({}); retry in {wait}s",
                    rate.unit(),
                    rate.key()
                ),
            });
        }
        bucket.tokens -= cost as f64;
        Ok(())
    }
}

/// Runs a store's blocking work under a query slot. With a `timeout` the work gets a
/// [`indexer::Cancel`] with that deadline, the client gets 503 naming the key once it has passed,
/// and the work stops at its next check; the slot is released when it has stopped. A client that
/// goes away (this future dropped) cancels the work too.
pub(crate) async fn run_query<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    state: &crate::AppState,
    timeout: Option<(Duration, &'static str)>,
    f: impl FnOnce(&indexer::Cancel) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = state.limits().query_slot().await?;
    let cancel = match timeout {
        Some((limit, _)) => indexer::Cancel::with_deadline(Instant::now() + limit),
        None => indexer::Cancel::new(),
    };
    let on_drop = CancelOnDrop(cancel.clone());
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(&cancel)
    });
    let timed_out = |limit: Duration, key: &'static str| ApiError::Limit {
        key,
        status: 503,
        retry_after: None,
        message: format!("query timed out after {limit:?} ({key})"),
    };
    let joined = match timeout {
        None => task.await,
        // The store stops at the deadline; the timer is the backstop for work between checks.
        Some((limit, key)) => match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined,
            Err(_) => return Err(timed_out(limit, key)),
        },
    };
    drop(on_drop);
    match (joined.map_err(ApiError::from_join)?.map_err(Into::into), timeout) {
        // The store saw the deadline before the timer fired.
        (Err(ApiError::Indexer(indexer::Error::Cancelled)), Some((limit, key))) => Err(timed_out(limit, key)),
        (result, _) => result,
    }
}

/// Cancels the work when the request's future ends, however it ends; after the work has
/// finished this changes nothing.
struct CancelOnDrop(indexer::Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn slots_resize_while_permits_are_out() {
        let slots = super::Slots::new(2);
        let (a, b) = (slots.try_acquire().unwrap(), slots.try_acquire().unwrap());
        slots.resize(1);
        drop(a);
        assert!(slots.try_acquire().is_none(), "the freed permit paid the shrink");
        drop(b);
        let c = slots.try_acquire().expect("one slot at the new size");
        assert!(slots.try_acquire().is_none());
        slots.resize(3);
        let d = slots.try_acquire().unwrap();
        let e = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none(), "three at most");
        slots.resize(0);
        drop((c, d, e));
        assert!(slots.try_acquire().is_none(), "zero slots");
        assert_eq!(slots.size(), 0);
        slots.resize(1);
        assert!(slots.try_acquire().is_some());
    }

    use super::*;

    fn tenant() -> TenantId {
        TenantId::new("t1").unwrap()
    }

    #[test]
    fn a_bucket_lets_two_seconds_worth_in_then_refuses_with_retry_after_naming_the_key() {
        let limits = Limits::new(&HttpConfig::default());
        assert!(limits.take(&tenant(), Rate::Samples, 0, u64::MAX).is_ok(), "0 = no limit");
        limits.take(&tenant(), Rate::Samples, 100, 150).unwrap();
        limits.take(&tenant(), Rate::Samples, 100, 150).unwrap(); // into debt: 200 - 300
        let err = limits.take(&tenant(), Rate::Samples, 100, 1).unwrap_err();
        assert_eq!(err.status().as_u16(), 429);
        assert!(err.to_string().contains("server.max_samples_per_second"), "{err}");
        let ApiError::Limit { retry_after, key, .. } = &err else { panic!("{err:?}") };
        assert_eq!((*key, *retry_after), ("server.max_samples_per_second", Some(1)));
        let other = TenantId::new("t2").unwrap();
        limits.take(&other, Rate::Samples, 100, 150).unwrap();
        limits.take(&tenant(), Rate::LogBytes, 100, 150).unwrap();
    }

    #[tokio::test]
    async fn queries_beyond_the_slots_are_refused_after_waiting() {
        let config = HttpConfig { max_concurrent_queries: 1, ..HttpConfig::default() };
        let limits = Limits { queue_wait: Duration::from_millis(20), ..Limits::new(&config) };
        let held = limits.query_slot().await.unwrap();
        let err = limits.query_slot().await.unwrap_err();
        assert_eq!(err.status().as_u16(), 429);
        assert!(err.to_string().contains("server.max_concurrent_queries"), "{err}");
        drop(held);
        let _slot = limits.query_slot().await.unwrap();
    }
}
