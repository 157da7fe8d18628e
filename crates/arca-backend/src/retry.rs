//! Retrying transient failures, and counting what crosses the wire.
//!
//! [`RetryBackend`] wraps any backend. A request that fails with
//! [`ErrorKind::Transient`] is made again after an exponentially growing,
//! jittered pause, up to a fixed number of attempts; every other failure,
//! and the last transient one, is returned as it is. Each retry is reported
//! to a log callback (the CLI shows them at `-v`).
//!
//! A write or remove whose first attempt failed may still have reached the
//! storage. A retry that then finds the object already there (write) or
//! already gone (remove) has succeeded, provided the stored size matches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Backend, Entry, Error, ErrorKind, FileKind, Staged};

/// Called with one line of text per event worth logging.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// When to give up and how long to wait in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The pause before the first retry; it doubles each time.
    pub base_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about a minute and a half.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1-based): the doubled base,
    /// capped, scaled by a random factor in [0.5, 1.0) so that many clients
    /// failing together do not retry together.
    pub fn delay(&self, retry: u32) -> Duration {
        let doubled = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = doubled.min(self.max_delay);
        capped.mul_f64(0.5 + jitter() / 2.0)
    }
}

/// A pseudo-random number in [0, 1), different across threads and calls.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Requests and bytes that went through a [`RetryBackend`].
#[derive(Debug, Default)]
pub struct TransferStats {
    requests: AtomicU64,
    retries: AtomicU64,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    data_pack_reads: AtomicU64,
}

/// A snapshot of [`TransferStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferCounts {
    /// Requests made, retries included.
    pub requests: u64,
    /// Of those, retries.
    pub retries: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// Reads (whole or ranged) of data packs.
    pub data_pack_reads: u64,
}

impl TransferStats {
    pub fn counts(&self) -> TransferCounts {
        TransferCounts {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
            written_bytes: self.written_bytes.load(Ordering::Relaxed),
            data_pack_reads: self.data_pack_reads.load(Ordering::Relaxed),
        }
    }
}

/// A backend that retries transient failures of the one it wraps.
pub struct RetryBackend<B> {
    inner: B,
    policy: RetryPolicy,
    log: Option<Log>,
    /// Log every request, not only retries.
    trace: bool,
    stats: Arc<TransferStats>,
    connections: Option<usize>,
}

impl<B: Backend> std::fmt::Debug for RetryBackend<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBackend")
            .field("location", &self.inner.location())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> RetryBackend<B> {
    pub fn new(inner: B, policy: RetryPolicy) -> RetryBackend<B> {
        RetryBackend {
            inner,
            policy,
            log: None,
            trace: false,
            stats: Arc::default(),
            connections: None,
        }
    }

    /// Overrides the wrapped backend's [`Backend::connections`].
    pub fn with_connections(mut self, connections: usize) -> RetryBackend<B> {
        self.connections = Some(connections.max(1));
        self
    }

    /// Reports retries (and, with `trace`, every request) to `log`.
    pub fn with_log(mut self, log: Log, trace: bool) -> RetryBackend<B> {
        self.log = Some(log);
        self.trace = trace;
        self
    }

    /// The counters, shared: they keep counting after this call.
    pub fn stats(&self) -> Arc<TransferStats> {
        self.stats.clone()
    }

    fn note(&self, text: impl FnOnce() -> String) {
        if let Some(log) = &self.log {
            log(&text());
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the budget is spent.
    /// `recovered` turns the error of a retry into success when the first
    /// attempt may have done the work.
    fn run<T>(
        &self,
        what: impl Fn() -> String,
        op: impl Fn() -> Result<T, Error>,
        recovered: impl Fn(&Error) -> Option<T>,
    ) -> Result<T, Error> {
        let mut attempt = 1;
        loop {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if self.trace {
                self.note(|| format!("{}: {}", self.inner.location(), what()));
            }
            let e = match op() {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if attempt > 1
                && let Some(value) = recovered(&e)
            {
                return Ok(value);
            }
            match e {
                e if e.is_transient() && attempt < self.policy.attempts => {
                    let pause = self.policy.delay(attempt);
                    self.note(|| {
                        format!(
                            "{} failed ({e}); retry {attempt} of {} in {:.1} s",
                            what(),
                            self.policy.attempts - 1,
                            pause.as_secs_f64()
                        )
                    });
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pause);
                    attempt += 1;
                }
                e if e.is_transient() && attempt > 1 => {
                    self.note(|| {
                        format!(
                            "{} failed ({e}); giving up after {attempt} attempts",
                            what()
                        )
                    });
                    return Err(e);
                }
                e => return Err(e),
            }
        }
    }
}

impl<B: Backend> Backend for RetryBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), Error> {
        self.run(|| "create".to_string(), || self.inner.create(), |_| None)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        self.run(
            || format!("list {}", kind.dir()),
            || self.inner.list(kind),
            |_| None,
        )
    }

    fn strays(&self, kind: FileKind) -> Result<Vec<String>, Error> {
        self.run(
            || format!("list strays in {}", kind.dir()),
            || self.inner.strays(kind),
            |_| None,
        )
    }

    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        let bytes = self.run(
            || format!("read {kind} {name}"),
            || self.inner.read(kind, name, max),
            |_| None,
        )?;
        self.count_read(kind, bytes.len());
        Ok(bytes)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let bytes = self.run(
            || format!("read {kind} {name} [{offset}, +{length}]"),
            || self.inner.read_range(kind, name, offset, length),
            |_| None,
        )?;
        self.count_read(kind, bytes.len());
        Ok(bytes)
    }

    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let size = bytes.len() as u64;
        self.run(
            || format!("write {kind} {name} ({size} bytes)"),
            || self.inner.write(kind, name, bytes),
            |e| {
                (e.kind() == ErrorKind::AlreadyExists
                    && self.inner.size(kind, name).is_ok_and(|s| s == size))
                .then_some(())
            },
        )?;
        self.stats.written_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        self.run(
            || format!("remove {kind} {name}"),
            || self.inner.remove(kind, name),
            |e| (e.kind() == ErrorKind::NotFound).then_some(()),
        )
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        self.run(
            || format!("size of {kind} {name}"),
            || self.inner.size(kind, name),
            |_| None,
        )
    }

    fn connections(&self) -> usize {
        self.connections.unwrap_or_else(|| self.inner.connections())
    }

    /// Staged objects are not retried (a backend that stages has no
    /// transient failures); their bytes are counted when committed.
    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn Staged>>, Error> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        Ok(self.inner.stage(kind)?.map(|inner| {
            Box::new(CountedStaged {
                inner,
                stats: self.stats.clone(),
                written: 0,
            }) as Box<dyn Staged>
        }))
    }
}

