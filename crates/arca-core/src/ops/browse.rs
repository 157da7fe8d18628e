//! Browsing history: finding paths across snapshots, comparing two
//! snapshots, and reading a stored file back as a stream.
//!
//! Trees are content-addressed, so identical subtrees have identical ids:
//! `diff` skips a subtree whose id is the same on both sides without reading
//! it, and `find` remembers the matches below each tree id it has searched,
//! so the cost follows the number of distinct trees, not snapshots × trees.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};

/// A pattern for [`Finder`]: matched against an entry's name, or against
/// its whole stored path when the pattern contains a `/`.
#[derive(Debug)]
pub struct Pattern {
    matcher: GlobMatcher,
    whole_path: bool,
}

impl Pattern {
    /// Compiles a glob; an invalid one is [`Error::InvalidInput`].
    pub fn new(pattern: &str) -> Result<Pattern> {
        let glob = Glob::new(pattern)
            .map_err(|e| Error::InvalidInput(format!("pattern {pattern:?}: {e}")))?;
        Ok(Pattern {
            matcher: glob.compile_matcher(),
            whole_path: pattern.contains('/'),
        })
    }

    fn matches(&self, path: &Path, name: &[u8]) -> bool {
        if self.whole_path {
            self.matcher.is_match(path)
        } else {
            self.matcher.is_match(OsStr::from_bytes(name))
        }
    }
}

/// Finds entries matching a pattern, snapshot after snapshot, reusing what
/// it found below trees it has already searched.
#[derive(Debug)]
pub struct Finder<'r> {
    repo: &'r Repository,
    pattern: Pattern,
    /// Matches below a tree, as paths relative to it (name-only patterns
    /// only: whole-path matches depend on where the tree sits).
    cache: HashMap<TreeId, Vec<(PathBuf, Node)>>,
    /// Trees measured already (snapshots share most of theirs).
    shapes: crate::ops::shape::ShapeCache,
}

impl<'r> Finder<'r> {
    /// A finder of `pattern` in `repo`'s snapshots.
    pub fn new(repo: &'r Repository, pattern: Pattern) -> Finder<'r> {
        Finder {
            repo,
            pattern,
            cache: HashMap::new(),
            shapes: HashMap::new(),
        }
    }

    /// Every matching entry of the tree `root`, with its absolute path.
    pub fn find(&mut self, root: &TreeId) -> Result<Vec<(PathBuf, Node)>> {
        // Bounded depth and expansion before the recursive search.
        crate::ops::shape::measure_cached(self.repo, root, &mut self.shapes)?;
        self.below(root, Path::new("/"))
    }

    fn below(&mut self, tree: &TreeId, at: &Path) -> Result<Vec<(PathBuf, Node)>> {
        if !self.pattern.whole_path
            && let Some(found) = self.cache.get(tree)
        {
            return Ok(found.iter().map(|(p, n)| (at.join(p), n.clone())).collect());
        }
        let mut found = Vec::new();
        for node in self.repo.read_tree(tree)?.nodes {
            let path = at.join(OsStr::from_bytes(&node.name));
            if let (NodeKind::Dir, Some(subtree)) = (node.kind, &node.subtree) {
                let inner = self.below(subtree, &path)?;
                if self.pattern.matches(&path, &node.name) {
                    found.push((path, node));
                }
                found.extend(inner);
            } else if self.pattern.matches(&path, &node.name) {
                found.push((path, node));
            }
        }
        if !self.pattern.whole_path {
            let relative = found
                .iter()
                .filter_map(|(p, n)| Some((p.strip_prefix(at).ok()?.to_path_buf(), n.clone())))
                .collect();
            self.cache.insert(*tree, relative);
        }
        Ok(found)
    }
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Content differs (or, for symlinks and devices, their target).
    Modified,
    /// Same content, other metadata (mode, owner, times, xattrs).
    Metadata,
    /// A different kind of entry under the same name.
    Type,
}

/// One difference, with the entry's size on each side.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Difference {
    /// How the entry differs.
    pub change: Change,
    /// The entry's absolute path in the snapshots.
    pub path: PathBuf,
    /// Its size in bytes in the first snapshot (0 when absent there).
    pub size_before: u64,
    /// Its size in bytes in the second snapshot (0 when absent there).
    pub size_after: u64,
}

