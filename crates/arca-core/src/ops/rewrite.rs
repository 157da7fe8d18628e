//! Rewriting stored snapshots without some of their paths, for data that
//! should never have been backed up (a secret, a huge scratch file).
//!
//! The plan walks each snapshot's trees once, matching every entry's
//! absolute path against the exclude patterns exactly as `snapshot` does
//! (`source::patterns`: gitignore rules rooted at `/`, a directory
//! matched as a directory). A matched entry goes, with everything below
//! it; what is left is the new tree. Only the trees on the way to a removed
//! entry change: they are re-encoded (and held in the plan, a few per
//! removed path), every other subtree keeps its id, so a rewrite stores a
//! handful of tree blobs and no data. What became of a tree at a path is
//! remembered for the whole plan: the many snapshots of one source share
//! most directories, and each (tree, path) is read and decided once. The
//! memory this takes grows with the number of distinct directories.
//!
//! Carrying a plan out writes as a snapshot writes: the new trees of all
//! the replacements go through the sealing workers and the packer into
//! packs (a few, not one per snapshot), then one index file (after the
//! same re-check against a concurrent prune, over every new root), then
//! each new snapshot file, recording the one it replaces as its
//! `original`; only after each, when asked, is the old snapshot file
//! removed. Like a snapshot it
//! takes no lock, and like `forget` it removes nothing but snapshot files:
//! the data of the removed paths stays until a prune finds it unused. An
//! interruption at any step leaves the old snapshot, the new one, or both.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ignore::gitignore::Gitignore;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{SnapshotId, TreeId};
use crate::ops::snapshot::{CHECKPOINT_INTERVAL, Job, index_packs, missing_packs, pipeline};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, Summary};
use crate::tree::{Node, NodeKind, Tree};

/// What to remove from the snapshots: patterns and files of patterns with
/// the meaning `snapshot --exclude` and `--exclude-file` give them.
#[derive(Clone, Debug, Default)]
pub struct RewriteOptions {
    /// Gitignore-style patterns, matched against absolute paths as stored
    /// (`*.tmp` anywhere, `/srv/cache` anchored, `logs/` directories only,
    /// `!keep.log` re-includes).
    pub patterns: Vec<String>,
    /// Files of such patterns, one per line.
    pub pattern_files: Vec<PathBuf>,
}

/// One entry a rewrite removes, with everything below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedPath {
    /// Its absolute path in the snapshot.
    pub path: PathBuf,
    /// What it is.
    pub kind: NodeKind,
    /// Regular files removed with it (itself included).
    pub files: u64,
    /// Directories removed with it (itself included).
    pub dirs: u64,
    /// Total size of those files.
    pub bytes: u64,
}

/// How one snapshot changes.
#[derive(Clone, Debug)]
pub struct SnapshotRewrite {
    /// The snapshot rewritten.
    pub old: SnapshotId,
    /// Its replacement, not yet stored: the same but for `tree`, `summary`
    /// and `original`.
    pub snapshot: Snapshot,
    /// The entries removed, in path order.
    pub removed: Vec<RemovedPath>,
    /// The re-encoded trees (id, plaintext), children before parents.
    trees: Vec<(TreeId, Vec<u8>)>,
}

impl SnapshotRewrite {
    /// Regular files removed in all.
    pub fn files_removed(&self) -> u64 {
        self.removed.iter().map(|r| r.files).sum()
    }

