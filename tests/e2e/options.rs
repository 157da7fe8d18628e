//! Every invalid option value is a usage error: exit code 2, one line on
//! stderr naming the option as the user wrote it (the flag, or the profile
//! file and its key), nothing on stdout, and nothing created or changed.
//! One table covers every option that takes a value, from a flag, the
//! environment or a profile; a second shows that good values of each kind
//! are accepted, so the first cannot pass by refusing everything.
//!
//! Each case runs in its own copy of one prepared scratch directory (an
//! initialised repository holding one snapshot, a source, a second
//! repository), so a case that wrongly goes ahead cannot disturb the next.
//! Arguments, environment, profile text and expected names may use these
//! placeholders: `{dir}` (the copy), `{repo}`, `{src}`, `{target}` (not
//! there yet), `{fresh}` (a repository path not there yet), `{other}` (the
//! second repository), `{profile}` (the case's profile file).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::util::*;

/// One command line.
struct Case {
    args: &'static [&'static str],
    /// Extra environment, after the Env's own (so it may override it).
    env: &'static [(&'static str, &'static str)],
    /// Written to `{profile}` when set (pass `--config {profile}` in args).
    profile: Option<&'static str>,
    /// What the error line must contain (unused for good values).
    names: &'static [&'static str],
}

/// A harmless command that loads the case's profile.
const SNAPSHOTS: &[&str] = &["--config", "{profile}", "snapshots"];

/// A profile `run` can use, with `$extra` top-level keys or sections, and a
/// before hook that leaves `{dir}/hook-ran` if it ever runs.
macro_rules! run_profile {
    ($extra:literal) => {
        concat!(
            "repository = \"{repo}\"\n",
            $extra,
            "\n[snapshot]\nsources = [\"{src}\"]\n",
            "[hooks]\nbefore = [\"touch {dir}/hook-ran\"]\n"
        )
    };
}

macro_rules! case {
    ($args:expr, $name:expr) => {
        Case {
            args: $args,
            env: &[],
            profile: None,
            names: &[$name],
        }
    };
    ($args:expr, env $env:expr, $name:expr) => {
        Case {
            args: $args,
            env: $env,
            profile: None,
            names: &[$name],
        }
    };
    (profile $text:expr, $key:expr) => {
        Case {
            args: SNAPSHOTS,
            env: &[],
            profile: Some($text),
            names: &["{profile}", $key],
        }
    };
}

