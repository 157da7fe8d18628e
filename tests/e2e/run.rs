//! `arca run`: a profile's nightly routine, over fabricated days.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// Writes a profile for `env`'s repository; returns its path.
fn write_profile(env: &Env, name: &str, source: &Path, hooks: &str) -> PathBuf {
    let path = env.path(&format!("{name}.toml"));
    let text = format!(
        "# the test's nightly profile\nrepository = {repo:?}\n\n[snapshot]\nsources = [{source:?}]\nexclude = [\"*.tmp\"]\ntags = [\"nightly\"]\nhost = \"db1\"\n\n[forget]\nkeep_daily = 2\n\n[check]\nread_data_subset = \"1/1\"\n\n[hooks]\n{hooks}",
        repo = env.address(),
        source = source.display().to_string(),
    );
    fs::write(&path, text).unwrap();
    path
}

fn run_json(env: &Env, profile: &Path, day: &str) -> (Option<i32>, Value, String) {
    let out = env
        .cmd(&[
            "--json",
            "--config",
            profile.to_str().unwrap(),
            "run",
            "--time",
            day,
        ])
        // The profile names the repository.
        .env_remove("ARCA_REPOSITORY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}\nstderr: {stderr}"));
    (out.status.code(), json, stderr)
}

/// (step, status) pairs, hooks named by their kind.
fn steps(json: &Value) -> Vec<(String, String)> {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = match s["hook"].as_str() {
                Some(kind) => format!("hook:{kind}"),
                None => s["step"].as_str().unwrap().to_string(),
            };
            (name, s["status"].as_str().unwrap().to_string())
        })
        .collect()
}

fn step<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {json}"))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn four_nights_keep_two_days_and_run_the_hooks() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("positions.csv"), b"AAPL,100\n").unwrap();
    fs::write(source.join("scratch.tmp"), b"left out\n").unwrap();
    let results = env.path("results.txt");
    let hooks = format!(
        "before = [\"date +%N > {dump}\"]\nafter = [\"echo \\\"$ARCA_RESULT $ARCA_SNAPSHOT_ID $ARCA_EXIT_CODE $ARCA_PROFILE\\\" >> {results}\"]\non_failure = [\"echo failure >> {results}\"]\n",
        dump = source.join("dump.sql").display(),
        results = results.display(),
    );
    let profile = write_profile(&env, "nightly", &source, &hooks);
    let log = env.path("arca.log");
    let mut ids = Vec::new();
    for (n, day) in ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
        .iter()
        .enumerate()
    {
        let (code, json, stderr) = run_json(&env, &profile, &format!("{day} 23:30:00"));
        assert_eq!(code, Some(0), "night {n}: {json}\n{stderr}");
        assert_eq!(json["ok"], true);
        assert_eq!(json["exit_code"], 0);
        // Forget removes one snapshot from the third night on, so prune runs.
        let prune = if n >= 2 { "ok" } else { "skipped" };
        assert_eq!(
            steps(&json),
            pairs(&[
                ("hook:before", "ok"),
                ("snapshot", "ok"),
                ("forget", "ok"),
                ("prune", prune),
                ("check", "ok"),
                ("hook:after", "ok"),
            ]),
            "night {n}: {json}"
        );
        let snap = step(&json, "snapshot");
        let id = snap["id"].as_str().unwrap().to_string();
        assert!(
            snap["bytes_added"].as_u64().unwrap() > 0,
            "the dump changes nightly"
        );
        let forget = step(&json, "forget");
        assert_eq!(
            forget["removed"].as_array().unwrap().len(),
            usize::from(n >= 2)
        );
        if n >= 2 {
            // The oldest remaining day goes.
            assert_eq!(forget["removed"][0], ids[n - 2]);
        }
        assert_eq!(step(&json, "check")["errors"], serde_json::json!([]));
        for s in json["steps"].as_array().unwrap() {
            assert!(s["duration_seconds"].as_f64().unwrap() >= 0.0);
        }
        assert!(stderr.contains("arca: run: snapshot ok"), "{stderr}");
        ids.push(id);
    }
    // Two snapshots remain: the last two days, with the dump the hook wrote.
    let list = env.json(&["snapshots"]);
    let kept: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [ids[2].as_str(), ids[3].as_str()]);
    assert_eq!(list[0]["tags"], serde_json::json!(["nightly"]));
    assert_eq!(list[0]["hostname"], "db1");
    let files = env.ok(&["ls", "latest"]);
    assert!(files.contains("dump.sql"), "{files}");
    assert!(!files.contains("scratch.tmp"), "{files}");
    // The after-hook saw each night's result and snapshot.
    let recorded = fs::read_to_string(&results).unwrap();
    let expected: Vec<String> = ids.iter().map(|id| format!("ok {id} 0 nightly")).collect();
    assert_eq!(recorded.lines().collect::<Vec<_>>(), expected);
    // The log file.
    let out = env
        .cmd(&[
            "--config",
            profile.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "run",
        ])
        .env_remove("ARCA_REPOSITORY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("run: snapshot ok"), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with("run: ok, exit code 0"),
        "{text}"
    );
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("20") && first.as_bytes()[10] == b'T',
        "{first}"
    );
}