    /// Bytes of the regular files removed in all.
    pub fn bytes_removed(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

/// What a rewrite will do, before anything is written: a value to print
/// for `--dry-run`.
#[derive(Clone, Debug, Default)]
pub struct RewritePlan {
    /// The snapshots that lose paths, oldest first.
    pub changes: Vec<SnapshotRewrite>,
    /// Snapshots in which nothing matches: left as they are.
    pub unchanged: Vec<SnapshotId>,
}

/// One snapshot replaced by a rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The snapshot rewritten.
    pub old: SnapshotId,
    /// Its replacement.
    pub new: SnapshotId,
    /// Whether the old snapshot was removed (`forget`).
    pub forgotten: bool,
}

/// Plans the removal of the paths `options` matches from `snapshots`
/// (each once; `repo`'s index loaded). Every tree of every snapshot is
/// read; one that cannot be read fails the plan with an error naming the
/// snapshot, the tree and its path, and nothing is written.
pub fn plan(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    options: &RewriteOptions,
) -> Result<RewritePlan> {
    let Some(matcher) = crate::source::patterns(&options.patterns, &options.pattern_files)? else {
        return Err(Error::InvalidInput(
            "no exclude pattern given: nothing to remove".into(),
        ));
    };
    let mut seen = HashSet::new();
    let mut chosen: Vec<&(SnapshotId, Snapshot)> = snapshots
        .iter()
        .filter(|(id, _)| seen.insert(*id))
        .collect();
    chosen.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    let mut plan = RewritePlan::default();
    // Nightly snapshots share most directories: each (tree, path) is
    // decided once for all of them.
    let mut known = Known::new();
    for (id, snapshot) in chosen {
        let walked = Walk::new(repo, &matcher, &mut known)
            .run(snapshot.tree)
            .map_err(|e| in_snapshot(e, id))?;
        if walked.removed.is_empty() {
            plan.unchanged.push(*id);
            continue;
        }
        let mut replacement = snapshot.clone();
        replacement.tree = walked.root;
        replacement.summary = Some(walked.summary);
        // The first snapshot of a chain of rewrites stays the original.
        replacement.original = Some(snapshot.original.unwrap_or(*id));
        plan.changes.push(SnapshotRewrite {
            old: *id,
            snapshot: replacement,
            removed: walked.removed,
            trees: walked.trees,
        });
    }
    Ok(plan)
}

/// Stores the new trees of every planned replacement (one run of the
/// packer, one index file), then each replacement's snapshot file, and,
/// with `forget`, after each the snapshot it replaces. `repo`'s index must
/// be loaded. `done` hears of each replacement as it is stored; on an
/// error, those stored before it stay.
pub fn execute(
    repo: &mut Repository,
    plan: &RewritePlan,
    forget: bool,
    done: &mut dyn FnMut(&Rewritten),
) -> Result<Vec<Rewritten>> {
    if plan.changes.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    // Each new tree counts for the first replacement that needs it.
    let mut first: Vec<Vec<&(TreeId, Vec<u8>)>> = Vec::with_capacity(plan.changes.len());
    let mut seen = HashSet::new();
    for change in &plan.changes {
        let new = change
            .trees
            .iter()
            .filter(|(id, _)| !repo.index().usable(BlobKind::Tree, &id.id()) && seen.insert(*id))
            .collect();
        first.push(new);
    }
    let repo_ref: &Repository = repo;
    let ((), packed) = pipeline(repo_ref, 1, CHECKPOINT_INTERVAL, |jobs| {
        for (id, plain) in first.iter().flatten() {
            let job = Job {
                kind: BlobKind::Tree,
                id: id.id(),
                plain: plain.clone(),
            };
            if jobs.send(job).is_err() {
                // The packer stopped; its error says why.
                break;
            }
        }
    });
    let packed = packed?;
    let roots: Vec<TreeId> = plan.changes.iter().map(|c| c.snapshot.tree).collect();
    let indexed = index_packs(repo, &roots, packed, None, "rewrite")?;
    if !indexed.missing.is_empty() {
        return Err(missing_packs(repo, &indexed.missing, "rewrite"));
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut out = Vec::with_capacity(plan.changes.len());
    for (change, trees) in plan.changes.iter().zip(&first) {
        let mut snapshot = change.snapshot.clone();
        if let Some(summary) = &mut snapshot.summary {
            summary.blobs_added = trees.len() as u64;
            summary.bytes_added = trees.iter().map(|(_, plain)| plain.len() as u64).sum();
            summary.bytes_stored = trees
                .iter()
                .filter_map(|(id, _)| repo.index().get(BlobKind::Tree, &id.id()))
                .map(|loc| u64::from(loc.length))
                .sum();
            summary.duration_ms = duration_ms;
        }
        let new = repo.save_snapshot(&snapshot)?;
        if forget {
            repo.remove_snapshot(&change.old)?;
        }
        let rewritten = Rewritten {
            old: change.old,
            new,
            forgotten: forget,
        };
        done(&rewritten);
        out.push(rewritten);
    }
    Ok(out)
}

/// Names the snapshot in an error met while walking it.
fn in_snapshot(e: Error, id: &SnapshotId) -> Error {
    match e {
        Error::Corrupt { object, reason } => Error::Corrupt {
            object: format!("{object} of snapshot {}", id.short()),
            reason: format!("{reason}; nothing was rewritten"),
        },
        other => other,
    }
}

/// One snapshot's walk: the new root, its trees, what went, and the
/// summary of what stays.
struct Walked {
    root: TreeId,
    trees: Vec<(TreeId, Vec<u8>)>,
    removed: Vec<RemovedPath>,
    summary: Summary,
}

/// A tree being walked: its nodes, the next one to look at, the nodes
/// kept so far, whether any node changed, and where the walk stood when
/// it was entered (so its outcome can be remembered).
struct Frame {
    id: TreeId,
    path: PathBuf,
    nodes: Vec<Node>,
    next: usize,
    kept: Vec<Node>,
    changed: bool,
    entered: Mark,
}

/// How far a walk had got: lengths of its lists and its counters.
#[derive(Clone)]
struct Mark {
    removed: usize,
    trees: usize,
    counts: Counts,
}

/// The counters a subtree adds to a snapshot's summary.
#[derive(Clone, Copy, Default)]
struct Counts {
    files: u64,
    bytes: u64,
    dirs_changed: u64,
    dirs_unchanged: u64,
}

impl Counts {
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            files: self.files - earlier.files,
            bytes: self.bytes - earlier.bytes,
            dirs_changed: self.dirs_changed - earlier.dirs_changed,
            dirs_unchanged: self.dirs_unchanged - earlier.dirs_unchanged,
        }
    }

