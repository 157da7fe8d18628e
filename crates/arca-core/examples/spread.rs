//! Stored data bytes of a sequence of trees, as a fresh repository would
//! keep them, for many chunker seeds at once: what the repository size's
//! spread across seeds is made of, without running whole snapshots.
//!
//! Every regular file of each tree (in order) is cut with FastCDC 2020 at
//! the given parameters and seed, new chunks (by BLAKE3 of their bytes) are
//! compressed with zstd at the given level and counted. Trees, index and
//! pack overhead are not counted: they do not depend on the seed, except
//! that the index grows with the number of chunks (reported).
//!
//! ```text
//! cargo run --release -p arca-core --example spread -- \
//!     [--min B] [--avg B] [--max B] [--level 0-3] [--zstd N] [--seeds N] \
//!     [--per-file K] DIR...
//! ```
//!
//! Prints, per seed, the stored data bytes and chunk count; then min,
//! median, max and spread; with `--per-file K`, the K files whose stored
//! bytes vary most across seeds (standard deviation).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use fastcdc::v2020::{FastCDC, Normalization};

struct Args {
    min: usize,
    avg: usize,
    max: usize,
    level: Normalization,
    zstd: i32,
    seeds: u64,
    per_file: usize,
    dirs: Vec<PathBuf>,
}

fn parse() -> Args {
    let mut a = Args {
        min: 512 << 10,
        avg: 1 << 20,
        max: 8 << 20,
        level: Normalization::Level1,
        zstd: 2,
        seeds: 10,
        per_file: 0,
        dirs: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = || {
            it.next()
                .expect("a value")
                .parse::<u64>()
                .expect("a number")
        };
        match arg.as_str() {
            "--min" => a.min = num() as usize,
            "--avg" => a.avg = num() as usize,
            "--max" => a.max = num() as usize,
            "--zstd" => a.zstd = num() as i32,
            "--seeds" => a.seeds = num(),
            "--per-file" => a.per_file = num() as usize,
            "--level" => {
                a.level = match num() {
                    0 => Normalization::Level0,
                    1 => Normalization::Level1,
                    2 => Normalization::Level2,
                    _ => Normalization::Level3,
                }
            }
            _ => a.dirs.push(PathBuf::from(arg)),
        }
    }
    a
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Every regular file below `dir` as (path relative to `dir`, bytes), sorted.
fn read_tree(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                paths.push(e.path());
            }
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let rel = p.strip_prefix(dir)?.to_string_lossy().into_owned();
        out.push((rel, std::fs::read(&p)?));
    }
    Ok(out)
}

fn main() -> Result<()> {
    let a = parse();
    let trees = a
        .dirs
        .iter()
        .map(|d| read_tree(d))
        .collect::<Result<Vec<_>>>()?;
    // A spread of seeds, as keys would give (any u64).
    let seeds: Vec<u64> = (0..a.seeds)
        .map(|i| {
            let h = blake3::hash(&i.to_le_bytes());
            u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
        })
        .collect();
    let mut totals = Vec::new();
    let mut per_file: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (k, &seed) in seeds.iter().enumerate() {
        let mut seen = HashSet::new();
        let (mut stored, mut chunks) = (0u64, 0u64);
        for tree in &trees {
            for (rel, data) in tree {
                let mut file_stored = 0u64;
                let cuts = FastCDC::with_level_and_seed(data, a.min, a.avg, a.max, a.level, seed);
                for c in cuts {
                    let bytes = &data[c.offset..c.offset + c.length];
                    chunks += 1;
                    if seen.insert(*blake3::hash(bytes).as_bytes()) {
                        let z = zstd::bulk::compress(bytes, a.zstd)?;
                        file_stored += z.len().min(bytes.len()) as u64 + 40;
                    }
                }
                stored += file_stored;
                let v = per_file.entry(rel.clone()).or_default();
                v.resize(k + 1, 0);
                v[k] += file_stored;
            }
        }
        println!(
            "seed {seed:016x}: stored {stored} B, {chunks} chunk refs, {} blobs",
            seen.len()
        );
        totals.push(stored);
    }
    let mut s = totals.clone();
    s.sort();
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2] as f64
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) as f64 / 2.0
    };
    println!(
        "min {} median {:.0} max {} spread {:.2} %",
        s[0],
        median,
        s[s.len() - 1],
        100.0 * (s[s.len() - 1] - s[0]) as f64 / median
    );
    if a.per_file > 0 {
        let mut rows: Vec<(f64, f64, String)> = per_file
            .into_iter()
            .map(|(rel, mut v)| {
                v.resize(seeds.len(), 0);
                let n = v.len() as f64;
                let mean = v.iter().sum::<u64>() as f64 / n;
                let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                (var.sqrt(), mean, rel)
            })
            .collect();
        rows.sort_by(|x, y| y.0.total_cmp(&x.0));
        println!("std dev across seeds / mean stored, per file:");
        for (sd, mean, rel) in rows.into_iter().take(a.per_file) {
            println!("  {sd:>10.0} {mean:>10.0}  {rel}");
        }
    }
    Ok(())
}
