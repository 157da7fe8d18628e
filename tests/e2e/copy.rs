//! `arca copy`: an offsite copy under another password that checks clean,
//! restores the same tree, is not repeated, and remembers what it stored.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::util::*;

const OFFSITE_PASSWORD: &str = "a different offsite password";

/// A second repository next to the Env's, with its own password.
struct Offsite {
    repo: PathBuf,
    password_file: PathBuf,
}

impl Offsite {
    fn new(env: &Env, name: &str) -> Offsite {
        let offsite = Offsite {
            repo: env.path(name),
            password_file: env.path(&format!("{name}.password")),
        };
        fs::write(&offsite.password_file, format!("{OFFSITE_PASSWORD}\n")).unwrap();
        offsite
    }

    fn init(&self, env: &Env) {
        self.ok(env, &["init"]);
    }

    /// Runs arca against this repository.
    fn run(&self, env: &Env, args: &[&str]) -> Output {
        env.cmd(args)
            .env("ARCA_REPOSITORY", &self.repo)
            .env("ARCA_PASSWORD", OFFSITE_PASSWORD)
            .output()
            .unwrap()
    }

    fn ok(&self, env: &Env, args: &[&str]) -> String {
        let out = self.run(env, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "arca {args:?} on the offsite repository failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Copies from the Env's repository into this one.
    fn copy(&self, env: &Env, extra: &[&str]) -> Output {
        let mut args = vec!["copy", "--to", self.repo.to_str().unwrap()];
        args.extend_from_slice(extra);
        env.cmd(&args)
            .env("ARCA_TO_PASSWORD_FILE", &self.password_file)
            .output()
            .unwrap()
    }

    fn copy_ok(&self, env: &Env, extra: &[&str]) -> String {
        let out = self.copy(env, extra);
        assert_eq!(
            out.status.code(),
            Some(0),
            "copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn copy_json(&self, env: &Env, extra: &[&str]) -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.copy_ok(env, &args)).unwrap()
    }

    /// Every file below `data/`.
    fn data_files(&self) -> BTreeSet<PathBuf> {
        files_below(&self.repo.join("data")).into_iter().collect()
    }
}

fn make_source(root: &Path) {
    fs::create_dir_all(root.join("db/archive")).unwrap();
    write_file(
        &root.join("db/positions.db"),
        &random_bytes(3 << 20, 11),
        0o600,
    );
    write_file(
        &root.join("db/archive/2026-11.db"),
        &random_bytes(2 << 20, 12),
        0o640,
    );
    write_file(
        &root.join("db/archive/copy.db"),
        &random_bytes(2 << 20, 12),
        0o640,
    );
    write_file(&root.join("config.toml"), b"venue = \"X\"\n", 0o644);
    write_file(&root.join("empty"), b"", 0o644);
    std::os::unix::fs::symlink("db/positions.db", root.join("current")).unwrap();
}

#[test]
fn copy_offsite_checks_restores_and_is_not_repeated() {
    let env = Env::with_repo();
    let source = env.path("source");
    make_source(&source);
    let snap = env.snapshot(&[&source]);
    let offsite = Offsite::new(&env, "offsite");
    offsite.init(&env);

    let out = offsite.copy_ok(&env, &[]);
    let line = format!("copied snapshot {} → ", snap["short_id"].as_str().unwrap());
    assert!(out.contains(&line), "{out}");

    // Another key: the offsite repository stands alone.
    offsite.ok(&env, &["check", "--read-data"]);
    let target = env.path("restored");
    offsite.ok(
        &env,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&source, &restored(&target, &source));

    let list: Value = serde_json::from_str(&offsite.ok(&env, &["--json", "snapshots"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let copied = &list[0];
    assert_eq!(copied["copied_from"]["snapshot"], snap["id"]);
    let source_repo = copied["copied_from"]["repository"].as_str().unwrap();
    assert_eq!(source_repo.len(), 64);
    for field in ["time", "paths", "hostname", "username", "summary"] {
        assert_eq!(copied[field], snap[field], "{field}");
    }
    assert_ne!(copied["tree"], snap["tree"], "trees are re-identified");
    assert!(env.json(&["snapshots"])[0]["copied_from"].is_null());
    // The map of what was stored lives in the cache, named by both ids.
    let maps = files_below(&env.path("cache/copy"));
    assert_eq!(maps.len(), 1);
    let name = maps[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with(&format!("{source_repo}-")), "{name}");

    let before = offsite.data_files();
    let again = offsite.copy_ok(&env, &[]);
    let destination = copied["short_id"].as_str().unwrap();
    assert!(
        again.contains(&format!(
            "snapshot {} already in {} as {destination}",
            snap["short_id"].as_str().unwrap(),
            offsite.repo.display()
        )),
        "{again}"
    );
    let report = offsite.copy_json(&env, &[]);
    assert_eq!(report["copied"].as_array().unwrap().len(), 0);
    assert_eq!(report["skipped"][0]["source"], snap["id"]);
    assert_eq!(report["skipped"][0]["destination"], copied["id"]);
    assert_eq!(report["snapshots_skipped"], 1);
    assert_eq!(report["blobs_stored"], 0);
    assert_eq!(offsite.data_files(), before, "nothing new under data/");
    assert_eq!(
        offsite.json_snapshots(&env).len(),
        1,
        "still one snapshot offsite"
    );
}

impl Offsite {
    fn json_snapshots(&self, env: &Env) -> Vec<Value> {
        let text = self.ok(env, &["--json", "snapshots"]);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

#[test]
fn a_later_copy_reads_only_what_changed_unless_the_cache_is_off() {
    let env = Env::with_repo();
    let source = env.path("source");
    make_source(&source);
    env.snapshot(&[&source]);
    let cached = Offsite::new(&env, "cached");
    let uncached = Offsite::new(&env, "uncached");
    cached.init(&env);
    uncached.init(&env);
    cached.copy_ok(&env, &[]);
    uncached.copy_ok(&env, &["--no-cache"]);

    // One small file changes; 7 MiB of data stay as they were.
    fs::write(source.join("config.toml"), b"venue = \"Y\"\n").unwrap();
    let second = env.snapshot(&[&source]);
    let with_map = cached.copy_json(&env, &["latest"]);
    let without = uncached.copy_json(&env, &["--no-cache", "latest"]);
    for report in [&with_map, &without] {
        assert_eq!(report["copied"][0]["source"], second["id"]);
        assert_eq!(report["snapshots_copied"], 1);
    }
    let read = |r: &Value| r["bytes_read"].as_u64().unwrap();
    assert!(
        read(&with_map) < 1 << 20,
        "read {} bytes with the map",
        read(&with_map)
    );
    assert!(read(&without) > 4 << 20, "read {} bytes", read(&without));
    assert!(with_map["blobs_remembered"].as_u64().unwrap() > 0);
    assert_eq!(without["blobs_remembered"], 0);
    // Either way only the changed file's blob and its trees are new.
    assert_eq!(with_map["blobs_stored"], without["blobs_stored"]);
    for offsite in [&cached, &uncached] {
        let list = offsite.json_snapshots(&env);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["parent"], list[0]["id"], "the parent's copy");
        offsite.ok(&env, &["check", "--read-data"]);
    }
}

#[test]
fn dry_run_and_filters_copy_nothing() {
    let env = Env::with_repo();
    let source = env.path("source");
    make_source(&source);
    let first = env.json(&["snapshot", source.to_str().unwrap(), "--tag", "nightly"]);
    env.json(&["snapshot", source.to_str().unwrap(), "--host", "other"]);
    let offsite = Offsite::new(&env, "offsite");
    offsite.init(&env);

    let plan = offsite.copy_json(&env, &["--dry-run", "--tag", "nightly"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["copied"].as_array().unwrap().len(), 1);
    assert_eq!(plan["copied"][0]["source"], first["id"]);
    assert!(plan["copied"][0]["destination"].is_null());
    let text = offsite.copy_ok(&env, &["--dry-run"]);
    assert!(text.contains("would copy snapshot"), "{text}");
    assert!(offsite.json_snapshots(&env).is_empty());
    assert!(offsite.data_files().is_empty());

    let report = offsite.copy_json(&env, &["--host", "other"]);
    assert_eq!(report["snapshots_copied"], 1);
    let list = offsite.json_snapshots(&env);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["hostname"], "other");
}

#[test]
fn a_missing_destination_or_a_wrong_password_fails_with_its_exit_code() {
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir(&source).unwrap();
    write_file(&source.join("f"), b"data", 0o644);
    env.snapshot(&[&source]);

    let missing = Offsite::new(&env, "missing");
    let err = expect_failure(&missing.copy(&env, &[]), 10);
    assert!(err.contains("destination repository"), "{err}");
    assert!(err.contains(&missing.repo.display().to_string()), "{err}");
    assert!(!missing.repo.exists(), "nothing was created");

    let offsite = Offsite::new(&env, "offsite");
    offsite.init(&env);
    fs::write(&offsite.password_file, "wrong\n").unwrap();
    let err = expect_failure(&offsite.copy(&env, &[]), 12);
    assert!(err.contains("destination repository"), "{err}");

    // The source's password is still the source's.
    fs::write(&offsite.password_file, format!("{OFFSITE_PASSWORD}\n")).unwrap();
    let out = env
        .cmd(&["copy", "--to", offsite.repo.to_str().unwrap()])
        .env("ARCA_PASSWORD", "wrong")
        .env("ARCA_TO_PASSWORD_FILE", &offsite.password_file)
        .output()
        .unwrap();
    let err = expect_failure(&out, 12);
    assert!(err.contains("source repository"), "{err}");
}
