//! `arca tag`: tags of stored snapshots change through a replacement that
//! records its original, and the policies that read tags see the change.

use std::fs;

use crate::json_fields::assert_documented;
use crate::util::*;

fn snapshot_ids(env: &Env) -> Vec<serde_json::Value> {
    env.json(&["snapshots"]).as_array().unwrap().clone()
}

#[test]
fn tags_are_added_removed_and_set_and_forget_keeps_by_them() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for n in 0..3 {
        write_file(&src.join("f"), format!("version {n}").as_bytes(), 0o644);
        env.ok(&["snapshot", src.to_str().unwrap(), "--tag", "nightly"]);
    }
    let before = snapshot_ids(&env);
    let first = before[0]["id"].as_str().unwrap().to_string();

    let out = env.json(&["tag", &first[..8], "--add", "month-end"]);
    assert_documented(&out, "tag");
    assert_documented(&out["changed"][0], "tag.changed[]");
    assert_documented(&env.json(&["version"]), "version");
    let new = out["changed"][0]["new"].as_str().unwrap().to_string();
    assert_eq!(out["changed"][0]["old"], first.as_str(), "{out}");
    let after = snapshot_ids(&env);
    assert_eq!(after.len(), 3, "one replaced, none added: {after:?}");
    let replaced = after.iter().find(|s| s["id"] == new.as_str()).unwrap();
    assert_eq!(
        replaced["tags"],
        serde_json::json!(["nightly", "month-end"])
    );
    assert_eq!(replaced["original"], first.as_str());
    assert_eq!(replaced["time"], before[0]["time"], "the time stays");
    // Asking again changes nothing.
    let again = env.json(&["tag", &new[..8], "--add", "month-end"]);
    assert_eq!(again["unchanged"][0], new.as_str(), "{again}");

    // forget keeps the month-end snapshot beside the newest.
    env.ok(&["forget", "--keep-last", "1", "--keep-tag", "month-end"]);
    let kept: Vec<String> = snapshot_ids(&env)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&new), "{kept:?}");

    // --set replaces every tag; latest is narrowed by the filters.
    env.ok(&["tag", "latest", "--tag", "month-end", "--set", "audit"]);
    let tags: Vec<serde_json::Value> = snapshot_ids(&env)
        .iter()
        .map(|s| s["tags"].clone())
        .collect();
    assert!(tags.contains(&serde_json::json!(["audit"])), "{tags:?}");
    assert!(tags.contains(&serde_json::json!(["nightly"])), "{tags:?}");
    env.ok(&["tag", "latest", "--tag", "audit", "--remove", "audit"]);
    let tags: Vec<serde_json::Value> = snapshot_ids(&env)
        .iter()
        .map(|s| s["tags"].clone())
        .collect();
    assert!(tags.contains(&serde_json::json!([])), "{tags:?}");
    let report = env.ok(&["check", "--read-data"]);
    assert!(report.is_empty(), "{report}");
}