/// A staged object whose bytes go into the transfer counts once stored.
struct CountedStaged {
    inner: Box<dyn Staged>,
    stats: Arc<TransferStats>,
    written: u64,
}

impl Staged for CountedStaged {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner.write(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn commit(self: Box<Self>, name: &str) -> Result<(), Error> {
        let CountedStaged {
            inner,
            stats,
            written,
        } = *self;
        inner.commit(name)?;
        stats.written_bytes.fetch_add(written, Ordering::Relaxed);
        Ok(())
    }
}

impl<B: Backend> RetryBackend<B> {
    fn count_read(&self, kind: FileKind, len: usize) {
        self.stats
            .read_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        if kind == FileKind::Data {
            self.stats.data_pack_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::MemoryBackend;
    use crate::fault::{Fault, FaultBackend, Schedule};

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        for retry in 1..40 {
            let d = policy.delay(retry);
            let full = policy
                .base_delay
                .saturating_mul(1 << (retry - 1).min(20))
                .min(policy.max_delay);
            assert!(
                d >= full / 2 && d < full,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn retries_transient_failures_until_they_pass() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let faulty = FaultBackend::new(memory.clone(), Schedule::first(3, Fault::Transient));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let retrying = RetryBackend::new(faulty, quick(5)).with_log(
            Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string())),
            false,
        );
        retrying.write(FileKind::Index, "ab", b"bytes").unwrap();
        assert_eq!(
            memory.read(FileKind::Index, "ab", u64::MAX).unwrap(),
            b"bytes"
        );
        let counts = retrying.stats().counts();
        assert_eq!((counts.requests, counts.retries), (4, 3));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("retry 1 of 4"), "{lines:?}");
    }

    #[test]
    fn gives_up_after_the_budget_with_the_storage_error() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let faulty = FaultBackend::new(memory.clone(), Schedule::first(10, Fault::Transient));
        let retrying = RetryBackend::new(faulty, quick(3));
        let err = retrying.read(FileKind::Index, "ab", u64::MAX).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(retrying.stats().counts().requests, 3);
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let faulty = FaultBackend::new(memory, Schedule::first(10, Fault::Permanent));
        let retrying = RetryBackend::new(faulty, quick(5));
        let err = retrying.list(FileKind::Index).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(retrying.stats().counts().requests, 1);
    }

    #[test]
    fn a_write_that_landed_before_failing_counts_as_done() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let faulty = FaultBackend::new(memory.clone(), Schedule::first(1, Fault::TransientAfter));
        let retrying = RetryBackend::new(faulty, quick(3));
        retrying.write(FileKind::Data, "abcd", b"pack").unwrap();
        assert_eq!(
            memory.read(FileKind::Data, "abcd", u64::MAX).unwrap(),
            b"pack"
        );
        // A different object of that name is still refused.
        let faulty = FaultBackend::new(memory.clone(), Schedule::first(1, Fault::TransientAfter));
        let retrying = RetryBackend::new(faulty, quick(3));
        retrying.write(FileKind::Data, "ef", b"x").unwrap();
        assert_eq!(
            retrying
                .write(FileKind::Data, "ef", b"longer")
                .unwrap_err()
                .kind(),
            ErrorKind::AlreadyExists
        );
    }
}
