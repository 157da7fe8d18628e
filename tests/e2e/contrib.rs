//! The systemd units, crontab and Grafana dashboard under contrib/:
//! `systemd-analyze verify` accepts the units, run against the built
//! binary; the dashboard is well formed, queries only metrics arca writes,
//! and its queries parse (`promtool`).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{Env, random_bytes};

fn contrib(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze verify` checks that ExecStart is executable, so the
/// service is pointed at the binary under test. It exits 0 on unknown keys
/// and unparsable values (it only warns about them), so any output at all
/// counts as a failure.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = crate::servers::find(
        "systemd-analyze",
        &[
            "/usr/bin/systemd-analyze".into(),
            "/bin/systemd-analyze".into(),
        ],
    ) else {
        return;
    };
    let service = contrib("systemd/arca@.service");
    assert!(
        service.contains("ExecStart=/usr/local/bin/arca --profile %i -q run\n"),
        "{service}"
    );
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("arca@.service"),
        service.replace("/usr/local/bin/arca", env!("CARGO_BIN_EXE_arca")),
    )
    .unwrap();
    fs::write(
        dir.path().join("arca@.timer"),
        contrib("systemd/arca@.timer"),
    )
    .unwrap();
    let pg = contrib("systemd/arca-pg-backup@.service");
    assert!(
        pg.contains("ExecStart=/usr/local/bin/arca --profile %i -q pg backup\n"),
        "{pg}"
    );
    fs::write(
        dir.path().join("arca-pg-backup@.service"),
        pg.replace("/usr/local/bin/arca", env!("CARGO_BIN_EXE_arca")),
    )
    .unwrap();
    fs::write(
        dir.path().join("arca-pg-backup@.timer"),
        contrib("systemd/arca-pg-backup@.timer"),
    )
    .unwrap();
    let watch = contrib("systemd/arca-watch@.service");
    assert!(
        watch.contains("ExecStart=/usr/local/bin/arca --profile %i watch\n"),
        "{watch}"
    );
    for line in [
        "Type=simple\n",
        "Restart=on-failure\n",
        "KillSignal=SIGTERM\n",
    ] {
        assert!(watch.contains(line), "{line}: {watch}");
    }
    fs::write(
        dir.path().join("arca-watch@.service"),
        watch.replace("/usr/local/bin/arca", env!("CARGO_BIN_EXE_arca")),
    )
    .unwrap();
    // Instances of the templates, as `systemctl enable arca@nightly.timer`
    // makes them; the timer's verification loads its service as well.
    let out = Command::new(analyze)
        .args([
            "verify",
            "--man=no",
            "arca@nightly.timer",
            "arca@nightly.service",
            "arca-pg-backup@db.timer",
            "arca-pg-backup@db.service",
            "arca-watch@trades.service",
        ])
        .current_dir(dir.path())
        // Warnings only reach stderr at the default level.
        .env_remove("SYSTEMD_LOG_LEVEL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The crontab line runs a command the binary accepts.
#[test]
fn the_crontab_line_names_a_profile_run() {
    let cron = contrib("cron/arca");
    let line = cron
        .lines()
        .find(|l| l.starts_with("0 2 * * * root "))
        .unwrap_or_else(|| panic!("no nightly line in:\n{cron}"));
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("arca.log");
    let line = line.replace("/var/log/arca.log", log.to_str().unwrap());
    let args: Vec<&str> = line.split_whitespace().skip(7).collect();
    assert_eq!(args.last(), Some(&"run"), "{line}");
    // The same flags, with a profile that does not exist: a usage error
    // about the profile, not about the flags.
    let out = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(&args)
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = home.path().join("arca/nightly.toml");
    assert!(
        stderr.contains(&format!("cannot read profile {}", expected.display())),
        "{stderr}"
    );
}

/// Every `arca_*` metric name in `text` (a PromQL expression, or a
/// Prometheus text file's sample lines).
fn metric_names(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("arca_") {
        let starts_a_name = !rest[..at].ends_with(is_name);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        if starts_a_name {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The names of the series a metrics file holds.
fn written(file: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(file).unwrap();
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    metric_names(&samples.join("\n"))
}

/// Runs every command that writes metrics into one file (each PostgreSQL
/// command as it succeeds and as it fails) and returns the metric names
/// written.
fn metrics_arca_writes(env: &Env) -> BTreeSet<String> {
    let file = env.path("arca.prom");
    let flag = file.to_str().unwrap().to_string();
    let with = |args: &[&str]| {
        let mut all = vec!["--metrics-file", &flag];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.ok(&args);
    };
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("trades.db"), random_bytes(100_000, 1)).unwrap();
    let src = src.to_str().unwrap();
    run(&["snapshot", src]);
    // A base backup for the recovery window, with the WAL it starts in
    // (check requires it); forget keeps it, the newest of its group.
    let start = env.path("000000010000000000000002");
    fs::write(&start, random_bytes(8192, 3)).unwrap();
    run(&["pg", "archive-wal", start.to_str().unwrap()]);
    let fake = crate::util::fake_pg_basebackup(env);
    run(&["pg", "backup", "--pg-basebackup", &fake]);
    run(&["check"]);
    run(&["forget", "--keep-last", "1"]);
    run(&["prune", "--keep-marked", "0"]);
    let segment = env.path("000000010000000000000001");
    fs::write(&segment, random_bytes(8192, 2)).unwrap();
    run(&["pg", "archive-wal", segment.to_str().unwrap()]);
    let missing = env.path("gone/000000010000000000000003");
    let failing = with(&["pg", "archive-wal", missing.to_str().unwrap()]);
    let failing: Vec<&str> = failing.iter().map(String::as_str).collect();
    assert_eq!(env.run(&failing).status.code(), Some(1));
    run(&["status"]);
    let db = env.path("orders.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    run(&["watch", "--once", db.to_str().unwrap()]);
    written(&file)
}

/// Each expression with Grafana's template variables replaced by values
/// PromQL accepts: intervals by `5m`, anything else (`$repository`) by a
/// regular expression matching all.
fn substitute(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (name, after) = match tail.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').unwrap();
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                (&tail[..end], &tail[end..])
            }
        };
        assert!(!name.is_empty(), "a lone $ in {expr}");
        out.push_str(if name.contains("interval") {
            "5m"
        } else {
            ".*"
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Issue 20: the Grafana dashboard imports (inputs, unique ids, panels
/// on the grid, every query on the Prometheus input), queries only metrics
/// arca writes, and every query is valid PromQL; every metric arca writes
/// is documented in docs/operations.md.
#[test]
fn the_grafana_dashboard_queries_metrics_arca_writes_in_valid_promql() {
    let dashboard: Value = serde_json::from_str(&contrib("grafana/arca.json")).unwrap();
    let inputs = dashboard["__inputs"].as_array().unwrap();
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let uses_input = |v: &Value| v["datasource"]["uid"] == "${DS_PROMETHEUS}";

    let mut exprs: Vec<String> = Vec::new();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let repository = variables
        .iter()
        .find(|v| v["name"] == "repository")
        .expect("a repository variable");
    assert!(uses_input(repository));
    let query = repository["query"]["query"].as_str().unwrap();
    assert!(query.starts_with("label_values("), "{query}");
    assert!(query.ends_with(", repository)"), "{query}");
    // label_values(METRIC, label) is Grafana's, not PromQL: its metric is.
    exprs.push(query["label_values(".len()..query.find(',').unwrap()].to_string());

    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 7);
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "id {id} twice");
        assert!(
            panel["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{title}"
        );
        assert!(uses_input(panel), "{title}: {}", panel["datasource"]);
        let at = |k: &str| {
            panel["gridPos"][k]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        };
        let (x, y, w, h) = (at("x"), at("y"), at("w"), at("h"));
        assert!(
            w > 0 && h > 0 && x + w <= 24,
            "{title}: {}",
            panel["gridPos"]
        );
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{title} overlaps another panel");
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no target");
        for target in targets {
            assert!(
                target.get("datasource").is_none_or(|_| uses_input(target)),
                "{title}"
            );
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: no expr"));
            assert!(
                expr.contains("$repository"),
                "{title}: {expr} ignores the variable"
            );
            exprs.push(expr.to_string());
        }
    }

    // Every metric queried is one arca writes, found by running the
    // commands; every metric written is documented.
    let env = Env::with_repo();
    let written = metrics_arca_writes(&env);
    let queried: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let unknown: Vec<&String> = queried.difference(&written).collect();
    assert!(
        unknown.is_empty(),
        "not written by arca: {unknown:?}; written: {written:?}"
    );
    let operations =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"))
            .unwrap();
    let undocumented: Vec<&String> = written
        .iter()
        .filter(|m| !operations.contains(&format!("| `{m}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/operations.md: {undocumented:?}"
    );

    // Every expression parses: promtool checks them as recording rules.
    let Some(promtool) = crate::servers::find("promtool", &["/usr/bin/promtool".into()]) else {
        eprintln!("skipped the PromQL syntax check of the dashboard's queries");
        return;
    };
    let mut rules = String::from("groups:\n  - name: arca-dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let expr = substitute(expr);
        assert!(!expr.contains('$'), "{expr}");
        rules.push_str(&format!(
            "      - record: arca_dashboard:query_{i}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    let file = env.path("dashboard-rules.yml");
    fs::write(&file, &rules).unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool rejects a query:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboard_template_variables_are_substituted() {
    assert_eq!(
        substitute("increase(a{r=~\"$repository\"}[$__rate_interval]) + ${x}"),
        "increase(a{r=~\".*\"}[5m]) + .*"
    );
    assert_eq!(
        metric_names("time() - arca_a_b{x=\"arca_no\"} / xarca_c + arca_d:e"),
        ["arca_a_b", "arca_d:e", "arca_no"].map(String::from).into()
    );
}