    fn add(&mut self, more: Counts) {
        self.files += more.files;
        self.bytes += more.bytes;
        self.dirs_changed += more.dirs_changed;
        self.dirs_unchanged += more.dirs_unchanged;
    }

    /// The summary of a snapshot holding these: the rewrite as a run
    /// against the original, in which every remaining file is unchanged.
    fn summary(self) -> Summary {
        Summary {
            files_unchanged: self.files,
            total_files: self.files,
            total_bytes: self.bytes,
            dirs_changed: self.dirs_changed,
            dirs_unchanged: self.dirs_unchanged,
            ..Summary::default()
        }
    }
}

/// What became of one subtree at one path: its new id, whether that
/// differs, what it adds to the counters, what went, and its new trees.
struct Outcome {
    id: TreeId,
    changed: bool,
    counts: Counts,
    removed: Vec<RemovedPath>,
    trees: Vec<(TreeId, Vec<u8>)>,
}

/// Outcomes by (tree, path): whether an entry goes depends on nothing
/// else, so a directory shared by many snapshots is read once.
type Known = std::collections::HashMap<(TreeId, PathBuf), Outcome>;

struct Walk<'a> {
    repo: &'a Repository,
    matcher: &'a Gitignore,
    known: &'a mut Known,
    trees: Vec<(TreeId, Vec<u8>)>,
    /// The ids in `trees`.
    tree_ids: HashSet<TreeId>,
    removed: Vec<RemovedPath>,
    counts: Counts,
}

