//! The crash suite: `snapshot` and `prune` killed with SIGKILL at random
//! moments, round after round, on a changing source. Afterwards the
//! repository checks with every pack read, and every snapshot that
//! completed restores to exactly the files it was taken of (a manifest made
//! when it was taken).
//!
//! CI runs a few rounds; a long soak:
//!
//! ```text
//! ARCA_CRASH_ROUNDS=500 cargo test --release -p arca-cli --test e2e crash -- --nocapture
//! ```
//!
//! `ARCA_CRASH_SEED` repeats a run (the seed is printed).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

/// Relative path → contents of every file below `dir`.
fn manifest(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_below(dir)
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Rewrites part of the source: a few files replaced, one grown, one new.
fn change(src: &Path, round: u64, rng: &mut Rng) {
    for _ in 0..3 {
        let i = rng.below(12);
        let len = (64 << 10) + rng.below(2 << 20) as usize;
        std::fs::write(
            src.join(format!("orders-{i}.db")),
            random_bytes(len, rng.next()),
        )
        .unwrap();
    }
    std::fs::write(
        src.join(format!("trades/day-{round}.csv")),
        format!("{round},ES,4200.25,3\n").repeat(1000 + round as usize),
    )
    .unwrap();
}

/// Runs `args`, killing it with SIGKILL after `delay` unless it ended
/// first; how long it took when it ended by itself, `None` when killed.
fn run_or_kill(env: &Env, args: &[&str], delay: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut child = env
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = started + delay;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(started.elapsed());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long a command takes when left alone, learned from the runs that
/// were not killed (and nudged up by each kill, in case the command grew
/// slower): kills are drawn uniformly from up to 1.5 times that, so about a
/// third of the runs complete and the rest die anywhere in them.
struct Timing(Duration);

impl Timing {
    fn delay(&self, rng: &mut Rng) -> Duration {
        Duration::from_micros(rng.below(self.0.as_micros() as u64 * 3 / 2))
    }

    fn learn(&mut self, outcome: Option<Duration>) -> u64 {
        match outcome {
            Some(took) => {
                self.0 = self.0.max(took);
                0
            }
            None => {
                self.0 = self.0 * 21 / 20;
                1
            }
        }
    }
}

/// A full check, then a restore of every snapshot compared with the files
/// of its round.
fn verify(
    env: &Env,
    src: &Path,
    manifests: &BTreeMap<u64, BTreeMap<String, Vec<u8>>>,
    seed: u64,
) -> usize {
    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let listed = env.json(&["snapshots"]);
    let snapshots = listed.as_array().unwrap();
    assert!(!snapshots.is_empty(), "seed {seed}");
    for snap in snapshots {
        let id = snap["id"].as_str().unwrap();
        let tag = snap["tags"][0].as_str().unwrap();
        let round: u64 = tag.trim_start_matches("round-").parse().unwrap();
        let target = env.path(&format!("restore-{id}"));
        env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        assert!(
            manifest(&restored(&target, src)) == manifests[&round],
            "seed {seed}: snapshot {id} of round {round} does not restore to its files"
        );
        std::fs::remove_dir_all(&target).unwrap();
    }
    snapshots.len()
}

#[test]
fn snapshots_and_prunes_killed_at_random_moments_leave_every_completed_snapshot_restorable() {
    let rounds: u64 = std::env::var("ARCA_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("ARCA_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash suite: {rounds} rounds, ARCA_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let env = Env::with_repo();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("trades")).unwrap();
    change(&src, 0, &mut rng);
    let snapshot = |tag: &str| -> Vec<String> {
        [
            "--no-progress",
            "snapshot",
            "--tag",
            tag,
            src.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let prune = [
        "--no-progress",
        "prune",
        "--max-unused",
        "0%",
        "--keep-marked",
        "0s",
    ];

    // Undisturbed runs give the first estimates of how long each takes.
    let mut manifests = BTreeMap::from([(0, manifest(&src))]);
    let args = snapshot("round-0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut snapshot_time = Timing(run_or_kill(&env, &args, Duration::MAX / 4).unwrap());
    env.ok(&["forget", "--keep-last", "1"]);
    let mut prune_time = Timing(run_or_kill(&env, &prune, Duration::MAX / 4).unwrap());

    let (mut killed, mut pruned, mut restored_total) = (0u64, 0u64, 0usize);
    for round in 1..=rounds {
        change(&src, round, &mut rng);
        // A killed snapshot may still have been saved just before the
        // kill: every round's files are recorded.
        manifests.insert(round, manifest(&src));
        let args = snapshot(&format!("round-{round}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let delay = snapshot_time.delay(&mut rng);
        killed += snapshot_time.learn(run_or_kill(&env, &args, delay));
        // Now and then forget the oldest snapshots and prune, killed too.
        if round % 2 == 0 {
            env.ok(&["forget", "--keep-last", "6"]);
            let delay = prune_time.delay(&mut rng);
            pruned += prune_time.learn(run_or_kill(&env, &prune, delay));
        }
        if round % 25 == 0 {
            restored_total += verify(&env, &src, &manifests, seed);
        }
    }
    restored_total += verify(&env, &src, &manifests, seed);
    eprintln!(
        "crash suite: {killed} of {rounds} snapshots and {pruned} of {} prunes killed; {restored_total} restores compared",
        rounds / 2
    );
}
