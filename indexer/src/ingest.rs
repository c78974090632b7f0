//! The bounded hand-off between appenders and the one ingest thread that owns the tantivy
//! writers. Appenders reserve room (in line bytes) before they write the WAL, then push their
//! entry under the WAL lock, so the queue holds entries in WAL order and a push never waits while
//! that lock is held. The ingest thread indexes entries, commits on its interval and runs
//! retention; a commit there never blocks an append unless the queue is full (backpressure).

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use model::{LogRecord, TenantId};
use parking_lot::{Condvar, Mutex};

use crate::error::Error;

/// Work for the ingest thread.
pub(crate) enum Job {
    /// A WAL entry at `position` (durable or about to be: the thread syncs the WAL before any
    /// commit that covers it); `end` is the position after it. `bytes` were reserved.
    Entry { tenant: TenantId, position: u64, end: u64, records: Vec<LogRecord>, bytes: usize },
    /// Commit everything queued before this job and answer.
    Commit(SyncSender<Result<(), Error>>),
    /// Run retention now and answer how many partitions were deleted.
    Retention(SyncSender<Result<usize, Error>>),
    /// Index what is queued, commit, close the writers, answer and stop.
    Shutdown(SyncSender<Result<(), Error>>),
    /// Stop without committing (the store was dropped: like a crash, the WAL replays).
    Abort,
}

struct State {
    jobs: VecDeque<Job>,
    /// Bytes reserved by appenders whose entries are not indexed yet.
    reserved: usize,
}

/// A FIFO of jobs bounded by the bytes of the entries in it.
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    has_jobs: Condvar,
    has_room: Condvar,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State { jobs: VecDeque::new(), reserved: 0 }),
            capacity,
            has_jobs: Condvar::new(),
            has_room: Condvar::new(),
        }
    }

    /// Waits until `bytes` fit (an entry larger than the whole capacity waits for an empty queue).
    pub fn reserve(&self, bytes: usize) {
        let mut state = self.state.lock();
        while state.reserved > 0 && state.reserved + bytes > self.capacity {
            self.has_room.wait(&mut state);
        }
        state.reserved += bytes;
    }

    /// Gives back a reservation: the entry was indexed, or never pushed.
    pub fn release(&self, bytes: usize) {
        let mut state = self.state.lock();
        state.reserved = state.reserved.saturating_sub(bytes);
        self.has_room.notify_all();
    }

    /// Appends a job; never waits (entries reserved their room before).
    pub fn push(&self, job: Job) {
        self.state.lock().jobs.push_back(job);
        self.has_jobs.notify_one();
    }

    /// The next job, or `None` once `deadline` passes with nothing queued.
    pub fn pop_until(&self, deadline: Instant) -> Option<Job> {
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if self.has_jobs.wait_until(&mut state, deadline).timed_out() {
                return state.jobs.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn reservations_wait_for_room_and_oversized_entries_for_an_empty_queue() {
        let q = Arc::new(Queue::new(100));
        q.reserve(60);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                q.reserve(500);
                tx.send(()).unwrap();
            })
        };
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "500 bytes must wait while 60 are reserved");
        q.release(60);
        rx.recv_timeout(Duration::from_secs(10)).expect("an oversized entry proceeds once the queue is empty");
        waiter.join().unwrap();
    }

    #[test]
    fn jobs_come_out_in_order_and_pop_times_out() {
        let q = Queue::new(10);
        q.push(Job::Abort);
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        q.push(Job::Commit(tx));
        assert!(matches!(q.pop_until(Instant::now()), Some(Job::Abort)));
        assert!(matches!(q.pop_until(Instant::now()), Some(Job::Commit(_))));
        assert!(q.pop_until(Instant::now() + Duration::from_millis(5)).is_none());
    }
}
