//! The in-memory index: building it from index files (insert, then sort)
//! and looking blobs up, at 1 M and 10 M blobs, with the memory it takes.
//!
//! Run with `cargo bench -p arca-core --bench index`. Before timing, each
//! size prints its bytes per blob twice: as the index counts its own
//! allocations, and as the process's resident set grew while building it.

use std::hint::black_box;

use arca_core::raw::{Index, PackEntry, PackInfo};
use arca_core::{BlobKind, Id, PackId};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Blobs per pack: a 16 MiB pack of ~4 KiB chunks (small files).
const PER_PACK: usize = 4096;

/// `n` distinct, uniformly spread ids in packs of `PER_PACK`.
fn packs(n: usize) -> Vec<(PackInfo, Vec<PackEntry>)> {
    let mut out = Vec::with_capacity(n / PER_PACK + 1);
    let mut i = 0u64;
    while (i as usize) < n {
        let count = PER_PACK.min(n - i as usize);
        let blobs = (0..count as u64)
            .map(|k| {
                let id = Id::of_stored(&(i + k).to_le_bytes());
                PackEntry(0, id, (k * 4096) as u32, 4136, 4096, 1)
            })
            .collect();
        let info = PackInfo {
            id: PackId(Id::of_stored(&(u64::MAX - i).to_le_bytes())),
            kind: BlobKind::Data,
            size: (count * 4136) as u64 + 1024,
            marked: false,
        };
        out.push((info, blobs));
        i += count as u64;
    }
    out
}

fn build(packs: &[(PackInfo, Vec<PackEntry>)]) -> Index {
    let mut index = Index::default();
    for (info, blobs) in packs {
        index.add_pack(*info, blobs);
    }
    index.finish();
    index
}

/// Resident set size of this process in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn index(c: &mut Criterion) {
    let mut group = c.benchmark_group("index");
    group.sample_size(10);
    for n in [1_000_000usize, 10_000_000] {
        let input = packs(n);
        let before = rss();
        let index = build(&input);
        let grown = rss().saturating_sub(before);
        eprintln!(
            "index of {n} blobs: {:.1} bytes a blob allocated, {:.1} bytes a blob resident",
            index.memory_bytes() as f64 / n as f64,
            grown as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("insert", n), &input, |b, input| {
            b.iter(|| black_box(build(input).len()))
        });
        // Lookups of every tenth stored blob and as many absent ones.
        let probes: Vec<Id> = (0..n as u64 / 10)
            .flat_map(|k| {
                [
                    Id::of_stored(&(k * 10).to_le_bytes()),
                    Id::of_stored(&(u64::MAX / 2 + k).to_le_bytes()),
                ]
            })
            .collect();
        group.throughput(Throughput::Elements(probes.len() as u64));
        group.bench_with_input(BenchmarkId::new("lookup", n), &probes, |b, probes| {
            b.iter(|| {
                probes
                    .iter()
                    .filter(|id| index.contains(BlobKind::Data, id))
                    .count()
            })
        });
        drop(index);
    }
    group.finish();
}

criterion_group!(benches, index);
criterion_main!(benches);
