//! `--metrics-file`: snapshot, check and forget share one Prometheus text
//! file, each keeping the others' series; a failed run keeps the last
//! success; WAL archive failures are counted across runs; the real
//! `promtool` accepts the file.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::util::*;

/// The value of the one sample of `name` whose labels include `command`
/// (when given); panics when there is none or more than one.
pub(crate) fn sample(text: &str, name: &str, command: Option<&str>) -> f64 {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| command.is_none_or(|c| l.contains(&format!("command=\"{c}\""))))
        .collect();
    assert_eq!(found.len(), 1, "{name} {command:?} in:\n{text}");
    let value = found[0].rsplit(' ').next().unwrap();
    value
        .parse()
        .unwrap_or_else(|e| panic!("{value:?}: {e}\n{text}"))
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn source(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("trades.db"), &random_bytes(2 << 20, 7), 0o644);
    write_file(&src.join("positions.csv"), b"AAPL,100\n", 0o644);
    src
}

/// Runs `promtool check metrics` on the file, when promtool is installed
/// (scripts/test-servers.sh installs it).
pub(crate) fn promtool_accepts(path: &Path) {
    let Some(promtool) = crate::servers::find("promtool", &["/usr/bin/promtool".into()]) else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool rejects {}:\n{}{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(path).unwrap()
    );
}

#[test]
fn metrics_snapshot_check_and_forget_share_one_file() {
    let env = Env::with_repo();
    let src = source(&env);
    let file = env.path("textfile/arca.prom");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let flag = file.to_str().unwrap();
    let started = now();
    env.ok(&["--metrics-file", flag, "snapshot", src.to_str().unwrap()]);
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        sample(&text, "arca_snapshot_bytes_added", None) > 2e6,
        "{text}"
    );
    assert!(sample(&text, "arca_snapshot_bytes_processed", None) >= (2 << 20) as f64);
    assert_eq!(sample(&text, "arca_snapshot_files_processed", None), 2.0);
    assert_eq!(sample(&text, "arca_snapshot_errors", None), 0.0);
    let taken = sample(&text, "arca_snapshot_timestamp_seconds", None);
    assert!((taken - started).abs() < 300.0, "{taken} vs {started}");
    let success = sample(
        &text,
        "arca_last_success_timestamp_seconds",
        Some("snapshot"),
    );
    assert!(
        success >= started - 1.0 && success <= now() + 1.0,
        "{success}"
    );
    assert_eq!(sample(&text, "arca_run_exit_code", Some("snapshot")), 0.0);
    // Every series carries the repository and (for now empty) profile.
    let labels = format!("profile=\"\",repository=\"{}\"", env.repo.display());
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.contains(&labels)),
        "{text}"
    );

    // A second, unchanged snapshot adds nothing; the environment variable
    // names the file as well as the flag.
    let out = env
        .cmd(&["snapshot", src.to_str().unwrap()])
        .env("ARCA_METRICS_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = fs::read_to_string(&file).unwrap();
    // No file data is added again; a directory may be (trees record access
    // times, which the first snapshot's reads can move).
    let added = sample(&text, "arca_snapshot_bytes_added", None);
    assert!(
        added < 4096.0,
        "{added} bytes added by an unchanged snapshot"
    );

    env.ok(&["--metrics-file", flag, "check"]);
    env.ok(&["--metrics-file", flag, "forget", "--keep-last", "1"]);
    let text = fs::read_to_string(&file).unwrap();
    for command in ["snapshot", "check", "forget"] {
        for name in [
            "arca_last_run_timestamp_seconds",
            "arca_last_success_timestamp_seconds",
            "arca_run_duration_seconds",
            "arca_run_exit_code",
        ] {
            sample(&text, name, Some(command));
        }
    }
    // No file data is added again; a directory may be (trees record access
    // times, which the first snapshot's reads can move).
    let added = sample(&text, "arca_snapshot_bytes_added", None);
    assert!(
        added < 4096.0,
        "{added} bytes added by an unchanged snapshot"
    );
    assert_eq!(sample(&text, "arca_check_success", None), 1.0);
    assert_eq!(sample(&text, "arca_check_errors", None), 0.0);
    assert_eq!(sample(&text, "arca_snapshots_removed", None), 1.0);
    assert_eq!(sample(&text, "arca_snapshots_kept", None), 1.0);
    // Nothing but the file is left in its directory (no temp files).
    assert_eq!(fs::read_dir(file.parent().unwrap()).unwrap().count(), 1);
    promtool_accepts(&file);

    env.ok(&[
        "--metrics-file",
        flag,
        "prune",
        "--keep-marked",
        "0",
        "--instant-delete",
    ]);
    let text = fs::read_to_string(&file).unwrap();
    assert!(sample(&text, "arca_repository_size_bytes", None) > 0.0);
    sample(&text, "arca_prune_bytes_freed", None);
    sample(&text, "arca_last_success_timestamp_seconds", Some("prune"));
    promtool_accepts(&file);
}

