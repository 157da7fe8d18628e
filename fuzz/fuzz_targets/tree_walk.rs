//! Tree shapes: any graph of trees (shared subtrees, long chains, wide
//! fans) is measured without recursion and within the format's limits, or
//! refused; never a stack overflow or an endless walk.
#![no_main]
use std::collections::HashMap;

use arca_core::{Id, Node, NodeKind, Tree, TreeId};
use libfuzzer_sys::fuzz_target;

fn dir(name: Vec<u8>, subtree: TreeId) -> Node {
    Node {
        subtree: Some(subtree),
        ..Node::new(&name, NodeKind::Dir)
    }
}

fn id(n: usize) -> TreeId {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
    TreeId(Id(bytes))
}

fuzz_target!(|data: &[u8]| {
    // Tree k refers only to trees made before it (content addressing makes
    // cycles impossible); each byte pair adds a child: (how far back, how
    // many times). A chain repeats the last tree's pattern to reach depth.
    let mut trees: HashMap<TreeId, Tree> = HashMap::new();
    trees.insert(id(0), Tree::default());
    let mut count = 1;
    for chunk in data.chunks(3) {
        let (back, fan, repeat) = (
            usize::from(chunk[0]),
            usize::from(*chunk.get(1).unwrap_or(&1) % 8) + 1,
            usize::from(*chunk.get(2).unwrap_or(&0)) * 16 + 1,
        );
        for _ in 0..repeat.min(4096) {
            let below = id(count - 1 - back % count);
            let nodes = (0..fan).map(|i| dir(vec![b'a' + i as u8], below)).collect();
            trees.insert(id(count), Tree { nodes });
            count += 1;
        }
    }
    let root = id(count - 1);
    let measured = arca_core::raw::measure_tree_with(&root, &mut |t| {
        Ok(trees.get(t).cloned().unwrap_or_default())
    });
    if let Ok(shape) = measured {
        assert!(shape.depth <= arca_core::format::MAX_TREE_DEPTH);
        assert!(shape.entries <= arca_core::format::MAX_SNAPSHOT_ENTRIES);
    }
});