/// Every difference between two trees, in path order.
pub fn diff(repo: &Repository, a: &TreeId, b: &TreeId) -> Result<Vec<Difference>> {
    // Bounded depth and expansion before the recursive comparison.
    crate::ops::shape::measure(repo, a)?;
    crate::ops::shape::measure(repo, b)?;
    let mut out = Vec::new();
    diff_trees(repo, Some(a), Some(b), Path::new("/"), &mut out)?;
    Ok(out)
}

fn diff_trees(
    repo: &Repository,
    a: Option<&TreeId>,
    b: Option<&TreeId>,
    at: &Path,
    out: &mut Vec<Difference>,
) -> Result<()> {
    if a == b {
        return Ok(()); // identical subtrees: nothing below differs
    }
    let load = |t: Option<&TreeId>| -> Result<Vec<Node>> {
        Ok(match t {
            Some(t) => repo.read_tree(t)?.nodes,
            None => Vec::new(),
        })
    };
    let (left, right) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        let order = match (left.get(i), right.get(j)) {
            (Some(l), Some(r)) => l.name.cmp(&r.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                report_all(repo, &left[i], at, Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                report_all(repo, &right[j], at, Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                compare(repo, &left[i], &right[j], at, out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn compare(
    repo: &Repository,
    l: &Node,
    r: &Node,
    at: &Path,
    out: &mut Vec<Difference>,
) -> Result<()> {
    let path = at.join(OsStr::from_bytes(&l.name));
    if l.kind != r.kind {
        out.push(difference(Change::Type, &path, Some(l), Some(r)));
        if l.kind == NodeKind::Dir || r.kind == NodeKind::Dir {
            let sub = |n: &Node| {
                if n.kind == NodeKind::Dir {
                    n.subtree
                } else {
                    None
                }
            };
            diff_trees(repo, sub(l).as_ref(), sub(r).as_ref(), &path, out)?;
        }
        return Ok(());
    }
    let content_differs = l.content != r.content || l.target != r.target || l.rdev != r.rdev;
    let metadata_differs = l.mode != r.mode
        || l.uid != r.uid
        || l.gid != r.gid
        || l.mtime != r.mtime
        || l.xattrs != r.xattrs;
    if l.kind != NodeKind::Dir && content_differs {
        out.push(difference(Change::Modified, &path, Some(l), Some(r)));
    } else if metadata_differs {
        out.push(difference(Change::Metadata, &path, Some(l), Some(r)));
    }
    if l.kind == NodeKind::Dir {
        diff_trees(repo, l.subtree.as_ref(), r.subtree.as_ref(), &path, out)?;
    }
    Ok(())
}

/// Reports an entry and everything below it as added or removed.
fn report_all(
    repo: &Repository,
    node: &Node,
    at: &Path,
    change: Change,
    out: &mut Vec<Difference>,
) -> Result<()> {
    let path = at.join(OsStr::from_bytes(&node.name));
    let (before, after) = match change {
        Change::Removed => (Some(node), None),
        _ => (None, Some(node)),
    };
    out.push(difference(change, &path, before, after));
    if let (NodeKind::Dir, Some(subtree)) = (node.kind, &node.subtree) {
        for child in repo.read_tree(subtree)?.nodes {
            report_all(repo, &child, &path, change, out)?;
        }
    }
    Ok(())
}

fn difference(
    change: Change,
    path: &Path,
    before: Option<&Node>,
    after: Option<&Node>,
) -> Difference {
    Difference {
        change,
        path: path.to_path_buf(),
        size_before: before.map_or(0, |n| n.size),
        size_after: after.map_or(0, |n| n.size),
    }
}

/// Writes a stored file's content to `out`, one chunk at a time (memory
/// stays at one chunk whatever the file's size).
pub fn write_content(repo: &Repository, node: &Node, out: &mut dyn Write) -> Result<()> {
    for blob in &node.content {
        let bytes = repo.read_blob(BlobKind::Data, &blob.id())?;
        out.write_all(&bytes)
            .map_err(|e| Error::target(PathBuf::from("standard output"), e))?;
    }
    Ok(())
}
