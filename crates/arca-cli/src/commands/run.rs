//! `arca run`: a profile's nightly routine in one command. Before-hooks,
//! a snapshot of the profile's sources, forget by its policy, prune when
//! due, check, then after-hooks (or on-failure hooks). Each step reuses the
//! engine calls of its own command; the run reports one line per step and
//! exits with the worst step's code, so cron and systemd see one outcome.
//!
//! Everything in the profile is validated before the first hook runs, so a
//! typo never leaves a half-done night behind.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arca_core::ops::forget;
use arca_core::retention::{GroupBy, Policy};
use arca_core::select::SnapshotFilter;
use arca_core::{
    ExcludeOptions, PruneOptions, Repository, SnapshotOptions, SnapshotProgress, Subset,
};
use indicatif::HumanBytes;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::cli::RunArgs;
use crate::config::Config;
use crate::exit::{self, Usage};
use crate::profile::{Loaded, Profile};
use crate::{output, progress, session, steps, units};

/// The profile, checked and turned into the options each step takes.
struct Plan {
    snapshot: SnapshotOptions,
    verify_upload: bool,
    /// `None`: the profile sets no keep_* rule, so forget is skipped.
    policy: Option<(Policy, GroupBy)>,
    prune: PruneOptions,
    prune_every: Option<Duration>,
    read_data: Option<Subset>,
}

/// One step as `--json` shows it; field names are part of the CLI contract.
#[derive(Serialize)]
struct Step {
    step: &'static str,
    status: &'static str,
    exit_code: i32,
    duration_seconds: f64,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

#[derive(Serialize)]
struct RunJson<'a> {
    ok: bool,
    exit_code: i32,
    profile: &'a str,
    steps: &'a [Step],
}

pub fn run(config: &Config, args: RunArgs) -> Result<i32> {
    let Some(loaded) = &config.profile else {
        return Err(
            Usage("run needs a profile: use --profile NAME or --config FILE".into()).into(),
        );
    };
    let mut plan = plan(&loaded.profile, args.time.map(|t| t.0))
        .map_err(|e| Usage(format!("profile {}: {e:#}", loaded.path.display())))?;
    plan.snapshot.scratch_dir = session::scratch_dir(config);
    let mut night = Night {
        config,
        loaded,
        steps: Vec::new(),
        snapshot_id: None,
    };
    let hooks = &loaded.profile.hooks;
    if night.hooks("before", &hooks.before) {
        night.repository_steps(&plan);
    }
    if night.failed() {
        night.hooks("on_failure", &hooks.on_failure);
    } else {
        night.hooks("after", &hooks.after);
    }
    let code = night.exit_code();
    if config.json {
        output::json(&RunJson {
            ok: !night.failed(),
            exit_code: code,
            profile: &loaded.name,
            steps: &night.steps,
        });
    }
    Ok(code)
}

/// Reads the profile into a plan; an error names the setting.
fn plan(p: &Profile, time: Option<arca_core::Time>) -> Result<Plan> {
    let s = &p.snapshot;
    if s.sources.is_empty() {
        anyhow::bail!("[snapshot] sources is empty: name at least one path to back up");
    }
    // Whether the sources exist is the snapshot step's business: a before
    // hook may make one, and a missing one is a warning there (exit 3).
    let snapshot = SnapshotOptions {
        paths: s.sources.clone(),
        hostname: s.host.clone().unwrap_or_else(session::hostname),
        username: session::username(),
        tags: s.tags.clone(),
        description: String::new(),
        time,
        threads: 0,
        parent: None,
        no_parent: false,
        exclude: ExcludeOptions {
            patterns: s.exclude.clone(),
            pattern_files: s.exclude_file.iter().cloned().collect(),
            if_present: Vec::new(),
            larger_than: None,
            one_file_system: s.one_file_system,
        },
        dry_run: false,
        checkpoint_interval: None,
        sqlite: s.sqlite.unwrap_or_default().0,
        // The cache directory, set by `run`.
        scratch_dir: None,
        inconsistent_tags: Vec::new(),
    };
    let pr = &p.prune;
    let prune = PruneOptions {
        max_unused: pr.max_unused.map_or(arca_core::MAX_UNUSED_DEFAULT, |m| m.0),
        keep_marked: pr
            .keep_marked
            .map_or(arca_core::KEEP_MARKED_DEFAULT, |d| d.0),
        instant_delete: false,
    };
    Ok(Plan {
        snapshot,
        verify_upload: s.verify_upload,
        policy: policy(p),
        prune,
        prune_every: pr.every.map(|d| d.0),
        read_data: p.check.read_data_subset.map(|s| s.0),
    })
}

