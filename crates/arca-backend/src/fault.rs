//! A backend that fails on a schedule, for testing what the engine does
//! when storage misbehaves: transient errors it should retry, permanent ones
//! it should report cleanly, slow requests, writes that land although the
//! storage reports failure, and storage that lies: reads that return
//! truncated or altered bytes, writes acknowledged but stored truncated or
//! altered, removals acknowledged but not done, listings that leave objects
//! out.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Backend, Entry, Error, ErrorKind, FileKind};

/// What a scheduled failure looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A transient error; the request did nothing.
    Transient,
    /// The request is carried out, then a transient error is reported (a
    /// reply lost on the way back).
    TransientAfter,
    /// A permanent error; the request did nothing.
    Permanent,
    /// Success, but only the first half of the bytes: a read returns them,
    /// a write stores them; a listing leaves out every other object; a
    /// removal does nothing.
    Truncate,
    /// Success, but with one byte changed: a read returns it, a write
    /// stores it; a listing leaves out every other object; a removal does
    /// nothing.
    Corrupt,
}

/// Which requests fail.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    /// The first `n`.
    First(u64),
    /// Every one from the `n`-th (0-based) on.
    From(u64),
    /// Only the `n`-th (0-based).
    Nth(u64),
    /// Each with probability `rate`, decided by a seeded generator so a run
    /// can be repeated.
    Random { rate: f64, seed: u64 },
}

/// When and how a [`FaultBackend`] fails, and how slow it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    which: Which,
    fault: Fault,
    delay: Duration,
    kinds: Option<Vec<FileKind>>,
    writes_only: bool,
    reads_only: bool,
}

impl Schedule {
    /// The first `n` requests fail.
    pub fn first(n: u64, fault: Fault) -> Schedule {
        Schedule::new(Which::First(n), fault)
    }

    /// Requests succeed until the `n`-th (0-based); it and all after it fail.
    pub fn from(n: u64, fault: Fault) -> Schedule {
        Schedule::new(Which::From(n), fault)
    }

    /// Only the `n`-th request (0-based) fails.
    pub fn nth(n: u64, fault: Fault) -> Schedule {
        Schedule::new(Which::Nth(n), fault)
    }

    /// Each request fails with probability `rate` (0 to 1).
    pub fn random(rate: f64, seed: u64, fault: Fault) -> Schedule {
        Schedule::new(Which::Random { rate, seed }, fault)
    }

    /// Never fails (for delays alone).
    pub fn never() -> Schedule {
        Schedule::first(0, Fault::Transient)
    }

    fn new(which: Which, fault: Fault) -> Schedule {
        Schedule {
            which,
            fault,
            delay: Duration::ZERO,
            kinds: None,
            writes_only: false,
            reads_only: false,
        }
    }

    /// Every request first waits `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Schedule {
        self.delay = delay;
        self
    }

    /// Only writes and removes count and fail.
    pub fn writes_only(mut self) -> Schedule {
        self.writes_only = true;
        self
    }

    /// Only reads, listings and size queries count and fail.
    pub fn reads_only(mut self) -> Schedule {
        self.reads_only = true;
        self
    }

    /// Only requests about these kinds count and fail.
    pub fn only(mut self, kinds: &[FileKind]) -> Schedule {
        self.kinds = Some(kinds.to_vec());
        self
    }
}

/// Wraps a backend and makes its requests fail as the [`Schedule`] says.
#[derive(Debug)]
pub struct FaultBackend<B> {
    inner: B,
    schedule: Schedule,
    requests: AtomicU64,
    injected: AtomicU64,
}

