//! What makes arca install like a tool: completion scripts and manual pages
//! generated from the same definition as the parser, a version that says
//! which build it is, and help that puts a command's own options first.

use std::fs;

use crate::util::*;

#[test]
fn completion_scripts_know_every_command_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = env.ok(&["completions", shell]);
        for command in ["snapshot", "restore", "forget", "drill", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let bash = env.ok(&["completions", "bash"]);
    assert!(bash.contains("complete -F _arca"), "{bash}");
    // An unknown shell is a usage error naming the choices.
    let err = expect_failure(&env.run(&["completions", "tcsh"]), 2);
    assert!(err.contains("bash") && err.lines().count() == 1, "{err}");
}

#[test]
fn manual_pages_cover_every_command() {
    let env = Env::new();
    let dir = env.path("man1");
    env.ok(&["man", dir.to_str().unwrap()]);
    for page in [
        "arca.1",
        "arca-snapshot.1",
        "arca-restore.1",
        "arca-key-add.1",
        "arca-repair-packs.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
        let name = page.trim_end_matches(".1");
        assert!(text.contains(name), "{page} does not name {name}");
    }
    let key_add = fs::read_to_string(dir.join("arca-key-add.1")).unwrap();
    assert!(key_add.contains("new\\-password\\-file"), "{key_add}");
    // Without a directory, arca(1) goes to stdout.
    let page = env.ok(&["man"]);
    assert!(page.contains(".TH") && page.contains("snapshot"), "{page}");
}

#[test]
fn the_version_names_the_build() {
    let env = Env::new();
    let line = env.ok(&["--version"]);
    assert!(line.starts_with("arca 0."), "{line}");
    assert!(
        line.contains("commit ") && line.contains("features"),
        "{line}"
    );
    assert_eq!(env.ok(&["version"]), line);
    let json = env.json(&["version"]);
    assert!(
        json["version"].as_str().unwrap().starts_with("0."),
        "{json}"
    );
    assert!(json["commit"].is_string(), "{json}");
    assert!(json["features"].is_array(), "{json}");
}

#[test]
fn a_commands_help_puts_its_own_options_before_the_global_ones() {
    let env = Env::new();
    let help = env.ok(&["restore", "--help"]);
    let own = help.find("--target").unwrap();
    let global = help
        .find("Global options:")
        .expect("a Global options heading");
    let repo = help.find("--repo").unwrap();
    assert!(own < global && global < repo, "{help}");
    assert!(help.contains("Examples:"), "{help}");
}
