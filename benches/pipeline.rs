//! The per-chunk path of `arca snapshot`, stage by stage and end to end:
//! chunk (FastCDC) → id (keyed BLAKE3) → compress (zstd) → encrypt
//! (XChaCha20-Poly1305) → pack.
//!
//! Run with `cargo bench -p arca-core --bench pipeline`. Input is 64 MiB of
//! mixed data: half incompressible, half text-like. Every figure is one
//! core's throughput; the snapshot pipeline runs these stages on all cores.

use std::hint::black_box;

use arca_core::raw::{Chunker, MasterKey, PackWriter, Sealer};
use arca_core::{BlobKind, ChunkerParams};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LEN: usize = 64 << 20;

fn mixed_data() -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let words: [&[u8]; 6] = [
        b"order ",
        b"fill ",
        b"BTC-USD ",
        b"qty=100 ",
        b"px=42017.5 ",
        b"\n",
    ];
    while out.len() < LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / (1 << 20)) % 2 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(words[(x % 6) as usize]);
        }
    }
    out.truncate(LEN);
    out
}

fn chunks(data: &[u8], key: &MasterKey) -> Vec<Vec<u8>> {
    let mut chunker = Chunker::new(data, ChunkerParams::default(), key.chunker_seed());
    let mut out = Vec::new();
    while let Some(c) = chunker.next_chunk().expect("in-memory read") {
        out.push(c.to_vec());
    }
    out
}

fn stages(c: &mut Criterion) {
    let data = mixed_data();
    let key = MasterKey::generate();
    let pieces = chunks(&data, &key);
    let mut group = c.benchmark_group("snapshot-path");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(10);

    group.bench_function("chunk", |b| {
        b.iter(|| {
            let mut chunker = Chunker::new(&data[..], ChunkerParams::default(), key.chunker_seed());
            let mut n = 0;
            while let Some(c) = chunker.next_chunk().expect("in-memory read") {
                n += c.len();
            }
            black_box(n)
        })
    });
    group.bench_function("hash", |b| {
        b.iter(|| {
            pieces
                .iter()
                .map(|p| key.blob_id(p))
                .fold(0u8, |a, id| a ^ id.0[0])
        })
    });
    group.bench_function("compress", |b| {
        let mut compressor = zstd::bulk::Compressor::new(3).expect("zstd level 3");
        let mut out = Vec::with_capacity(LEN + LEN / 8);
        b.iter(|| {
            let mut total = 0;
            for p in &pieces {
                out.clear();
                out.reserve(zstd::zstd_safe::compress_bound(p.len()));
                total += compressor
                    .compress_to_buffer(p, &mut out)
                    .expect("room for the bound");
            }
            black_box(total)
        })
    });
    group.bench_function("encrypt", |b| {
        let mut out = Vec::with_capacity(LEN + LEN / 8);
        b.iter(|| {
            out.clear();
            for p in &pieces {
                key.seal_into(b"bench", p, &mut out);
            }
            black_box(out.len())
        })
    });
    group.bench_function("pack", |b| {
        let mut sealer = Sealer::default();
        let sealed: Vec<(arca_core::Id, u32, u8, Vec<u8>)> = pieces
            .iter()
            .map(|p| {
                let id = key.blob_id(p);
                let mut stored = Vec::new();
                let compression = sealer.seal_into(&key, 3, BlobKind::Data, &id, p, &mut stored);
                (id, p.len() as u32, compression, stored)
            })
            .collect();
        b.iter(|| {
            let mut pack = PackWriter::new(BlobKind::Data, 16 << 20);
            for (id, raw, compression, stored) in &sealed {
                pack.add(*id, *raw, *compression, stored)
                    .expect("in-memory pack");
                if pack.len() >= 16 << 20 {
                    let full =
                        std::mem::replace(&mut pack, PackWriter::new(BlobKind::Data, 16 << 20));
                    black_box(full.finish(&key).expect("in-memory pack").id);
                }
            }
            black_box(pack.finish(&key).expect("in-memory pack").id)
        })
    });
    group.bench_function("compress+seal", |b| {
        let mut sealer = Sealer::default();
        let mut out = Vec::with_capacity(LEN + LEN / 8);
        b.iter(|| {
            out.clear();
            for p in &pieces {
                let id = key.blob_id(p);
                sealer.seal_into(&key, 3, BlobKind::Data, &id, p, &mut out);
            }
            black_box(out.len())
        })
    });
    group.bench_function("chunk+hash+compress+seal+pack", |b| {
        let mut sealer = Sealer::default();
        let mut stored = Vec::new();
        b.iter(|| {
            let mut pack = PackWriter::new(BlobKind::Data, 16 << 20);
            let mut chunker = Chunker::new(&data[..], ChunkerParams::default(), key.chunker_seed());
            while let Some(c) = chunker.next_chunk().expect("in-memory read") {
                let id = key.blob_id(c);
                stored.clear();
                let compression = sealer.seal_into(&key, 3, BlobKind::Data, &id, c, &mut stored);
                pack.add(id, c.len() as u32, compression, &stored)
                    .expect("in-memory pack");
                if pack.len() >= 16 << 20 {
                    let full =
                        std::mem::replace(&mut pack, PackWriter::new(BlobKind::Data, 16 << 20));
                    black_box(full.finish(&key).expect("in-memory pack").id);
                }
            }
            black_box(pack.finish(&key).expect("in-memory pack").id)
        })
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