impl<B: Backend> FaultBackend<B> {
    pub fn new(inner: B, schedule: Schedule) -> FaultBackend<B> {
        FaultBackend {
            inner,
            schedule,
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// How many requests counted towards the schedule so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Decides the fate of one request about `kind`.
    fn fate(&self, kind: FileKind, change: bool) -> Option<Fault> {
        if !self.schedule.delay.is_zero() {
            std::thread::sleep(self.schedule.delay);
        }
        if let Some(kinds) = &self.schedule.kinds
            && !kinds.contains(&kind)
        {
            return None;
        }
        if (self.schedule.writes_only && !change) || (self.schedule.reads_only && change) {
            return None;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let fails = match self.schedule.which {
            Which::First(count) => n < count,
            Which::From(start) => n >= start,
            Which::Nth(k) => n == k,
            Which::Random { rate, seed } => {
                let draw = splitmix(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 11;
                (draw as f64) / ((1u64 << 53) as f64) < rate
            }
        };
        if fails {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Some(self.schedule.fault)
        } else {
            None
        }
    }

    /// Runs `op` under the schedule. `lie` carries out a request that
    /// succeeds with wrong results, for [`Fault::Truncate`] and
    /// [`Fault::Corrupt`] (`true` for the latter).
    fn apply<T>(
        &self,
        kind: FileKind,
        name: &str,
        change: bool,
        op: impl FnOnce() -> Result<T, Error>,
        lie: impl FnOnce(bool) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let error = |kind_of_error: ErrorKind| {
            Error::new(
                kind_of_error,
                kind,
                name,
                Some(io::Error::other("injected fault")),
            )
        };
        match self.fate(kind, change) {
            None => op(),
            Some(Fault::Transient) => Err(error(ErrorKind::Transient)),
            Some(Fault::Permanent) => Err(error(ErrorKind::Io)),
            Some(Fault::TransientAfter) => {
                op()?;
                Err(error(ErrorKind::Transient))
            }
            Some(Fault::Truncate) => lie(false),
            Some(Fault::Corrupt) => lie(true),
        }
    }
}

/// `bytes` cut to their first half, or with one byte flipped.
fn falsify(mut bytes: Vec<u8>, corrupt: bool) -> Vec<u8> {
    if corrupt {
        if let Some(middle) = bytes.len().checked_sub(1).map(|last| last / 2) {
            bytes[middle] ^= 0x20;
        }
    } else {
        bytes.truncate(bytes.len() / 2);
    }
    bytes
}

/// One step of the SplitMix64 generator: a well-mixed function of `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<B: Backend> Backend for FaultBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), Error> {
        let create = || self.inner.create();
        self.apply(FileKind::Config, "config", true, create, |_| create())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        self.apply(
            kind,
            "0",
            false,
            || self.inner.list(kind),
            |_| {
                let mut all = self.inner.list(kind)?;
                let mut keep = false;
                all.retain(|_| {
                    keep = !keep;
                    keep
                });
                Ok(all)
            },
        )
    }

    fn strays(&self, kind: FileKind) -> Result<Vec<String>, Error> {
        self.inner.strays(kind)
    }

    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        self.apply(
            kind,
            name,
            false,
            || self.inner.read(kind, name, max),
            |corrupt| Ok(falsify(self.inner.read(kind, name, max)?, corrupt)),
        )
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let read = || self.inner.read_range(kind, name, offset, length);
        self.apply(kind, name, false, read, |corrupt| {
            Ok(falsify(read()?, corrupt))
        })
    }

    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.apply(
            kind,
            name,
            true,
            || self.inner.write(kind, name, bytes),
            |corrupt| {
                self.inner
                    .write(kind, name, &falsify(bytes.to_vec(), corrupt))
            },
        )
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        self.apply(
            kind,
            name,
            true,
            || self.inner.remove(kind, name),
            |_| Ok(()),
        )
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        let size = || self.inner.size(kind, name);
        self.apply(kind, name, false, size, |_| size())
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[test]
    fn a_random_schedule_fails_about_its_rate_and_repeats() {
        let run = |seed| {
            let memory = MemoryBackend::new();
            memory.create().unwrap();
            let backend = FaultBackend::new(memory, Schedule::random(0.2, seed, Fault::Transient));
            (0..1000)
                .map(|_| backend.list(FileKind::Index).is_err())
                .collect::<Vec<bool>>()
        };
        let a = run(7);
        let failed = a.iter().filter(|f| **f).count();
        assert!((150..250).contains(&failed), "{failed} of 1000 failed");
        assert_eq!(a, run(7), "same seed, same failures");
        assert_ne!(a, run(8));
    }

    #[test]
    fn from_fails_everything_after_the_start() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let backend = FaultBackend::new(memory, Schedule::from(2, Fault::Permanent));
        assert!(backend.list(FileKind::Index).is_ok());
        assert!(backend.list(FileKind::Index).is_ok());
        for _ in 0..3 {
            assert_eq!(
                backend.list(FileKind::Index).unwrap_err().kind(),
                ErrorKind::Io
            );
        }
        assert_eq!(backend.injected(), 3);
    }

    #[test]
    fn lying_requests_succeed_with_wrong_results() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        memory.write(FileKind::Index, "aa", b"0123456789").unwrap();
        memory.write(FileKind::Index, "bb", b"x").unwrap();
        let truncating = FaultBackend::new(memory.clone(), Schedule::nth(0, Fault::Truncate));
        assert_eq!(
            truncating.read(FileKind::Index, "aa", u64::MAX).unwrap(),
            b"01234"
        );
        assert_eq!(
            truncating.read(FileKind::Index, "aa", u64::MAX).unwrap(),
            b"0123456789"
        );
        let corrupting = FaultBackend::new(memory.clone(), Schedule::nth(1, Fault::Corrupt));
        corrupting.write(FileKind::Index, "cc", b"abc").unwrap();
        corrupting.write(FileKind::Index, "dd", b"abc").unwrap();
        assert_eq!(
            memory.read(FileKind::Index, "cc", u64::MAX).unwrap(),
            b"abc"
        );
        assert_eq!(
            memory.read(FileKind::Index, "dd", u64::MAX).unwrap(),
            b"aBc"
        );
        assert_eq!(corrupting.list(FileKind::Index).unwrap().len(), 4);
        let forgetful = FaultBackend::new(memory.clone(), Schedule::first(2, Fault::Corrupt));
        assert_eq!(forgetful.list(FileKind::Index).unwrap().len(), 2);
        forgetful.remove(FileKind::Index, "aa").unwrap();
        assert!(memory.exists(FileKind::Index, "aa").unwrap());
        assert_eq!(forgetful.requests(), 2);
        assert_eq!(forgetful.injected(), 2);
    }

    #[test]
    fn only_counts_the_kinds_named() {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let backend = FaultBackend::new(
            memory,
            Schedule::first(1, Fault::Transient).only(&[FileKind::Data]),
        );
        assert!(backend.list(FileKind::Index).is_ok());
        assert!(backend.list(FileKind::Data).is_err());
        assert!(backend.list(FileKind::Data).is_ok());
    }
}