fn invalid() -> Vec<Case> {
    vec![
        // Global options, from flags and from the environment.
        case!(&["--retry-lock", "soon", "snapshots"], "--retry-lock"),
        // `m` is months in a retention span and so ambiguous in a DURATION.
        case!(&["--retry-lock", "10m", "snapshots"], "--retry-lock"),
        case!(&["status", "--max-age", "1h30m"], "--max-age"),
        case!(&["--connections", "0", "snapshots"], "--connections"),
        case!(&["--connections", "1000", "snapshots"], "--connections"),
        case!(&["--connections", "x", "snapshots"], "--connections"),
        case!(
            &["snapshots"],
            env & [("ARCA_CONNECTIONS", "0")],
            "--connections"
        ),
        case!(&["--profile", "a/b", "snapshots"], "--profile"),
        case!(&["-r", "rest:http://h/x", "snapshots"], "--repo"),
        case!(&["-r", "", "snapshots"], "--repo"),
        case!(
            &["snapshots"],
            env & [("ARCA_REPOSITORY", "b2:bucket")],
            "--repo"
        ),
        // init: the repository must not come to exist.
        case!(
            &["-r", "{fresh}", "init", "--compression", "23"],
            "--compression"
        ),
        case!(
            &["-r", "{fresh}", "init", "--compression", "-1"],
            "--compression"
        ),
        case!(
            &["-r", "{fresh}", "init", "--compression", "x"],
            "--compression"
        ),
        case!(
            &["-r", "{fresh}", "init", "--pack-size", "512KiB"],
            "--pack-size"
        ),
        case!(
            &["-r", "{fresh}", "init", "--pack-size", "2GiB"],
            "--pack-size"
        ),
        case!(
            &["-r", "{fresh}", "init", "--pack-size", "lots"],
            "--pack-size"
        ),
        // snapshot
        case!(&["snapshot", "{src}", "--time", "yesterday-ish"], "--time"),
        case!(
            &["snapshot", "{src}", "--exclude-larger-than", "lots"],
            "--exclude-larger-than"
        ),
        case!(
            &["snapshot", "--stdin", "--stdin-name", "a/b"],
            "--stdin-name"
        ),
        case!(&["snapshot", "--stdin", "--stdin-name", ""], "--stdin-name"),
        // The gitignore builder refuses a range running backwards.
        case!(&["snapshot", "{src}", "--exclude", "[z-a]"], "--exclude"),
        // restore (--as-of stands in for SNAP, so none is given with it)
        case!(
            &["restore", "--target", "{target}", "--as-of", "nonsense"],
            "--as-of"
        ),
        case!(
            &[
                "restore",
                "latest",
                "--target",
                "{target}",
                "--overwrite",
                "sometimes"
            ],
            "--overwrite"
        ),
        case!(
            &[
                "restore",
                "latest",
                "--target",
                "{target}",
                "--include",
                "[z-a]"
            ],
            "--include"
        ),
        // check
        case!(
            &["check", "--read-data-subset", "0/5"],
            "--read-data-subset"
        ),
        case!(
            &["check", "--read-data-subset", "9/7"],
            "--read-data-subset"
        ),
        case!(
            &["check", "--read-data-subset", "101%"],
            "--read-data-subset"
        ),
        case!(
            &["check", "--read-data-subset", "lots"],
            "--read-data-subset"
        ),
        // forget
        case!(&["forget", "--keep-daily", "x"], "--keep-daily"),
        case!(&["forget", "--keep-daily", "-2"], "--keep-daily"),
        case!(&["forget", "--keep-last", "1.5"], "--keep-last"),
        case!(&["forget", "--keep-within", "soon"], "--keep-within"),
        case!(
            &["forget", "--keep-within-daily", "5x"],
            "--keep-within-daily"
        ),
        case!(&["forget", "--keep-tag", "a,,b"], "--keep-tag"),
        case!(
            &["forget", "--keep-last", "1", "--group-by", "colour"],
            "--group-by"
        ),
        // prune
        case!(&["prune", "--max-unused", "150%"], "--max-unused"),
        case!(&["prune", "--max-unused", "lots"], "--max-unused"),
        case!(&["prune", "--keep-marked", "soon"], "--keep-marked"),
        // status, run, copy
        case!(&["status", "--max-age", "soon"], "--max-age"),
        case!(&["status", "--max-wal-age", "10m"], "--max-wal-age"),
        Case {
            args: &["--config", "{profile}", "run", "--time", "nonsense"],
            env: &[],
            profile: Some(run_profile!("")),
            names: &["--time"],
        },
        case!(&["copy", "latest", "--to", ""], "--to"),
        case!(&["copy", "latest", "--to", "rest:http://h/x"], "--to"),
        // Profiles: the line names the file and the key.
        case!(profile "connections = 0\n", "connections"),
        case!(profile "connections = 1000\n", "connections"),
        case!(profile "[prune]\nevery = \"weekly\"\n", "every"),
        case!(profile "[prune]\nmax_unused = \"lots\"\n", "max_unused"),
        case!(profile "[prune]\nkeep_marked = \"x\"\n", "keep_marked"),
        case!(profile "[check]\nread_data_subset = \"9/7\"\n", "read_data_subset"),
        case!(profile "[forget]\nkeep_within = \"soon\"\n", "keep_within"),
        case!(profile "[forget]\nkeep_daily = -3\n", "keep_daily"),
        case!(profile "[forget]\ngroup_by = \"colour\"\n", "group_by"),
        case!(profile "[forget]\nkeep_tags = [\"a,,b\"]\n", "keep_tags"),
        // A bad profile stops `run` before any hook: no {dir}/hook-ran.
        Case {
            args: &["--config", "{profile}", "run"],
            env: &[],
            profile: Some(run_profile!("\n[prune]\nevery = \"weekly\"\n")),
            names: &["{profile}", "every"],
        },
    ]
}

