//! Counting what a snapshot will hold before (or while) it is taken: how
//! many regular files and how many bytes of content, so that a progress
//! display can show a total, a percentage and an estimate of the time left.
//!
//! The scan walks the same source paths with the same excludes as
//! [`snapshot()`](crate::snapshot()), through the same exclude filter, so its
//! counts match the snapshot's: files below an excluded directory, over
//! `larger_than`, on another file system with `one_file_system`, or deeper
//! than the format allows are left out of both. It only lists directories
//! and stats entries; nothing is opened for reading. Entries that cannot be
//! listed are skipped silently: the snapshot itself warns about them.
//!
//! Like restic's, the scan is meant to run on a thread beside the snapshot
//! (it keeps no state the snapshot needs), reporting running totals as it
//! goes, and it stops at the next entry once asked to.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::source::{self, ExcludeOptions, Filter, SourceNode};

/// Running totals of a [`scan()`]: the regular files a snapshot of the
/// same sources would store, and the sum of their sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanTotals {
    /// Regular files found so far.
    pub files: u64,
    /// The sizes of those files, added up.
    pub bytes: u64,
}

/// How many files found between two reports within one directory.
const REPORT_EVERY: u64 = 1024;

/// Counts the regular files below `paths` (as [`SnapshotOptions::paths`]
/// gives them: relative ones from the current directory, missing ones left
/// out) that `exclude` does not leave out, calling `report` with the
/// running totals after each directory (and every thousand files within a
/// large one). Returns the final totals, or `None` when `stop` was set
/// before the scan was complete. An error means the excludes themselves
/// are unusable (a pattern file that cannot be read), as the snapshot
/// would report too.
///
/// [`SnapshotOptions::paths`]: crate::SnapshotOptions::paths
pub fn scan(
    paths: &[PathBuf],
    exclude: &ExcludeOptions,
    stop: &AtomicBool,
    mut report: impl FnMut(ScanTotals),
) -> Result<Option<ScanTotals>> {
    let mut sources: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| source::absolute(p).ok())
        .collect();
    sources.sort();
    sources.dedup();
    let filter = Filter::new(exclude, &sources)?;
    let mut scan = Scan {
        filter: &filter,
        stop,
        report: &mut report,
        totals: ScanTotals::default(),
        dirs: Vec::new(),
    };
    if !sources.is_empty() {
        scan.source(&source::build_root(&sources));
    }
    while let Some((dir, depth)) = scan.dirs.pop() {
        if scan.stopped() {
            return Ok(None);
        }
        scan.dir(&dir, depth);
        (scan.report)(scan.totals);
    }
    if scan.stopped() {
        return Ok(None);
    }
    Ok(Some(scan.totals))
}

/// One scan's state: directories still to list, with their depth below
/// their source path, as the snapshot's walker counts it.
struct Scan<'a> {
    filter: &'a Filter,
    stop: &'a AtomicBool,
    report: &'a mut dyn FnMut(ScanTotals),
    totals: ScanTotals,
    dirs: Vec<(PathBuf, u32)>,
}

