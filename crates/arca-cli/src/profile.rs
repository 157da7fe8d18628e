//! Profiles: one TOML file holding what a nightly routine needs (where the
//! repository is, what to back up, what to keep, what to verify, what to run
//! around it), chosen with `--profile NAME` or `--config FILE`. Every field
//! is optional; command-line flags and the environment win over the file.
//! Unknown keys are errors, so a typo never silently drops a setting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arca_core::retention::Policy;
use serde::Deserialize;

use crate::units::{
    Address, Connections, Count, Duration, GroupBy, Interval, Percent, ProfileName, Span,
    SqliteMode, Subset, Tag, TagList,
};

/// A profile file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub repository: Option<Address>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub connections: Option<Connections>,
    pub metrics_file: Option<PathBuf>,
    #[serde(default)]
    pub snapshot: SnapshotSection,
    #[serde(default)]
    pub forget: ForgetSection,
    #[serde(default)]
    pub prune: PruneSection,
    #[serde(default)]
    pub check: CheckSection,
    #[serde(default)]
    pub hooks: HooksSection,
    #[serde(default)]
    pub watch: WatchSection,
}

/// `[snapshot]`: what `run` backs up.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSection {
    #[serde(default)]
    pub sources: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub exclude_file: Option<PathBuf>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub one_file_system: bool,
    /// How SQLite databases are read (`snapshot --sqlite`).
    pub sqlite: Option<SqliteMode>,
    /// Read every object back after writing it (`snapshot --verify-upload`).
    #[serde(default)]
    pub verify_upload: bool,
}

/// `[forget]`: the retention policy `run` applies (counts: -1 is unlimited).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetSection {
    pub keep_last: Option<Count>,
    pub keep_hourly: Option<Count>,
    pub keep_daily: Option<Count>,
    pub keep_weekly: Option<Count>,
    pub keep_monthly: Option<Count>,
    pub keep_yearly: Option<Count>,
    pub keep_within: Option<Span>,
    #[serde(default)]
    pub keep_tags: Vec<TagList>,
    pub group_by: Option<GroupBy>,
}

/// `[prune]`: how and how often `run` prunes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSection {
    pub max_unused: Option<Percent>,
    pub keep_marked: Option<Duration>,
    /// Prune when the last prune is older than this; unset: whenever forget
    /// removed a snapshot.
    pub every: Option<Duration>,
}

/// `[check]`: what `run` verifies beyond the structure.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSection {
    pub read_data_subset: Option<Subset>,
}

/// `[hooks]`: shell commands run around `run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub on_failure: Vec<String>,
}

/// `[watch]`: what `watch` protects, how often, and what it keeps
/// (counts: -1 is unlimited). The command line wins over every key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSection {
    #[serde(default)]
    pub databases: Vec<PathBuf>,
    pub every: Option<Interval>,
    /// Tags besides `watch`, which every watch snapshot has.
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub host: Option<String>,
    pub sqlite: Option<SqliteMode>,
    pub keep_last: Option<Count>,
    pub keep_hourly: Option<Count>,
    pub keep_daily: Option<Count>,
    pub keep_weekly: Option<Count>,
    pub keep_monthly: Option<Count>,
    pub keep_yearly: Option<Count>,
    pub keep_within: Option<Span>,
    #[serde(default)]
    pub keep_tags: Vec<TagList>,
}

/// The retention policy of a section's keep_* rules.
fn keep_policy(counts: [Option<Count>; 6], within: Option<Span>, tags: &[TagList]) -> Policy {
    let [last, hourly, daily, weekly, monthly, yearly] = counts.map(|c| c.map(|c| c.0));
    Policy {
        last,
        hourly,
        daily,
        weekly,
        monthly,
        yearly,
        within: within.map(|s| s.0),
        tags: tags.iter().map(|t| t.0.clone()).collect(),
        ..Policy::default()
    }
}