fn valid() -> Vec<Case> {
    let good = |args| Case {
        args,
        env: &[],
        profile: None,
        names: &[],
    };
    vec![
        // durations
        good(&["--retry-lock", "30s", "snapshots"]),
        good(&["--retry-lock", "1min30s", "snapshots"]),
        good(&["status", "--max-age", "26h"]),
        good(&["prune", "--keep-marked", "48h", "--dry-run"]),
        // sizes
        good(&[
            "-r",
            "{fresh}",
            "init",
            "--pack-size",
            "8MiB",
            "--compression",
            "22",
        ]),
        good(&["snapshot", "{src}", "--exclude-larger-than", "2GiB"]),
        // subsets and percentages
        good(&["check", "--read-data-subset", "1/5"]),
        good(&["check", "--read-data-subset", "10%"]),
        good(&["prune", "--max-unused", "10%", "--dry-run"]),
        // counts
        good(&["--connections", "4", "snapshots"]),
        good(&[
            "forget",
            "--keep-daily",
            "7",
            "--keep-last",
            "-1",
            "--dry-run",
        ]),
        // spans, tags and groupings of a policy
        good(&["forget", "--keep-within", "1y2m3d4h", "--dry-run"]),
        good(&["forget", "--keep-within-daily", "7d", "--dry-run"]),
        good(&[
            "forget",
            "--keep-tag",
            "a,b",
            "--group-by",
            "host,tags",
            "--dry-run",
        ]),
        // times
        good(&["snapshot", "{src}", "--time", "2026-11-02 23:30:00"]),
        good(&[
            "restore",
            "--target",
            "{target}",
            "--as-of",
            "2100-01-01T00:00:00Z",
        ]),
        // repository addresses
        good(&["-r", "local:{repo}", "snapshots"]),
        good(&["copy", "latest", "--to", "local:{other}"]),
        // names, globs and modes
        good(&["snapshot", "{src}", "--exclude", "*.tmp"]),
        good(&["snapshot", "--stdin", "--stdin-name", "dump.sql"]),
        good(&[
            "restore",
            "latest",
            "--target",
            "{target}",
            "--overwrite",
            "never",
        ]),
        good(&[
            "restore",
            "latest",
            "--target",
            "{target}",
            "--include",
            "*.txt",
        ]),
        Case {
            env: &[("ARCA_CONNECTIONS", "4")],
            ..good(&["snapshots"])
        },
        Case {
            profile: Some(
                "connections = 4\n\n[forget]\nkeep_daily = 7\nkeep_monthly = -1\n\
                 keep_within = \"2d\"\nkeep_tags = [\"month-end\"]\ngroup_by = \"host,paths\"\n\n\
                 [prune]\nmax_unused = \"10%\"\nkeep_marked = \"48h\"\nevery = \"7d\"\n\n\
                 [check]\nread_data_subset = \"5%\"\n",
            ),
            ..good(SNAPSHOTS)
        },
        Case {
            profile: Some(run_profile!("")),
            ..good(&[
                "--config",
                "{profile}",
                "run",
                "--time",
                "2026-11-02 23:30:00",
            ])
        },
    ]
}

/// The prepared scratch directory every case starts from.
fn template() -> Env {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("positions.csv"), b"AAPL,100\n").unwrap();
    fs::write(src.join("scratch.tmp"), b"left out\n").unwrap();
    env.snapshot(&[&src]);
    let out = env
        .cmd(&["init"])
        .env("ARCA_REPOSITORY", env.path("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "second repository: {out:?}");
    env
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Every entry below `dir` with its size and modification time.
fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                stack.push(path);
                out.insert(name + "/", (0, 0, 0));
            } else {
                out.insert(name, (meta.len(), meta.mtime(), meta.mtime_nsec()));
            }
        }
    }
    out
}

