//! Filling packs with sealed blobs: one pack per kind being filled, each
//! handed to an upload worker as soon as it reaches the repository's target
//! size. Snapshots feed it freshly sealed blobs; prune and a snapshot that
//! outlived a prune feed it blobs copied, still sealed, out of other packs.
//!
//! Where the backend can stage objects (a local repository), a pack is
//! written into its temporary file blob by blob as it fills, and a worker
//! only makes it durable and names it: no pack is ever held in memory.
//! Elsewhere packs are assembled in memory and uploads run on
//! [`Backend::connections`] worker threads, so remote storage has several
//! packs in flight while the next ones fill. A full pack waits until a
//! worker is free: at most one pack per worker is in memory beyond the two
//! being filled. A stored pack's buffer comes back to the packer for the
//! next pack, so the same few buffers serve a whole run instead of fresh
//! memory (and fresh page faults) for every pack.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arca_backend::Backend;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::IndexPack;
use crate::pack::{FinishedPack, PackWriter};
use crate::repository::{Repository, store_pack};

/// Every pack stored, as the upload workers store them, and how many
/// stores are under way: what an interrupt's save records.
#[derive(Default)]
pub(crate) struct Recording {
    /// Packs stored (the owner removes those it has indexed).
    pub stored: Mutex<Vec<IndexPack>>,
    /// Stores begun and not yet recorded.
    pub in_flight: AtomicUsize,
}