#[test]
fn a_failing_before_hook_saves_nothing_and_runs_the_failure_hooks() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("positions.csv"), b"AAPL,100\n").unwrap();
    let marker = env.path("failed.txt");
    let hooks = format!(
        "before = [\"echo dump broke >&2; exit 3\", \"touch {never}\"]\nafter = [\"touch {never}\"]\non_failure = [\"echo \\\"$ARCA_RESULT $ARCA_EXIT_CODE\\\" > {marker}\"]\n",
        never = env.path("never").display(),
        marker = marker.display(),
    );
    let profile = write_profile(&env, "broken", &source, &hooks);
    let (code, json, stderr) = run_json(&env, &profile, "2026-11-02 23:30:00");
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["ok"], false);
    assert_eq!(json["exit_code"], 1);
    assert_eq!(
        steps(&json),
        pairs(&[("hook:before", "failed"), ("hook:on_failure", "ok")])
    );
    assert!(stderr.contains("dump broke"), "{stderr}");
    assert!(stderr.contains("arca: run: hook failed"), "{stderr}");
    assert_eq!(fs::read_to_string(&marker).unwrap(), "failed 1\n");
    assert!(!env.path("never").exists());
    assert_eq!(env.json(&["snapshots"]), serde_json::json!([]));
}

#[test]
fn a_failing_after_hook_makes_the_run_fail() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    let profile = write_profile(&env, "late", &source, "after = [\"false\"]\n");
    let (code, json, _) = run_json(&env, &profile, "2026-11-02 23:30:00");
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(step(&json, "snapshot")["status"], "ok");
    assert_eq!(
        json["steps"].as_array().unwrap().last().unwrap()["status"],
        "failed"
    );
}

#[test]
fn an_unknown_key_in_the_profile_is_a_usage_error_naming_the_file() {
    let env = Env::with_repo();
    let profile = env.path("typo.toml");
    fs::write(
        &profile,
        "[snapshot]\nsources = [\"/srv\"]\nexclud = [\"*.tmp\"]\n",
    )
    .unwrap();
    let out = env.run(&["--config", profile.to_str().unwrap(), "run"]);
    let stderr = expect_failure(&out, 2);
    assert!(stderr.contains(profile.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains("line 3") && stderr.contains("exclud"),
        "{stderr}"
    );
    // Every command reads the profile, not only run.
    let out = env.run(&["--config", profile.to_str().unwrap(), "snapshots"]);
    expect_failure(&out, 2);
}

#[test]
fn run_without_a_profile_is_a_usage_error() {
    let env = Env::with_repo();
    let stderr = expect_failure(&env.run(&["run"]), 2);
    assert!(stderr.contains("--profile"), "{stderr}");
}

#[test]
fn a_named_profile_gives_every_command_its_repository() {
    let env = Env::with_repo();
    let dir = env.path("config/arca");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("db1.toml"),
        format!("repository = {:?}\n", env.address()),
    )
    .unwrap();
    let out = env
        .cmd(&["--profile", "db1", "--json", "snapshots"])
        .env_remove("ARCA_REPOSITORY")
        .env("XDG_CONFIG_HOME", env.path("config"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// The unattended setup of docs/operations.md: a profile with a retention
/// policy and a metrics file, run nightly. Each night's run succeeds, the
/// policy keeps the last two days, and the metrics file tells a monitor when
/// the run last succeeded and what its snapshot was, in a form promtool
/// accepts.
#[test]
fn nightly_runs_keep_the_policy_and_leave_metrics_for_monitoring() {
    use crate::metrics::{now, promtool_accepts, sample};

    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("positions.csv"), b"AAPL,100\n").unwrap();
    let metrics = env.path("textfile/arca.prom");
    fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let hooks = format!(
        "before = [\"date +%N > {dump}\"]\n",
        dump = source.join("dump.sql").display()
    );
    let profile = write_profile(&env, "trading", &source, &hooks);
    // metrics_file is a top-level key, so it goes before the first table.
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(
        &profile,
        format!("metrics_file = {:?}\n{text}", metrics.display().to_string()),
    )
    .unwrap();

    let labels = format!("profile=\"trading\",repository=\"{}\"", env.address());
    let mut ids = Vec::new();
    let mut taken = Vec::new();
    for (n, day) in ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
        .iter()
        .enumerate()
    {
        let started = now();
        let (code, json, stderr) = run_json(&env, &profile, &format!("{day} 23:30:00"));
        assert_eq!(code, Some(0), "night {n}: {json}\n{stderr}");
        assert_eq!(json["exit_code"], 0);
        let prune = if n >= 2 { "ok" } else { "skipped" };
        assert_eq!(
            steps(&json),
            pairs(&[
                ("hook:before", "ok"),
                ("snapshot", "ok"),
                ("forget", "ok"),
                ("prune", prune),
                ("check", "ok"),
            ]),
            "night {n}: {json}"
        );
        ids.push(step(&json, "snapshot")["id"].as_str().unwrap().to_string());

        let text = fs::read_to_string(&metrics).unwrap();
        let success = sample(&text, "arca_last_success_timestamp_seconds", Some("run"));
        assert!(
            success >= started - 1.0 && success <= now() + 1.0,
            "night {n}: {success} not within this run\n{text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with(&format!(
                "arca_last_success_timestamp_seconds{{command=\"run\",{labels}}} "
            ))),
            "{text}"
        );
        assert_eq!(sample(&text, "arca_run_exit_code", Some("run")), 0.0);
        // The snapshot series describe this night's snapshot.
        taken.push(sample(&text, "arca_snapshot_timestamp_seconds", None));
        assert_eq!(sample(&text, "arca_snapshot_errors", None), 0.0);
        assert_eq!(sample(&text, "arca_snapshot_files_processed", None), 2.0);
        assert!(sample(&text, "arca_snapshot_bytes_added", None) > 0.0);
        promtool_accepts(&metrics);
    }
    // The recorded times are the fabricated nights, a day apart.
    let gaps: Vec<f64> = taken.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [86400.0; 3], "{taken:?}");
    // The policy kept the last two nights.
    let kept: Vec<String> = env
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, ids[2..]);
}
