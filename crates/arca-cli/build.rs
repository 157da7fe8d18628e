//! Records what `arca version` reports: the commit the binary was built
//! from (when built from a git checkout) and the enabled features.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ARCA_COMMIT");
    // Rebuilt when HEAD moves: its file, the branch it names, packed refs.
    // Only files that exist: cargo takes a missing one for a changed one
    // and would rebuild every time.
    let mut watched: Vec<String> = ["HEAD", "packed-refs"]
        .iter()
        .filter_map(|name| git(&["rev-parse", "--git-path", name]))
        .collect();
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        watched.push(path);
    }
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("ARCA_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let features: Vec<&str> = [("s3", "CARGO_FEATURE_S3"), ("sftp", "CARGO_FEATURE_SFTP")]
        .into_iter()
        .filter(|(_, var)| std::env::var_os(var).is_some())
        .map(|(name, _)| name)
        .collect();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(",")
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=ARCA_COMMIT={commit}");
    println!("cargo:rustc-env=ARCA_FEATURES={features}");
    println!("cargo:rustc-env=ARCA_VERSION_LINE={version} (commit {commit}; features {features})");
}