/// The `[forget]` policy, `None` when it has no rule.
fn policy(p: &Profile) -> Option<(Policy, GroupBy)> {
    let f = &p.forget;
    let policy = f.policy();
    let group_by = f.group_by.map_or_else(GroupBy::default, |g| g.0);
    (!policy.is_empty()).then_some((policy, group_by))
}

/// The state of one run: the steps so far.
struct Night<'a> {
    config: &'a Config,
    loaded: &'a Loaded,
    steps: Vec<Step>,
    snapshot_id: Option<String>,
}

impl Night<'_> {
    fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.status == "failed")
    }

    /// The worst step's exit code: 0, then 3 (a partial snapshot), then 1,
    /// then the specific failures 10, 11 and 12.
    fn exit_code(&self) -> i32 {
        let rank = |code: i32| match code {
            exit::SUCCESS => 0,
            exit::PARTIAL => 1,
            exit::NO_REPOSITORY | exit::LOCKED | exit::WRONG_PASSWORD => 3,
            _ => 2,
        };
        self.steps
            .iter()
            .map(|s| s.exit_code)
            .max_by_key(|&c| rank(c))
            .unwrap_or(exit::SUCCESS)
    }

    /// Records a step and reports it on stderr and in the log.
    fn record(&mut self, step: Step, what: String) {
        let line = format!(
            "{} {} ({:.1} s){}",
            step.step,
            step.status,
            step.duration_seconds,
            if what.is_empty() {
                String::new()
            } else {
                format!(": {what}")
            }
        );
        if step.status == "failed" {
            eprintln!("arca: run: {}", output::sanitize(&line));
        } else {
            self.config
                .note(format!("arca: run: {}", output::sanitize(&line)));
        }
        self.config.log(&format!("run: {line}"));
        self.steps.push(step);
    }

    fn ok(&mut self, name: &'static str, started: Instant, code: i32, fields: Value, what: String) {
        let step = Step {
            step: name,
            status: "ok",
            exit_code: code,
            duration_seconds: started.elapsed().as_secs_f64(),
            fields: object(fields),
        };
        self.record(step, what);
    }

    fn fail(&mut self, name: &'static str, started: Instant, error: &anyhow::Error, fields: Value) {
        let text = crate::message(error);
        let code = match exit::for_error(error) {
            c @ (exit::NO_REPOSITORY | exit::LOCKED | exit::WRONG_PASSWORD) => c,
            _ => exit::ERROR,
        };
        let mut fields = object(fields);
        fields.insert("error".into(), Value::String(text.clone()));
        let step = Step {
            step: name,
            status: "failed",
            exit_code: code,
            duration_seconds: started.elapsed().as_secs_f64(),
            fields,
        };
        self.record(step, text);
    }

    fn skip(&mut self, name: &'static str, reason: &str) {
        let step = Step {
            step: name,
            status: "skipped",
            exit_code: exit::SUCCESS,
            duration_seconds: 0.0,
            fields: object(json!({ "reason": reason })),
        };
        self.record(step, reason.to_string());
    }

    /// Snapshot, forget, prune and check on one opened repository.
    fn repository_steps(&mut self, plan: &Plan) {
        let started = Instant::now();
        // Counting the sources for the bar starts before the repository opens.
        let scan = steps::scan(self.config, &plan.snapshot.paths, &plan.snapshot.exclude);
        let mut repo = match session::open(self.config) {
            Ok(repo) => repo,
            Err(e) => {
                self.fail("snapshot", started, &e, json!({}));
                for step in ["forget", "prune", "check"] {
                    self.skip(step, "the repository could not be opened");
                }
                return;
            }
        };
        let Some(paths) = self.snapshot(&mut repo, plan, scan) else {
            self.skip("forget", "no snapshot was saved");
            self.skip("prune", "no snapshot was saved");
            self.check(&mut repo, plan);
            return;
        };
        match self.forget(&repo, plan, &paths) {
            Some(removed) => self.prune(&mut repo, plan, removed),
            None => self.skip("prune", "forget failed"),
        }
        self.check(&mut repo, plan);
    }

    /// Takes the snapshot; returns its host and paths, for forget.
    fn snapshot(
        &mut self,
        repo: &mut Repository,
        plan: &Plan,
        scan: progress::Scan,
    ) -> Option<(String, Vec<String>)> {
        let started = Instant::now();
        let counters = SnapshotProgress::default();
        let options = &plan.snapshot;
        repo.set_verify_uploads(plan.verify_upload);
        let outcome = steps::snapshot(self.config, &counters, scan, || {
            arca_core::snapshot(repo, options, &counters).map_err(anyhow::Error::from)
        });
        let (outcome, unreadable) = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                self.fail("snapshot", started, &e, json!({}));
                return None;
            }
        };
        let s = outcome.snapshot.summary.clone().unwrap_or_default();
        let id = outcome.id.as_ref().map(|id| id.to_hex());
        let short = outcome.id.as_ref().map(|id| id.short()).unwrap_or_default();
        self.snapshot_id.clone_from(&id);
        let code = if unreadable == 0 {
            exit::SUCCESS
        } else {
            exit::PARTIAL
        };
        let what = format!(
            "{short} saved; files {} new, {} changed, {} unchanged; {} added{}",
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            HumanBytes(s.bytes_added),
            if unreadable > 0 {
                format!("; {unreadable} entries could not be read")
            } else {
                String::new()
            }
        );
        let fields = json!({
            "id": id,
            "short_id": short,
            "time": outcome.snapshot.time.to_rfc3339(),
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unchanged": s.files_unchanged,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "bytes_stored": s.bytes_stored,
            "unreadable": unreadable,
        });
        self.ok("snapshot", started, code, fields, what);
        Some((
            outcome.snapshot.hostname.clone(),
            outcome.snapshot.path_strings(),
        ))
    }

    /// Applies the policy to the snapshots of this host and these paths;
    /// returns how many were removed (`None` when forget failed).
    fn forget(
        &mut self,
        repo: &Repository,
        plan: &Plan,
        (host, paths): &(String, Vec<String>),
    ) -> Option<usize> {
        let Some((policy, group_by)) = &plan.policy else {
            self.skip("forget", "the profile sets no keep_* rule");
            return Some(0);
        };
        let started = Instant::now();
        let filter = SnapshotFilter {
            host: Some(host.clone()),
            paths: paths.clone(),
            tags: Vec::new(),
        };
        let now = jiff::Zoned::now();
        let result = forget::plan(repo, policy, *group_by, &filter, &now)
            .map_err(anyhow::Error::from)
            .and_then(|plan| {
                steps::forget(self.config, repo, &plan)?;
                let removed: Vec<String> = plan.removed().iter().map(|id| id.to_hex()).collect();
                Ok((removed, plan.kept()))
            });
        match result {
            Ok((removed, kept)) => {
                let what = format!("removed {} snapshot(s), kept {kept}", removed.len());
                let n = removed.len();
                let fields =
                    json!({ "policy": policy.to_string(), "removed": removed, "kept": kept });
                self.ok("forget", started, exit::SUCCESS, fields, what);
                Some(n)
            }
            Err(e) => {
                self.fail("forget", started, &e, json!({}));
                None
            }
        }
    }

    fn prune(&mut self, repo: &mut Repository, plan: &Plan, removed: usize) {
        if let Some(reason) = self.prune_not_due(plan, removed) {
            self.skip("prune", &reason);
            return;
        }
        let started = Instant::now();
        match steps::prune(self.config, repo, &plan.prune, false) {
            Ok(r) => {
                self.record_prune();
                let what = format!(
                    "freed {}; {} packs deleted, {} marked; repository {}",
                    HumanBytes(r.bytes_freed),
                    r.delete_packs,
                    r.mark_packs,
                    HumanBytes(r.size_after)
                );
                let fields = json!({
                    "bytes_freed": r.bytes_freed,
                    "delete_packs": r.delete_packs,
                    "mark_packs": r.mark_packs,
                    "size_after": r.size_after,
                });
                self.ok("prune", started, exit::SUCCESS, fields, what);
            }
            Err(e) => self.fail("prune", started, &e, json!({})),
        }
    }

    /// Why prune is not due, or `None` when it is: with `[prune] every`,
    /// when the last prune is older than that; without, when forget
    /// removed a snapshot.
    fn prune_not_due(&self, plan: &Plan, removed: usize) -> Option<String> {
        let Some(every) = plan.prune_every else {
            return (removed == 0).then(|| "forget removed no snapshot".to_string());
        };
        let last = self.last_prune()?;
        let age = jiff::Timestamp::now().duration_since(last);
        let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
        (age < every).then(|| {
            format!(
                "last prune {} ago, due every {}",
                units::format_age(age.as_secs()),
                units::format_age(every.as_secs())
            )
        })
    }

    /// The small file recording when this profile last pruned.
    fn state_file(&self) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        Some(dir.join("run").join(format!("{}.toml", self.loaded.name)))
    }

    fn last_prune(&self) -> Option<jiff::Timestamp> {
        #[derive(serde::Deserialize)]
        struct State {
            last_prune: String,
        }
        let text = std::fs::read_to_string(self.state_file()?).ok()?;
        let state: State = toml::from_str(&text).ok()?;
        state.last_prune.parse().ok()
    }

    fn record_prune(&self) {
        let Some(path) = self.state_file() else {
            return;
        };
        let text = format!("last_prune = \"{}\"\n", jiff::Timestamp::now());
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(e) = written {
            self.config.note(format!(
                "arca: warning: cannot record the prune in {}: {e}",
                path.display()
            ));
        }
    }

    fn check(&mut self, repo: &mut Repository, plan: &Plan) {
        let started = Instant::now();
        let report = match steps::check(self.config, repo, plan.read_data) {
            Ok(report) => report,
            Err(e) => return self.fail("check", started, &e, json!({})),
        };
        let fields = json!({
            "errors": report.errors,
            "warnings": report.warnings.len(),
            "snapshots": report.snapshots,
            "packs": report.packs,
            "packs_read": report.packs_read,
            "bytes_read": report.bytes_read,
        });
        let what = format!(
            "{} snapshots, {} packs, {} read",
            report.snapshots, report.packs, report.packs_read
        );
        if report.ok() {
            self.ok("check", started, exit::SUCCESS, fields, what);
            return;
        }
        for e in &report.errors {
            eprintln!(
                "arca: run: check error: {}: {}",
                output::sanitize(&e.object),
                output::sanitize(&e.message)
            );
        }
        let error = anyhow::anyhow!("{} error(s) found; {what}", report.errors.len());
        self.fail("check", started, &error, fields);
    }

    /// Runs hooks in order; stops at the first failure. Returns whether
    /// all succeeded.
    fn hooks(&mut self, kind: &'static str, commands: &[String]) -> bool {
        commands.iter().all(|cmd| self.hook(kind, cmd))
    }

    fn hook(&mut self, kind: &'static str, cmd: &str) -> bool {
        let started = Instant::now();
        let fields = json!({ "hook": kind, "command": cmd });
        match self.spawn_hook(cmd) {
            Ok(()) => {
                self.ok(
                    "hook",
                    started,
                    exit::SUCCESS,
                    fields,
                    format!("{kind} {cmd}"),
                );
                true
            }
            Err(e) => {
                self.fail("hook", started, &e, fields);
                false
            }
        }
    }

    /// `sh -c CMD` with stdin empty and its output on our stderr (stdout
    /// may be carrying the JSON report).
    fn spawn_hook(&self, cmd: &str) -> Result<()> {
        use std::os::fd::AsFd;
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot pass stderr to a hook")?;
        let status = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::inherit())
            .env("ARCA_RESULT", if self.failed() { "failed" } else { "ok" })
            .env("ARCA_EXIT_CODE", self.exit_code().to_string())
            .env(
                "ARCA_SNAPSHOT_ID",
                self.snapshot_id.as_deref().unwrap_or(""),
            )
            .env("ARCA_PROFILE", &self.loaded.name)
            .env("ARCA_REPOSITORY", self.config.repo.as_deref().unwrap_or(""))
            .status()
            .with_context(|| format!("cannot run hook {cmd:?}"))?;
        if status.success() {
            Ok(())
        } else {
            anyhow::bail!("hook {cmd:?} failed ({status})")
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn profile(text: &str) -> Profile {
        Profile::parse(text, Path::new("p.toml")).unwrap()
    }

    #[test]
    fn a_profile_without_sources_or_with_bad_values_is_refused() {
        assert!(plan(&profile(""), None).is_err());
        let base = "[snapshot]\nsources = [\"/srv\"]\n";
        assert!(plan(&profile(base), None).is_ok());
        // Bad values are refused when the profile is read, naming the
        // section and the key.
        for bad in [
            "[forget]\nkeep_within = \"soon\"\n",
            "[prune]\nevery = \"weekly\"\n",
            "[prune]\nmax_unused = \"lots\"\n",
            "[check]\nread_data_subset = \"9/7\"\n",
            "[forget]\ngroup_by = \"colour\"\n",
        ] {
            let text = format!("{base}{bad}");
            let e = Profile::parse(&text, Path::new("p.toml")).err();
            let e = e.map(|e| format!("{e:#}")).unwrap_or_default();
            let section = &bad[..bad.find(']').unwrap() + 1];
            assert!(e.contains(section), "{bad}: {e}");
        }
    }

    #[test]
    fn forget_is_skipped_without_a_keep_rule() {
        let p = profile("[snapshot]\nsources = [\"/srv\"]\n[forget]\ngroup_by = \"host\"\n");
        assert!(plan(&p, None).unwrap().policy.is_none());
        let p = profile("[snapshot]\nsources = [\"/srv\"]\n[forget]\nkeep_daily = 2\n");
        assert!(plan(&p, None).unwrap().policy.is_some());
    }
}
