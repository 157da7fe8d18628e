//! Point-in-time recovery of a real PostgreSQL server from arca alone:
//! archive_command and restore_command through arca, a base backup taken
//! with `arca pg backup`, recoveries with `arca pg restore` to a time in
//! the middle of a workload and to the end of the archive. On the way: an
//! archive_command killed with SIGKILL in the middle of an upload (the
//! server retries and nothing is lost), retention after a second base
//! backup (the WAL only the forgotten backup needed is gone, recovery from
//! the kept one still works), and a damaged WAL object (check names it;
//! recovery past it stops with an error naming it instead of opening the
//! database early).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::pgcluster::{Cluster, Node, s};

/// Rows the workload inserts, one every 100 ms.
const ROWS: u32 = 600;

fn json(out: &std::process::Output, what: &str) -> Value {
    assert!(out.status.success(), "{what}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}: {out:?}"))
}

/// `arca pg backup` of `node`: its record.
fn base_backup(cluster: &Cluster, node: &Node) -> Value {
    let out = cluster.arca(&[
        "--json",
        "pg",
        "backup",
        "--pg-host",
        &s(&cluster.work),
        "--pg-port",
        &node.port.to_string(),
        "--pg-user",
        "postgres",
        "--fast",
    ]);
    let value = json(&out, "pg backup");
    crate::json_fields::assert_documented_union(&value, &["snapshot-object", "pg backup"]);
    crate::json_fields::assert_documented(&value["backup"], "pg backup.backup");
    assert!(
        value["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "pg-base"),
        "{value}"
    );
    value["backup"].clone()
}

/// `arca pg restore` into a new directory `name`, as the server's user.
fn recover<'c>(cluster: &'c Cluster, name: &str, target: &[&str]) -> (Node<'c>, Value) {
    let data = cluster.work.join(name);
    let mut args = vec!["--json", "pg", "restore", "--target"];
    let data_arg = s(&data);
    args.push(&data_arg);
    args.extend_from_slice(target);
    let value = json(&cluster.arca(&args), "pg restore");
    crate::json_fields::assert_documented(&value, "pg restore");
    assert!(data.join("recovery.signal").is_file());
    (cluster.node(&data), value)
}

/// The object name of an archived WAL file (found through the command
/// that archives it, which reports the name of what is already there).
fn object_of(cluster: &Cluster, file: &str) -> std::path::PathBuf {
    let dir = cluster.work.join("copies");
    cluster
        .user
        .ok(std::path::Path::new("mkdir"), &["-p", &s(&dir)]);
    let copy = dir.join(file);
    let out = cluster.arca(&["pg", "restore-wal", file, &s(&copy)]);
    assert!(out.status.success(), "{out:?}");
    let value = json(
        &cluster.arca(&["--json", "pg", "archive-wal", &s(&copy)]),
        "archive-wal",
    );
    assert_eq!(value["stored"], false);
    cluster
        .repo
        .join("wal")
        .join(value["object"].as_str().unwrap())
}

