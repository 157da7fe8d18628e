//! Listing a snapshot's entries.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind};

/// Calls `visit` for every entry below `tree`, depth first, in name order,
/// with its path under `prefix`. The tree is measured first
/// ([`crate::measure_tree`]): one nesting too deep or expanding to too many
/// paths is refused before anything is visited. The walk keeps its own
/// stack, so no depth can overflow the thread's.
pub fn walk(
    repo: &Repository,
    tree: &TreeId,
    prefix: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    crate::ops::shape::measure(repo, tree)?;
    // Per open directory: its path and its remaining nodes, reversed.
    let mut stack: Vec<(PathBuf, Vec<Node>)> = vec![(prefix.to_path_buf(), reversed(repo, tree)?)];
    while let Some((dir, nodes)) = stack.last_mut() {
        let Some(node) = nodes.pop() else {
            stack.pop();
            continue;
        };
        let path = dir.join(OsStr::from_bytes(&node.name));
        visit(&path, &node)?;
        if let (NodeKind::Dir, Some(subtree)) = (node.kind, &node.subtree) {
            let below = reversed(repo, subtree)?;
            stack.push((path, below));
        }
    }
    Ok(())
}

/// A tree's nodes, last first (popped in name order).
fn reversed(repo: &Repository, tree: &TreeId) -> Result<Vec<Node>> {
    let mut nodes = repo.read_tree(tree)?.nodes;
    nodes.reverse();
    Ok(nodes)
}

/// The node at `path` (absolute, as stored) and its full path.
pub fn find(repo: &Repository, snapshot: &Snapshot, path: &Path) -> Result<(PathBuf, Node)> {
    let names = crate::source::names_of(path);
    let missing = || Error::NotFound(format!("{} is not in the snapshot", path.display()));
    if names.is_empty() {
        return Err(Error::InvalidInput(
            "a path inside the snapshot is needed, not the root".into(),
        ));
    }
    let mut tree = snapshot.tree;
    let mut at = PathBuf::from("/");
    for (i, name) in names.iter().enumerate() {
        let node = repo
            .read_tree(&tree)?
            .nodes
            .into_iter()
            .find(|n| n.name == name.as_bytes())
            .ok_or_else(missing)?;
        at.push(name);
        if i + 1 == names.len() {
            return Ok((at, node));
        }
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(subtree)) => tree = subtree,
            _ => return Err(missing()),
        }
    }
    Err(missing())
}

/// Lists `path` (absolute, as in the snapshot; `/` for everything) and all
/// entries below it.
pub fn list(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    if crate::source::names_of(path).is_empty() {
        return walk(repo, &snapshot.tree, Path::new("/"), visit);
    }
    let (at, node) = find(repo, snapshot, path)?;
    visit(&at, &node)?;
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(subtree)) => walk(repo, &subtree, &at, visit),
        _ => Ok(()),
    }
}