impl Scan<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The snapshot's root: source paths are counted whatever the excludes
    /// say (as the snapshot stores them), the directories on the way to
    /// them hold nothing of their own.
    fn source(&mut self, node: &SourceNode) {
        match node {
            SourceNode::Real(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    self.entry(path.clone(), &meta, 0);
                }
            }
            SourceNode::Virtual(_, children) => {
                for child in children.values() {
                    self.source(child);
                }
            }
        }
    }

    /// A directory's entries, as the walker lists and filters them.
    fn dir(&mut self, dir: &Path, depth: u32) {
        if depth >= crate::format::MAX_TREE_DEPTH {
            return; // the snapshot stores it empty
        }
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in read.flatten() {
            if self.stopped() {
                return;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let path = entry.path();
            if self.filter.excludes(&path, &meta) {
                continue;
            }
            self.entry(path, &meta, depth + 1);
        }
    }

    /// Counts a regular file, or queues a directory at `depth`.
    fn entry(&mut self, path: PathBuf, meta: &std::fs::Metadata, depth: u32) {
        if meta.is_file() {
            self.totals.files += 1;
            self.totals.bytes += meta.len();
            if self.totals.files.is_multiple_of(REPORT_EVERY) {
                (self.report)(self.totals);
            }
        } else if meta.is_dir() {
            self.dirs.push((path, depth));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, len: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![7u8; len]).unwrap();
    }

    fn scan_all(paths: &[PathBuf], exclude: &ExcludeOptions) -> ScanTotals {
        let mut last = ScanTotals::default();
        let totals = scan(paths, exclude, &AtomicBool::new(false), |t| last = t)
            .unwrap()
            .unwrap();
        assert_eq!(last, totals, "the last report is the final count");
        totals
    }

    #[test]
    fn counts_regular_files_and_their_sizes_below_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        write(&a.join("one"), 10);
        write(&a.join("sub/two"), 20);
        write(&a.join("sub/deeper/three"), 30);
        std::os::unix::fs::symlink("one", a.join("link")).unwrap();
        let b = dir.path().join("b.txt");
        write(&b, 5);
        let totals = scan_all(
            &[a.clone(), b.clone(), a.join("sub"), dir.path().join("gone")],
            &ExcludeOptions::default(),
        );
        assert_eq!(
            totals,
            ScanTotals {
                files: 4,
                bytes: 65
            },
            "links are not files, a source inside another counts once, a missing one not at all"
        );
    }

    #[test]
    fn leaves_out_what_the_excludes_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write(&src.join("keep.db"), 100);
        write(&src.join("x.tmp"), 1);
        write(&src.join("cache/blob"), 1000);
        write(&src.join("big"), 5000);
        write(&src.join("scratch/.nobackup"), 0);
        write(&src.join("scratch/data"), 7);
        let exclude = ExcludeOptions {
            patterns: vec!["*.tmp".into(), "cache/".into()],
            if_present: vec![".nobackup".into()],
            larger_than: Some(4096),
            ..ExcludeOptions::default()
        };
        assert_eq!(
            scan_all(&[src], &exclude),
            ScanTotals {
                files: 1,
                bytes: 100
            }
        );
    }

    /// The scan and the snapshot agree on what a snapshot holds, and a
    /// second snapshot's progress (bytes read plus bytes reused) reaches
    /// the scan's byte total.
    #[test]
    fn agrees_with_the_snapshot_it_stands_beside() {
        use std::sync::Arc;

        use crate::config::InitOptions;
        use crate::ops::snapshot::{Progress, SnapshotOptions, snapshot};
        use crate::repository::{Owner, Repository};

        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for (n, name) in ["a", "b/c", "b/d.tmp", "e/f/g", "e/h", "skip/i"]
            .iter()
            .enumerate()
        {
            write(&src.join(name), 1000 * n + 1);
        }
        write(&src.join("skip/.nobackup"), 0);
        let exclude = ExcludeOptions {
            patterns: vec!["*.tmp".into()],
            if_present: vec![".nobackup".into()],
            ..ExcludeOptions::default()
        };
        let backend = Arc::new(arca_backend::MemoryBackend::new());
        let init = InitOptions {
            kdf: crate::key::TEST_KDF,
            ..InitOptions::default()
        };
        Repository::init(backend.clone(), b"pw", &init, &Owner::default()).unwrap();
        let mut repo = Repository::open(backend, b"pw").unwrap();
        repo.load_index().unwrap();
        let options = SnapshotOptions {
            paths: vec![src.clone()],
            exclude: exclude.clone(),
            ..SnapshotOptions::default()
        };
        let totals = scan_all(&[src], &exclude);
        for _ in 0..2 {
            let progress = Progress::default();
            let outcome = snapshot(&mut repo, &options, &progress).unwrap();
            let summary = outcome.snapshot.summary.unwrap();
            assert_eq!(totals.files, summary.total_files);
            assert_eq!(totals.bytes, summary.total_bytes);
            assert_eq!(totals.files, progress.files.load(Ordering::Relaxed));
            let done = progress.bytes_read.load(Ordering::Relaxed)
                + progress.bytes_reused.load(Ordering::Relaxed);
            assert_eq!(totals.bytes, done);
        }
    }

    #[test]
    fn a_stopped_scan_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("f"), 1);
        let stop = AtomicBool::new(true);
        let result = scan(
            &[dir.path().to_path_buf()],
            &ExcludeOptions::default(),
            &stop,
            |_| {},
        );
        assert_eq!(result.unwrap(), None);
    }
}