#[test]
fn metrics_of_a_failed_check_keep_the_last_success() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let src = source(&env);
    env.snapshot(&[&src]);
    let file = env.path("arca.prom");
    let flag = file.to_str().unwrap();
    env.ok(&["--metrics-file", flag, "check", "--read-data"]);
    let before = fs::read_to_string(&file).unwrap();
    let success = sample(
        &before,
        "arca_last_success_timestamp_seconds",
        Some("check"),
    );

    let pack = files_below(&env.repo.join("data"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x10;
    fs::write(&pack, bytes).unwrap();
    // Run times are recorded in seconds with fractions: make them differ.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = env.run(&["--metrics-file", flag, "check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let after = fs::read_to_string(&file).unwrap();
    assert_eq!(
        sample(&after, "arca_last_success_timestamp_seconds", Some("check")),
        success
    );
    assert!(sample(&after, "arca_last_run_timestamp_seconds", Some("check")) > success);
    assert_eq!(sample(&after, "arca_run_exit_code", Some("check")), 1.0);
    assert_eq!(sample(&after, "arca_check_success", None), 0.0);
    assert!(sample(&after, "arca_check_errors", None) >= 1.0, "{after}");
    promtool_accepts(&file);
}

#[test]
fn metrics_that_cannot_be_written_are_a_warning() {
    let env = Env::with_repo();
    let file = env.path("missing-dir/arca.prom");
    let out = env.run(&["--metrics-file", file.to_str().unwrap(), "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("missing-dir"),
        "{stderr}"
    );
    // Commands that only read or list, such as snapshots, write nothing.
    let file = env.path("arca.prom");
    env.ok(&["--metrics-file", file.to_str().unwrap(), "snapshots"]);
    assert!(!file.exists());
}

/// Issue 20: `pg archive-wal` counts its failures across runs (each failed
/// run reads the count in the file and adds one; a success keeps it), and
/// `pg restore-wal` records no run for an absent file.
#[test]
fn metrics_count_wal_archive_failures_across_runs() {
    let env = Env::with_repo();
    let file = env.path("arca.prom");
    let flag = file.to_str().unwrap();
    let segment = "000000010000000000000001";
    let missing = env.path("gone").join(segment);
    let missing = missing.to_str().unwrap();
    let failures = "arca_wal_archive_failures_total";
    for expected in [1.0, 2.0] {
        let out = env.run(&["--metrics-file", flag, "pg", "archive-wal", missing]);
        assert_eq!(out.status.code(), Some(1));
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(sample(&text, failures, None), expected, "{text}");
        assert_eq!(
            sample(&text, "arca_run_exit_code", Some("pg-archive-wal")),
            1.0
        );
        let success = "arca_last_success_timestamp_seconds{command=\"pg-archive-wal\"";
        assert!(!text.contains(success), "{text}");
    }
    let wal = env.path(segment);
    fs::write(&wal, random_bytes(4096, 3)).unwrap();
    let started = now();
    env.ok(&[
        "--metrics-file",
        flag,
        "pg",
        "archive-wal",
        wal.to_str().unwrap(),
    ]);
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        sample(&text, failures, None),
        2.0,
        "a success keeps the count"
    );
    assert!(
        text.contains(&format!("# TYPE {failures} counter\n")),
        "{text}"
    );
    let archived = sample(&text, "arca_wal_last_archived_timestamp_seconds", None);
    assert!(
        archived >= started - 1.0 && archived <= now() + 1.0,
        "{archived}"
    );
    assert_eq!(
        sample(&text, "arca_run_exit_code", Some("pg-archive-wal")),
        0.0
    );
    sample(
        &text,
        "arca_last_success_timestamp_seconds",
        Some("pg-archive-wal"),
    );

    // An absent file is PostgreSQL's normal question: no run recorded.
    let out_path = env.path("restored");
    let target = out_path.to_str().unwrap();
    let absent = env.run(&[
        "--metrics-file",
        flag,
        "pg",
        "restore-wal",
        "000000010000000000000009",
        target,
    ]);
    assert_eq!(absent.status.code(), Some(1));
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    env.ok(&["--metrics-file", flag, "pg", "restore-wal", segment, target]);
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        sample(&text, "arca_run_exit_code", Some("pg-restore-wal")),
        0.0
    );

    // status records the WAL archive, the recovery window and each host's
    // newest snapshot.
    let src = source(&env);
    env.ok(&[
        "snapshot",
        src.to_str().unwrap(),
        "--host",
        "db1",
        "--tag",
        "pg-base",
        "--time",
        "2020-01-01T00:00:00Z",
    ]);
    env.ok(&["--metrics-file", flag, "status"]);
    let text = fs::read_to_string(&file).unwrap();
    let newest = sample(&text, "arca_wal_newest_archived_timestamp_seconds", None);
    assert!(newest >= started - 1.0 && newest <= now() + 1.0, "{newest}");
    let start = sample(&text, "arca_recovery_window_start_timestamp_seconds", None);
    assert_eq!(start, 1_577_836_800.0);
    assert_eq!(
        sample(&text, "arca_recovery_window_end_timestamp_seconds", None),
        newest
    );
    let window = sample(&text, "arca_recovery_window_seconds", None);
    assert_eq!(window, (newest - start).floor(), "{text}");
    assert!(
        text.contains("arca_newest_snapshot_timestamp_seconds{hostname=\"db1\",profile=\"\""),
        "{text}"
    );
    assert_eq!(
        sample(&text, "arca_newest_snapshot_timestamp_seconds", None),
        start
    );
    assert_eq!(sample(&text, "arca_run_exit_code", Some("status")), 0.0);
    assert_eq!(sample(&text, failures, None), 2.0);
    promtool_accepts(&file);
}