/// The policy of a section with the keep_* keys (`[forget]`, `[watch]`):
/// one list of them, where serde's `flatten` would lose
/// `deny_unknown_fields`.
macro_rules! section_policy {
    ($section:expr) => {{
        let s = $section;
        keep_policy(
            [
                s.keep_last,
                s.keep_hourly,
                s.keep_daily,
                s.keep_weekly,
                s.keep_monthly,
                s.keep_yearly,
            ],
            s.keep_within,
            &s.keep_tags,
        )
    }};
}

impl ForgetSection {
    /// Its keep_* rules as a policy (empty when it sets none).
    pub fn policy(&self) -> Policy {
        section_policy!(self)
    }
}

impl WatchSection {
    /// Its keep_* rules as a policy (empty when it sets none).
    pub fn policy(&self) -> Policy {
        section_policy!(self)
    }
}

/// A loaded profile with the name `run` knows it by.
#[derive(Debug)]
pub struct Loaded {
    /// `--profile NAME`'s NAME, or the stem of `--config FILE`.
    pub name: String,
    pub path: PathBuf,
    pub profile: Profile,
}

impl Profile {
    /// Parses profile text; errors name `path`, the line and the key.
    pub fn parse(text: &str, path: &Path) -> Result<Profile> {
        toml::from_str(text).map_err(|e| {
            let before = e.span().and_then(|s| text.get(..s.start));
            let line = before
                .map(|before| format!(", line {}", before.matches('\n').count() + 1))
                .unwrap_or_default();
            let key = before
                .and_then(|before| key_at(text, before.len()))
                .unwrap_or_default();
            let message = e.message().trim_end().replace('\n', " ");
            anyhow::anyhow!("profile {}{line}: {key}{message}", path.display())
        })
    }

    /// Reads and parses the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        Profile::parse(&text, path)
    }
}

/// The setting written on the line holding byte `at`, as `[section] key: `
/// (empty when that line sets no key), so an error names what to fix.
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let (key, _) = text[start..end].split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| format!("{l} "))
        .unwrap_or_default();
    Some(format!("{section}{key}: "))
}

/// Loads the profile named by `--profile NAME` or `--config FILE`, if any.
pub fn select(name: Option<&ProfileName>, file: Option<&Path>) -> Result<Option<Loaded>> {
    let (name, path) = match (name, file) {
        (_, Some(file)) => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "profile".to_string());
            (stem, file.to_path_buf())
        }
        (Some(ProfileName(name)), None) => {
            let dir = config_dir(|v| std::env::var_os(v)).ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot find profile {name}: neither XDG_CONFIG_HOME nor HOME is set"
                )
            })?;
            (name.to_string(), dir.join(format!("{name}.toml")))
        }
        (None, None) => return Ok(None),
    };
    let profile = Profile::load(&path)?;
    Ok(Some(Loaded {
        name,
        path,
        profile,
    }))
}

