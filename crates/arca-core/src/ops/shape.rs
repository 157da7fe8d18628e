//! The shape of a snapshot's trees: how deep they nest and how many paths
//! they expand to.
//!
//! Trees are content-addressed, so a directory can appear under many names
//! and a hostile repository can make a few kilobytes of trees expand to
//! 2^64 paths, or nest them tens of thousands of levels deep. Anything that
//! walks a snapshot path by path first measures it here: iteratively (no
//! recursion to overflow), each distinct tree once (shared subtrees cost
//! nothing more), counting with saturation. A snapshot deeper than
//! [`MAX_TREE_DEPTH`] or larger than [`MAX_SNAPSHOT_ENTRIES`] is refused as
//! damaged before any path is listed, restored or dumped.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::{MAX_SNAPSHOT_ENTRIES, MAX_TREE_DEPTH};
use crate::id::TreeId;
use crate::repository::Repository;
use crate::tree::NodeKind;

/// How a tree expands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Entries below it, counting every path (saturating).
    pub entries: u64,
    /// Levels of directories below it (0: no subdirectory).
    pub depth: u32,
}

/// Measures the tree `root`; an error names it when it nests deeper than
/// [`MAX_TREE_DEPTH`] or expands to more than [`MAX_SNAPSHOT_ENTRIES`]
/// paths. Trees that cannot be read count as empty (their damage is
/// reported by whoever reads them).
pub fn measure(repo: &Repository, root: &TreeId) -> Result<Shape> {
    measure_with(root, &mut |id| repo.read_tree(id))
}

/// Shapes already measured, by tree: several snapshots measured with one
/// cache read each tree they share once.
pub type ShapeCache = HashMap<TreeId, Shape>;

/// [`measure`], remembering every tree's shape in `cache`.
pub fn measure_cached(repo: &Repository, root: &TreeId, cache: &mut ShapeCache) -> Result<Shape> {
    let shape = shape_of(root, &mut |id| repo.read_tree(id), cache)?;
    check_limits(root, shape)?;
    Ok(shape)
}

/// [`measure`] over trees that `read` gives (a repository's, or a test's).
pub fn measure_with(
    root: &TreeId,
    read: &mut dyn FnMut(&TreeId) -> Result<crate::tree::Tree>,
) -> Result<Shape> {
    let shape = shape_of(root, read, &mut HashMap::new())?;
    check_limits(root, shape)?;
    Ok(shape)
}

/// The limits as an error naming the tree.
pub(crate) fn check_limits(root: &TreeId, shape: Shape) -> Result<()> {
    if shape.depth > MAX_TREE_DEPTH {
        return Err(Error::corrupt(
            format!("tree {root}"),
            format!("its directories nest more than {MAX_TREE_DEPTH} levels deep"),
        ));
    }
    if shape.entries > MAX_SNAPSHOT_ENTRIES {
        return Err(Error::corrupt(
            format!("tree {root}"),
            format!(
                "it expands to more than {MAX_SNAPSHOT_ENTRIES} paths (shared subtrees repeated)"
            ),
        ));
    }
    Ok(())
}

/// Depth-first without recursion: a frame per open directory, the
/// subtrees still to visit, and what they added up to so far.
fn shape_of(
    root: &TreeId,
    read: &mut dyn FnMut(&TreeId) -> Result<crate::tree::Tree>,
    memo: &mut ShapeCache,
) -> Result<Shape> {
    if let Some(known) = memo.get(root) {
        return Ok(*known);
    }
    struct Frame {
        id: TreeId,
        pending: Vec<TreeId>,
        entries: u64,
        depth: u32,
    }
    let mut open = |id: TreeId| -> Result<Frame> {
        let (entries, pending) = match read(&id) {
            Ok(tree) => {
                let subtrees = tree
                    .nodes
                    .iter()
                    .filter(|n| n.kind == NodeKind::Dir)
                    .filter_map(|n| n.subtree)
                    .collect();
                (tree.nodes.len() as u64, subtrees)
            }
            Err(e) if e.is_damage() => (0, Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(Frame {
            id,
            pending,
            entries,
            depth: 0,
        })
    };
    let mut stack = vec![open(*root)?];
    loop {
        let top = stack.len() - 1;
        match stack[top].pending.pop() {
            Some(sub) => {
                if let Some(known) = memo.get(&sub).copied() {
                    let frame = &mut stack[top];
                    frame.entries = frame.entries.saturating_add(known.entries);
                    frame.depth = frame.depth.max(known.depth.saturating_add(1));
                } else if stack.iter().any(|f| f.id == sub) {
                    // A tree that contains itself cannot be made (ids are
                    // hashes of contents); as if infinitely deep.
                    return Err(Error::corrupt(format!("tree {sub}"), "it contains itself"));
                } else if stack.len() as u32 > MAX_TREE_DEPTH {
                    return Ok(Shape {
                        entries: 0,
                        depth: MAX_TREE_DEPTH + 1,
                    });
                } else {
                    stack.push(open(sub)?);
                }
            }
            None => {
                let done = stack.pop().expect("a frame");
                let shape = Shape {
                    entries: done.entries,
                    depth: done.depth,
                };
                memo.insert(done.id, shape);
                match stack.last_mut() {
                    Some(parent) => {
                        parent.entries = parent.entries.saturating_add(shape.entries);
                        parent.depth = parent.depth.max(shape.depth.saturating_add(1));
                    }
                    None => return Ok(shape),
                }
            }
        }
    }
}
