//! Tree (directory) encoding and decoding, the metadata path of snapshot,
//! ls, diff and restore.
//!
//! Run with `cargo bench -p arca-core --bench tree`. The directory holds
//! 1,000 files of four chunks each, with typical metadata.

use std::hint::black_box;

use arca_core::{BlobId, Id, Node, NodeKind, Timestamp, Tree};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn directory(files: u64) -> Tree {
    let nodes = (0..files)
        .map(|i| Node {
            name: format!("orders-{i:06}.parquet").into_bytes(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            user: "trader".into(),
            group: "trader".into(),
            mtime: Timestamp::new(1_760_000_000 + i as i64, 123_456_789),
            atime: Timestamp::new(1_760_000_100 + i as i64, 0),
            ctime: Timestamp::new(1_760_000_000 + i as i64, 123_456_789),
            size: 3 << 20,
            inode: 1_000_000 + i,
            device: 2049,
            links: 1,
            target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
            content: (0..4u64)
                .map(|k| BlobId(Id::of_stored(&(i * 4 + k).to_le_bytes())))
                .collect(),
            subtree: None,
        })
        .collect();
    Tree { nodes }
}

fn tree(c: &mut Criterion) {
    let tree = directory(1000);
    let encoded = tree.encode();
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(tree.nodes.len() as u64));
    group.bench_function("encode", |b| b.iter(|| black_box(tree.encode().len())));
    group.bench_function("decode", |b| {
        b.iter(|| {
            Tree::decode(&encoded, "tree bench")
                .expect("valid tree")
                .nodes
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, tree);
criterion_main!(benches);
