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
/// with its path under `prefix`.
pub fn walk(
    repo: &Repository,
    tree: &TreeId,
    prefix: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    for node in repo.read_tree(tree)?.nodes {
        let path = prefix.join(OsStr::from_bytes(&node.name));
        visit(&path, &node)?;
        if let (NodeKind::Dir, Some(subtree)) = (node.kind, &node.subtree) {
            walk(repo, subtree, &path, visit)?;
        }
    }
    Ok(())
}

/// Lists `path` (absolute, as in the snapshot; `/` for everything) and all
/// entries below it.
pub fn list(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    let mut tree = snapshot.tree;
    let mut at = PathBuf::from("/");
    let names = crate::source::names_of(path);
    for (i, name) in names.iter().enumerate() {
        let node = repo
            .read_tree(&tree)?
            .nodes
            .into_iter()
            .find(|n| n.name == name.as_bytes())
            .ok_or_else(|| Error::NotFound(format!("{} is not in the snapshot", path.display())))?;
        at.push(name);
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(subtree)) => tree = subtree,
            _ if i + 1 == names.len() => return visit(&at, &node),
            _ => {
                return Err(Error::NotFound(format!(
                    "{} is not in the snapshot",
                    path.display()
                )));
            }
        }
        if i + 1 == names.len() {
            visit(&at, &node)?;
        }
    }
    walk(repo, &tree, &at, visit)
}