impl Recording {
    /// The packs stored and not yet taken, once the stores under way have
    /// ended (waiting at most `limit`; an interrupt is stopping new ones).
    pub fn settle(&self, limit: std::time::Duration) -> Vec<IndexPack> {
        let deadline = std::time::Instant::now() + limit;
        while self.in_flight.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::mem::take(&mut *self.stored.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub(crate) struct Packer<'r> {
    repo: &'r Repository,
    target: usize,
    /// Data, tree: started when their first blob arrives.
    writers: [Option<PackWriter>; 2],
    uploads: Uploads,
}

impl<'r> Packer<'r> {
    pub fn new(repo: &'r Repository) -> Packer<'r> {
        Packer::recording(repo, None)
    }

    /// A packer whose upload workers also add each pack they store to
    /// `stored` the moment it is stored (before [`Packer::add`] returns it),
    /// for whoever must know every stored pack at any moment.
    pub fn recording(repo: &'r Repository, stored: Option<Arc<Recording>>) -> Packer<'r> {
        Packer {
            repo,
            target: repo.config().pack_size as usize,
            writers: [None, None],
            uploads: Uploads::start(repo.shared_backend(), repo.upload_verifier(), stored),
        }
    }

    /// A writer for the next pack of `kind`: staged in the repository where
    /// the backend can, else in a buffer of a stored pack or a new one.
    fn start(&self, kind: BlobKind) -> Result<PackWriter> {
        if let Some(object) = self.repo.backend().stage(kind.file_kind())? {
            return Ok(PackWriter::staged(kind, object));
        }
        Ok(match self.uploads.spare.try_recv() {
            Ok(buffer) => PackWriter::with_buffer(kind, buffer),
            Err(_) => PackWriter::new(kind, self.target),
        })
    }

    /// Adds one sealed blob; returns the packs whose upload finished since
    /// the last call.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        raw_length: u32,
        compression: u8,
        stored: &[u8],
    ) -> Result<Vec<IndexPack>> {
        let slot = usize::from(kind == BlobKind::Tree);
        let writer = match self.writers[slot].take() {
            Some(writer) => writer,
            None => self.start(kind)?,
        };
        let writer = self.writers[slot].insert(writer);
        writer.add(id, raw_length, compression, stored)?;
        if writer.len() >= self.target
            && let Some(full) = self.writers[slot].take()
        {
            self.uploads.send(full.finish(self.repo.key())?)?;
        }
        self.uploads.take_finished()
    }

    /// After a failure: waits for the uploads in flight and returns every
    /// pack stored and not yet returned, so the caller can still index
    /// them (the next run then reuses them instead of sending them again).
    pub fn abandon(mut self) -> Vec<IndexPack> {
        self.uploads.close();
        self.uploads.drain();
        std::mem::take(&mut self.uploads.finished)
    }

    /// Stores the packs still being filled and waits for every upload;
    /// returns the packs not yet returned by [`Packer::add`].
    pub fn finish(mut self) -> Result<Vec<IndexPack>> {
        for writer in std::mem::take(&mut self.writers).into_iter().flatten() {
            if !writer.is_empty() {
                self.uploads.send(writer.finish(self.repo.key())?)?;
            }
        }
        if self.uploads.close() {
            return Err(Error::Internal("a pack upload worker panicked".into()));
        }
        self.uploads.take_finished()
    }
}

/// The upload workers and their channels.
struct Uploads {
    jobs: Option<Sender<FinishedPack>>,
    done: Receiver<Result<IndexPack>>,
    /// Buffers of stored packs, for the next ones.
    spare: Receiver<Vec<u8>>,
    workers: Vec<JoinHandle<()>>,
    /// Stored, not yet returned.
    finished: Vec<IndexPack>,
    /// The first failed upload, not yet returned.
    failed: Option<Error>,
}

impl Uploads {
    fn start(
        backend: Arc<dyn Backend>,
        verify: Option<Arc<dyn Backend>>,
        stored: Option<Arc<Recording>>,
    ) -> Uploads {
        let count = backend.connections().max(1);
        // A rendezvous channel: a full pack is handed over only when a
        // worker is free to take it.
        let (jobs, job_rx) = bounded::<FinishedPack>(0);
        let (done_tx, done) = unbounded();
        // At most one buffer per worker is ever in flight back.
        let (spare_tx, spare) = bounded::<Vec<u8>>(count);
        let workers = (0..count)
            .map(|_| {
                let backend = backend.clone();
                let job_rx = job_rx.clone();
                let done_tx = done_tx.clone();
                let spare_tx = spare_tx.clone();
                let verify = verify.clone();
                let record = stored.clone();
                std::thread::spawn(move || {
                    for pack in job_rx {
                        // Counted before storing: an interrupt's save waits
                        // for this store to be recorded (or refused).
                        if let Some(record) = &record {
                            record.in_flight.fetch_add(1, Ordering::SeqCst);
                        }
                        let stored = store_pack(&*backend, pack, verify.as_deref()).map(
                            |(entry, buffer)| {
                                if let Some(buffer) = buffer {
                                    // A full spare queue drops the buffer instead.
                                    let _ = spare_tx.try_send(buffer);
                                }
                                if let Some(record) = &record {
                                    record
                                        .stored
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .push(entry.clone());
                                }
                                entry
                            },
                        );
                        if let Some(record) = &record {
                            record.in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                        if done_tx.send(stored).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Uploads {
            jobs: Some(jobs),
            done,
            spare,
            workers,
            finished: Vec::new(),
            failed: None,
        }
    }

    fn send(&mut self, pack: FinishedPack) -> Result<()> {
        self.drain();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        match self.jobs.as_ref().map(|jobs| jobs.send(pack)) {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Internal("the pack upload workers stopped".into())),
        }
    }

    /// Moves the workers' reports into `finished` and `failed`.
    fn drain(&mut self) {
        for report in self.done.try_iter() {
            match report {
                Ok(pack) => self.finished.push(pack),
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            }
        }
    }

    /// The packs stored since the last call; the first failed upload as an
    /// error.
    fn take_finished(&mut self) -> Result<Vec<IndexPack>> {
        self.drain();
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.finished)),
        }
    }

    /// Closes the queue and waits for the workers; true if one panicked.
    fn close(&mut self) -> bool {
        self.jobs = None;
        let mut panicked = false;
        for worker in self.workers.drain(..) {
            panicked |= worker.join().is_err();
        }
        panicked
    }
}

impl Drop for Uploads {
    /// Lets running uploads end, so no worker outlives the command that
    /// started it.
    fn drop(&mut self) {
        self.close();
    }
}