/// Where named profiles live: `$XDG_CONFIG_HOME/arca`, else `~/.config/arca`.
fn config_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(xdg) = set("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("arca"));
    }
    set("HOME").map(|home| home.join(".config").join("arca"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
repository = "/srv/backup/arca"
password_file = "/etc/arca/password"
connections = 4
metrics_file = "/var/lib/node_exporter/arca.prom"

[snapshot]
sources = ["/var/lib/trades", "/etc/trading"]
exclude = ["*.tmp"]
tags = ["nightly"]
host = "db1"
one_file_system = true

[forget]
keep_daily = 7
keep_weekly = 4
keep_monthly = -1
keep_within = "2d"
keep_tags = ["month-end"]
group_by = "host,paths"

[prune]
max_unused = "10%"
keep_marked = "48h"
every = "7d"

[check]
read_data_subset = "5%"

[hooks]
before = ["pg_dump trades > /var/lib/trades/dump.sql"]
after = ["echo done"]
on_failure = ["logger arca failed"]

[watch]
databases = ["/var/lib/trades/orders.db"]
every = "30s"
tags = ["orders"]
sqlite = "always"
keep_within = "24h"
keep_hourly = 168
keep_daily = 30
"#;

    #[test]
    fn a_complete_profile_parses() {
        let p = Profile::parse(GOOD, Path::new("nightly.toml")).unwrap();
        assert_eq!(
            p.repository.map(|a| a.0).as_deref(),
            Some("/srv/backup/arca")
        );
        assert_eq!(p.connections, Some(Connections(4)));
        assert_eq!(p.snapshot.sources.len(), 2);
        assert!(p.snapshot.one_file_system);
        assert_eq!(p.forget.keep_daily, Some(Count(7)));
        assert_eq!(p.forget.keep_monthly, Some(Count(-1)));
        assert_eq!(p.prune.every.map(|d| d.to_string()).as_deref(), Some("1w"));
        assert_eq!(
            p.check.read_data_subset.map(|s| s.0),
            Some(arca_core::Subset::Percent(5.0))
        );
        assert_eq!(p.hooks.on_failure, ["logger arca failed"]);
        assert!(p.metrics_file.is_some());
        assert_eq!(p.watch.databases.len(), 1);
        assert_eq!(p.watch.every.map(|d| d.to_string()).as_deref(), Some("30s"));
        assert_eq!(p.watch.keep_hourly, Some(Count(168)));
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../docs/profile-example.toml");
        let p = Profile::parse(text, Path::new("profile-example.toml")).unwrap();
        assert_eq!(p.snapshot.sources.len(), 3);
        assert_eq!(p.forget.keep_yearly, Some(Count(-1)));
        assert_eq!(p.hooks.before.len(), 1);
        assert_eq!(p.watch.databases.len(), 2);
        assert_eq!(p.watch.keep_daily, Some(Count(30)));
    }

    #[test]
    fn an_empty_profile_is_valid() {
        let p = Profile::parse("", Path::new("empty.toml")).unwrap();
        assert!(p.repository.is_none() && p.snapshot.sources.is_empty());
    }

    #[test]
    fn an_unknown_key_names_the_file_the_line_and_the_key() {
        let text = "[snapshot]\nsources = [\"/a\"]\nexclud = [\"*.tmp\"]\n";
        let e = Profile::parse(text, Path::new("/etc/arca/nightly.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("profile /etc/arca/nightly.toml, line 3: "),
            "{e}"
        );
        assert!(e.contains("exclud"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn a_bad_value_names_the_file_the_line_and_the_setting() {
        let text = "repository = \"/r\"\n[prune]\nmax_unused = \"5%\"\nevery = \"weekly\"\n";
        let e = Profile::parse(text, Path::new("/etc/arca/p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("profile /etc/arca/p.toml, line 4: [prune] every: "),
            "{e}"
        );
        assert!(e.contains("weekly") && e.lines().count() == 1, "{e}");
        for bad in [
            "connections = 0\n",
            "[forget]\nkeep_daily = -3\n",
            "[forget]\nkeep_tags = [\"a,,b\"]\n",
            "[check]\nread_data_subset = \"9/7\"\n",
            "[watch]\nevery = \"0\"\n",
            "[watch]\ndatabase = [\"/a.db\"]\n",
        ] {
            assert!(Profile::parse(bad, Path::new("p.toml")).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let e = Profile::parse("[forget]\nkeep_daily = \"seven\"\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml, line 2"), "{e}");
    }

    #[test]
    fn named_profiles_live_in_the_config_directory() {
        let from = |vars: &[(&str, &str)]| {
            config_dir(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into()))
        };
        assert_eq!(
            from(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            Some("/x/arca".into())
        );
        assert_eq!(
            from(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")]),
            Some("/h/.config/arca".into())
        );
        assert_eq!(from(&[]), None);
    }
}