/// The archive_command of the test: while `kill-once` exists, the upload
/// is killed with SIGKILL while its temporary object is being written, and
/// the command fails; after that kill the marker goes and files are handed
/// to the resident agent (`--agent`).
fn killing_archive_command(cluster: &Cluster) -> String {
    let script = cluster.work.join("archive.sh");
    let wal_dir = s(&cluster.repo.join("wal"));
    let marker = s(&cluster.work.join("kill-once"));
    let killed = s(&cluster.work.join("killed"));
    let arca = format!(
        "{} {} -q pg archive-wal",
        s(&cluster.arca),
        cluster.repo_args().join(" ")
    );
    // The upload runs in slices between SIGSTOPs, so that it is seen
    // frozen half way through writing its temporary object, and killed
    // there; an upload that ends before that (an object already stored)
    // keeps the marker for the next file.
    let text = format!(
        r#"#!/bin/sh
if [ -e {marker} ]; then
    {arca} "$1" &
    pid=$!
    while [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" != Z ] && kill -STOP $pid 2>/dev/null; do
        if [ -n "$(find {wal_dir} -maxdepth 1 -name '.tmp*' -size +0)" ]; then
            kill -9 $pid
            wait $pid
            echo "$1" >> {killed}
            rm -f {marker}
            exit 1
        fi
        kill -CONT $pid
    done
    wait $pid
    exit $?
fi
exec {arca} --agent "$1"
"#
    );
    fs::write(&script, text).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    cluster.chown(&script);
    format!("{} %p", s(&script))
}

/// Flips a byte in the middle of a stored object.
fn damage(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn pg_point_in_time_recovery_survives_kills_retention_and_damage() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let mut primary = cluster.initdb(
        "primary",
        &killing_archive_command(&cluster),
        "archive_timeout = 10s",
    );
    primary.start(&[]);
    let first = base_backup(&cluster, &primary);
    assert_eq!(first["timeline"], 1);

    primary.psql(
        "create table ticks (id int primary key, ts timestamptz not null default clock_timestamp())",
    );
    let marker = cluster.work.join("kill-once");
    fs::write(&marker, b"").unwrap();
    cluster.chown(&marker);
    // One committed row every 100 ms for a minute, and a segment switch
    // half way.
    primary.psql(&format!(
        "do $$ begin for i in 1..{ROWS} loop \
           insert into ticks (id) values (i); commit; \
           if i = {} then perform pg_switch_wal(); end if; \
           perform pg_sleep(0.1); \
         end loop; end $$",
        ROWS / 2
    ));
    let last = primary.psql("select pg_walfile_name(pg_switch_wal())");
    primary.wait_archived(&last, true);
    let killed = fs::read_to_string(cluster.work.join("killed")).unwrap_or_default();
    assert!(
        !killed.is_empty() && !marker.exists(),
        "no upload was killed half way"
    );
    assert_ne!(
        primary.psql("select failed_count from pg_stat_archiver"),
        "0"
    );

    // The middle: 50 ms after the middle row, so that its commit is in
    // and the next row's is not.
    let t = primary.psql(&format!(
        "select to_char((ts + interval '50 ms') at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from ticks where id = {}",
        ROWS / 2
    ));
    let upto = primary.psql(&format!(
        "select count(*) from ticks where ts <= '{t}'::timestamptz"
    ));
    assert_eq!(upto, (ROWS / 2).to_string());

    let (mut middle, restored) = recover(&cluster, "middle", &["--as-of", &t]);
    assert_eq!(restored["backup"], first);
    middle.start(&["archive_mode=off"]);
    middle.wait_promoted();
    let row = middle.psql(&format!(
        "select count(*) filter (where ts <= '{t}'::timestamptz), \
                count(*) filter (where ts > '{t}'::timestamptz + interval '1 s') from ticks"
    ));
    assert_eq!(row, format!("{upto}|0"), "rows up to T, none after T + 1 s");
    drop(middle);

    let (mut latest, restored) = recover(&cluster, "latest", &["--latest"]);
    assert!(restored["target_time"].is_null());
    latest.start(&["archive_mode=off"]);
    latest.wait_promoted();
    assert_eq!(latest.psql("select count(*) from ticks"), ROWS.to_string());
    drop(latest);

    // Retention: a second base backup, the first forgotten and pruned.
    let second = base_backup(&cluster, &primary);
    primary.psql(&format!("insert into ticks (id) values ({})", ROWS + 1));
    let after = primary.psql(&format!(
        "select to_char((ts + interval '10 ms') at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from ticks where id = {}",
        ROWS + 1
    ));
    // Recovery to a time needs a commit after it to stop at.
    primary.psql("select pg_sleep(0.05)");
    primary.psql(&format!("insert into ticks (id) values ({})", ROWS + 2));
    // (The archiver's failure count already holds the killed upload.)
    let newest = primary.psql("select pg_walfile_name(pg_switch_wal())");
    primary.wait_archived(&newest, true);
    let forget = cluster.arca(&["forget", "--keep-last", "1"]);
    assert!(forget.status.success(), "{forget:?}");
    let prune = json(
        &cluster.arca(&["--json", "prune", "--keep-marked", "0"]),
        "prune",
    );
    let removed: Vec<&str> = prune["wal_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let first_wal = first["start_wal"].as_str().unwrap();
    let second_wal = second["start_wal"].as_str().unwrap();
    assert!(removed.contains(&first_wal), "{removed:?}");
    assert!(
        removed.iter().all(|f| &f[..24] < second_wal),
        "only WAL before the kept backup goes: {removed:?}"
    );
    let gone = cluster.arca(&["pg", "restore-wal", first_wal, &s(&cluster.work.join("x"))]);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    let (mut kept, restored) = recover(&cluster, "kept", &["--as-of", &after]);
    assert_eq!(restored["backup"], second);
    kept.start(&["archive_mode=off"]);
    kept.wait_promoted();
    assert_eq!(
        kept.psql("select count(*) from ticks"),
        (ROWS + 1).to_string()
    );
    drop(kept);

    // A damaged WAL object: check names it, and recovery through it stops
    // with an error naming it rather than opening the database early.
    let object = object_of(&cluster, &newest);
    damage(&object);
    let check = cluster.arca(&["check", "--read-data"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let said = String::from_utf8_lossy(&check.stdout);
    let name = object.file_name().unwrap().to_str().unwrap();
    assert!(said.contains(name) && said.contains(&newest), "{said}");
    let (mut broken, _) = recover(&cluster, "broken", &["--latest"]);
    let out = broken.try_start(&["archive_mode=off"]);
    let log = fs::read_to_string(broken.log()).unwrap_or_default();
    assert!(!out.status.success(), "the server opened: {log}");
    assert!(
        log.contains(&format!("WAL object {name} ({newest})")),
        "{log}"
    );
    assert!(log.contains("FATAL"), "{log}");
}