impl<'a> Walk<'a> {
    fn new(repo: &'a Repository, matcher: &'a Gitignore, known: &'a mut Known) -> Walk<'a> {
        Walk {
            repo,
            matcher,
            known,
            trees: Vec::new(),
            tree_ids: HashSet::new(),
            removed: Vec::new(),
            counts: Counts::default(),
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            removed: self.removed.len(),
            trees: self.trees.len(),
            counts: self.counts,
        }
    }

    /// Counts a kept directory node whose subtree changed or not.
    fn count_dir(&mut self, changed: bool) {
        if changed {
            self.counts.dirs_changed += 1;
        } else {
            self.counts.dirs_unchanged += 1;
        }
    }

    /// Takes over a remembered outcome: its counters, removals and trees.
    fn reuse(&mut self, key: &(TreeId, PathBuf)) -> Option<(TreeId, bool)> {
        let outcome = self.known.get(key)?;
        self.counts.add(outcome.counts);
        self.removed.extend(outcome.removed.iter().cloned());
        for (id, bytes) in &outcome.trees {
            if self.tree_ids.insert(*id) {
                self.trees.push((*id, bytes.clone()));
            }
        }
        Some((outcome.id, outcome.changed))
    }

    /// Walks from `root` depth first with its own stack (trees may nest
    /// thousands deep), deciding every node on the way.
    fn run(mut self, root: TreeId) -> Result<Walked> {
        let root_key = (root, PathBuf::from("/"));
        let (id, _) = match self.reuse(&root_key) {
            Some(done) => done,
            None => self.walk(root)?,
        };
        Ok(Walked {
            root: id,
            trees: self.trees,
            removed: self.removed,
            summary: self.counts.summary(),
        })
    }

    fn walk(&mut self, root: TreeId) -> Result<(TreeId, bool)> {
        let mut stack = vec![self.open(root, PathBuf::from("/"))?];
        loop {
            let Some(frame) = stack.last_mut() else {
                return Err(Error::Internal("the rewrite walk ended early".into()));
            };
            let Some(node) = frame.nodes.get(frame.next).cloned() else {
                let Some(frame) = stack.pop() else { continue };
                let (id, changed) = self.finish(frame);
                let Some(parent) = stack.last_mut() else {
                    return Ok((id, changed));
                };
                let Some(mut node) = parent.nodes.get(parent.next).cloned() else {
                    return Err(Error::Internal("lost a directory's node".into()));
                };
                node.subtree = Some(id);
                parent.changed |= changed;
                parent.kept.push(node);
                parent.next += 1;
                self.count_dir(changed);
                continue;
            };
            let path = frame.path.join(OsStr::from_bytes(&node.name));
            let is_dir = node.kind == NodeKind::Dir;
            if self.matcher.matched(&path, is_dir).is_ignore() {
                frame.changed = true;
                frame.next += 1;
                let removed = self.measure(path, &node)?;
                self.removed.push(removed);
                continue;
            }
            match (is_dir, node.subtree) {
                (true, Some(subtree)) => {
                    let key = (subtree, path);
                    if let Some((id, changed)) = self.reuse(&key) {
                        let mut node = node;
                        node.subtree = Some(id);
                        frame.changed |= changed;
                        frame.kept.push(node);
                        frame.next += 1;
                        self.count_dir(changed);
                        continue;
                    }
                    let (_, path) = key;
                    if stack.len() as u32 > crate::format::MAX_TREE_DEPTH {
                        return Err(Error::corrupt(
                            format!("tree {subtree} at {}", path.display()),
                            format!(
                                "directories nest more than {} levels deep",
                                crate::format::MAX_TREE_DEPTH
                            ),
                        ));
                    }
                    // Its node is kept when the subtree's frame is done.
                    let child = self.open(subtree, path)?;
                    stack.push(child);
                }
                _ => {
                    if node.kind == NodeKind::File {
                        self.counts.files += 1;
                        self.counts.bytes += node.size;
                    } else if is_dir {
                        self.counts.dirs_unchanged += 1;
                    }
                    frame.kept.push(node);
                    frame.next += 1;
                }
            }
        }
    }

    /// Reads the tree at `path`.
    fn open(&self, id: TreeId, path: PathBuf) -> Result<Frame> {
        let tree = self
            .repo
            .read_tree(&id)
            .map_err(|e| tree_at(e, id, &path))?;
        Ok(Frame {
            id,
            path,
            nodes: tree.nodes,
            next: 0,
            kept: Vec::new(),
            changed: false,
            entered: self.mark(),
        })
    }

    /// The id of a walked tree, and whether it changed: an unchanged tree
    /// keeps its id, a changed one is re-encoded and kept for storing. The
    /// outcome is remembered for the same tree at the same path.
    fn finish(&mut self, frame: Frame) -> (TreeId, bool) {
        let (id, changed) = if frame.changed {
            // The kept nodes are in the old order: still sorted, so the
            // encoding stays canonical.
            let bytes = Tree { nodes: frame.kept }.encode();
            let id = TreeId(self.repo.key().blob_id(&bytes));
            if self.tree_ids.insert(id) {
                self.trees.push((id, bytes));
            }
            (id, true)
        } else {
            (frame.id, false)
        };
        let entered = frame.entered;
        let outcome = Outcome {
            id,
            changed,
            counts: self.counts.since(entered.counts),
            removed: self.removed[entered.removed..].to_vec(),
            trees: self.trees[entered.trees..].to_vec(),
        };
        self.known.insert((frame.id, frame.path), outcome);
        (id, changed)
    }

    /// What removing the entry at `path` takes away: for a directory,
    /// everything below it.
    fn measure(&self, path: PathBuf, node: &Node) -> Result<RemovedPath> {
        let mut removed = RemovedPath {
            path,
            kind: node.kind,
            files: 0,
            dirs: 0,
            bytes: 0,
        };
        let mut count = |n: &Node| match n.kind {
            NodeKind::File => {
                removed.files += 1;
                removed.bytes += n.size;
            }
            NodeKind::Dir => removed.dirs += 1,
            _ => {}
        };
        count(node);
        let mut counts = (0, 0, 0);
        if let (NodeKind::Dir, Some(subtree)) = (node.kind, node.subtree) {
            crate::ops::ls::walk(self.repo, &subtree, &removed.path, &mut |_, n| {
                match n.kind {
                    NodeKind::File => {
                        counts.0 += 1;
                        counts.2 += n.size;
                    }
                    NodeKind::Dir => counts.1 += 1,
                    _ => {}
                }
                Ok(())
            })
            .map_err(|e| below(e, &removed.path))?;
        }
        removed.files += counts.0;
        removed.dirs += counts.1;
        removed.bytes += counts.2;
        Ok(removed)
    }
}

/// Names the tree that could not be read and its path.
fn tree_at(e: Error, id: TreeId, path: &Path) -> Error {
    match e {
        Error::Corrupt { object, reason } => Error::Corrupt {
            object: format!("tree {id} at {}", path.display()),
            reason: format!("{object}: {reason}"),
        },
        other => other,
    }
}

/// Names the removed directory below which a tree could not be read.
fn below(e: Error, path: &Path) -> Error {
    match e {
        Error::Corrupt { object, reason } => Error::Corrupt {
            object: format!("{object} below {}", path.display()),
            reason,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_needs_a_pattern() {
        let memory = std::sync::Arc::new(arca_backend::MemoryBackend::new());
        let options = crate::config::InitOptions {
            kdf: crate::key::KdfParams {
                memory_kib: 8 * 1024,
                iterations: 1,
                parallelism: 1,
            },
            ..crate::config::InitOptions::default()
        };
        Repository::init(memory.clone(), b"pw", &options, &Default::default()).unwrap();
        let repo = Repository::open(memory, b"pw").unwrap();
        let err = plan(&repo, &[], &RewriteOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no exclude pattern"), "{err}");
    }
}
