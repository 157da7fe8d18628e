//! The systemd units and crontab under contrib/: `systemd-analyze verify`
//! accepts the units, run against the built binary.

use std::fs;
use std::path::Path;
use std::process::Command;

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
    // Instances of the templates, as `systemctl enable arca@nightly.timer`
    // makes them; the timer's verification loads its service as well.
    let out = Command::new(analyze)
        .args([
            "verify",
            "--man=no",
            "arca@nightly.timer",
            "arca@nightly.service",
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