/// What changed between two fingerprints, for a report.
fn changes(
    before: &BTreeMap<String, (u64, i64, i64)>,
    after: &BTreeMap<String, (u64, i64, i64)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, stat) in after {
        match before.get(name) {
            None => out.push(format!("created {name}")),
            Some(old) if old != stat => out.push(format!("changed {name}")),
            Some(_) => {}
        }
    }
    out.extend(
        before
            .keys()
            .filter(|n| !after.contains_key(*n))
            .map(|n| format!("removed {n}")),
    );
    out
}

/// One case's copy of the template.
struct Scratch {
    env: Env,
}

impl Scratch {
    /// A copy of `template`, with the case's profile written.
    fn new(template: &Env, case: &Case) -> Scratch {
        let env = Env::new();
        copy_tree(template.dir.path(), env.dir.path());
        let scratch = Scratch { env };
        if let Some(text) = case.profile {
            fs::write(scratch.env.path("profile.toml"), scratch.fill(text)).unwrap();
        }
        scratch
    }

    fn fill(&self, text: &str) -> String {
        let p = |name: &str| self.env.path(name).display().to_string();
        text.replace("{dir}", &self.env.dir.path().display().to_string())
            .replace("{repo}", &p("repo"))
            .replace("{src}", &p("src"))
            .replace("{target}", &p("target"))
            .replace("{fresh}", &p("fresh"))
            .replace("{other}", &p("other"))
            .replace("{profile}", &p("profile.toml"))
    }

    fn run(&self, case: &Case) -> std::process::Output {
        let args: Vec<String> = case.args.iter().map(|a| self.fill(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.env.cmd(&args);
        // copy's destination password, so no case waits for a prompt.
        cmd.env("ARCA_TO_PASSWORD", PASSWORD);
        for (key, value) in case.env {
            cmd.env(key, self.fill(value));
        }
        cmd.output().unwrap()
    }
}

fn describe(case: &Case) -> String {
    let env: Vec<String> = case
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v:?} "))
        .collect();
    let profile = case
        .profile
        .map(|t| format!(" (profile {:?})", t.replace('\n', "\\n")))
        .unwrap_or_default();
    format!("{}arca {:?}{profile}", env.concat(), case.args)
}

/// Why a refused value's outcome breaks the contract; empty when it keeps it.
fn usage_problems(scratch: &Scratch, case: &Case) -> Vec<String> {
    let before = fingerprint(scratch.env.dir.path());
    let out = scratch.run(case);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, not 2", out.status.code()));
    }
    let lines: Vec<&str> = stderr.trim().lines().collect();
    if lines.len() != 1 {
        problems.push(format!("{} lines on stderr, not 1", lines.len()));
    }
    for name in case.names.iter().map(|n| scratch.fill(n)) {
        if !lines.first().is_some_and(|l| l.contains(&name)) {
            problems.push(format!("the first line does not name {name}"));
        }
    }
    if stderr.contains("panicked") {
        problems.push("a panic".to_string());
    }
    if !stdout.is_empty() {
        problems.push(format!("stdout {:?}", stdout.trim_end()));
    }
    problems.extend(changes(&before, &fingerprint(scratch.env.dir.path())));
    if !problems.is_empty() {
        problems.push(format!("stderr: {:?}", stderr.trim_end()));
    }
    problems
}

/// Runs every case, then fails once with every broken one listed.
fn check_all(cases: &[Case], check: impl Fn(&Scratch, &Case) -> Vec<String>) {
    let template = template();
    let mut failures = Vec::new();
    for case in cases {
        let problems = check(&Scratch::new(&template, case), case);
        if !problems.is_empty() {
            failures.push(format!(
                "{}\n    {}",
                describe(case),
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_invalid_option_value_exits_2_with_one_line_naming_the_option() {
    check_all(&invalid(), usage_problems);
}

#[test]
fn valid_values_of_every_kind_are_accepted() {
    check_all(&valid(), |scratch, case| {
        let out = scratch.run(case);
        if out.status.code() == Some(0) {
            return Vec::new();
        }
        vec![format!(
            "exit code {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        )]
    });
}
