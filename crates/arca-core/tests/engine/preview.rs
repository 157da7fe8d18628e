//! The restore's preview and the restore itself agree: for every mix of
//! options, the paths the preview says would be written, overwritten or
//! deleted are exactly those the restore then changes, and the preview
//! changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_core::{
    Overwrite, RestoreAction, RestoreOptions, RestoreProgress, SnapshotOptions, preview_restore,
};

use crate::common;

/// Type, content and (for files and links) inode of every entry below
/// `dir`, links not followed: what a restore changes when it writes.
fn state(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&at) else {
            continue;
        };
        let what = if meta.is_dir() {
            for entry in std::fs::read_dir(&at).unwrap() {
                stack.push(entry.unwrap().path());
            }
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&at).unwrap();
            format!("link {} {}", target.display(), meta.ino())
        } else {
            let bytes = std::fs::read(&at).unwrap();
            format!("file {bytes:?} {}", meta.ino())
        };
        out.insert(at, what);
    }
    out
}

fn changed(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_preview_names_exactly_what_the_restore_changes_for_every_mix_of_options() {
    let memory = common::init_memory(b"pw", &common::test_options());
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    for dir in ["d", "e", "f/g"] {
        std::fs::create_dir_all(s.join(dir)).unwrap();
    }
    for (file, bytes) in [
        ("a", &b"aaaa"[..]),
        ("d/b", b"b"),
        ("d/b2", b"b2"),
        ("e/c", b"c"),
        ("f/g/h", b"h"),
        ("f/x.tmp", b"x"),
    ] {
        std::fs::write(s.join(file), bytes).unwrap();
    }
    std::os::unix::fs::symlink("a", s.join("l")).unwrap();
    let mut repo = common::open(Arc::new(memory.clone()), b"pw");
    let options = SnapshotOptions {
        paths: vec![s.to_path_buf()],
        ..SnapshotOptions::default()
    };
    let id = arca_core::snapshot(&mut repo, &options, &Default::default())
        .unwrap()
        .id
        .unwrap();
    let snapshot = repo.load_snapshot(&id).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("c"), b"not yours").unwrap();

    let mut cases = Vec::new();
    for overwrite in [Overwrite::Always, Overwrite::IfChanged, Overwrite::Never] {
        for delete in [false, true] {
            for (include, exclude, subpath) in [
                (vec![], vec![], None),
                (vec!["**/g/".to_string()], vec![], None),
                (vec![], vec!["*.tmp".to_string(), "e/".to_string()], None),
                (vec![], vec![], Some(s.join("d"))),
            ] {
                cases.push(RestoreOptions {
                    subpath,
                    include,
                    exclude,
                    overwrite,
                    delete,
                    ..RestoreOptions::default()
                });
            }
        }
    }
    for options in cases {
        let target = tempfile::tempdir().unwrap();
        let t = target.path();
        common::restore(&repo, &snapshot, t).unwrap();
        let root = t.join(s.strip_prefix("/").unwrap());
        // Same size, other bytes; a missing file; a stray; a link where a
        // directory was; a stray in the subpath's target.
        std::fs::write(root.join("a"), b"AAAA").unwrap();
        std::fs::remove_file(root.join("d/b2")).unwrap();
        std::fs::write(root.join("d/stray"), b"s").unwrap();
        std::fs::remove_dir_all(root.join("e")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("e")).unwrap();
        std::fs::write(t.join("b"), b"other b").unwrap();
        std::fs::write(t.join("beside"), b"mine").unwrap();

        let before = state(t);
        // Open files keep their inodes: a file the restore replaces gets
        // another number, not the one just freed.
        let _pins: Vec<std::fs::File> = before
            .iter()
            .filter(|(_, what)| what.starts_with("file"))
            .map(|(path, _)| std::fs::File::open(path).unwrap())
            .collect();
        let outside_before = state(outside.path());
        let preview = preview_restore(&repo, &snapshot, t, &options).unwrap();
        assert_eq!(
            state(t),
            before,
            "{options:?}: the preview changed the target"
        );
        arca_core::restore(&repo, &snapshot, t, &options, &RestoreProgress::default()).unwrap();
        let real = changed(&before, &state(t));
        let said: Vec<PathBuf> = preview
            .paths
            .iter()
            .filter(|p| p.action != RestoreAction::Unchanged)
            .map(|p| p.path.clone())
            .collect();
        for path in &real {
            assert!(
                said.iter().any(|p| path.starts_with(p)),
                "{options:?}: {} changed unannounced; preview {:#?}",
                path.display(),
                preview.paths
            );
        }
        for path in &said {
            // A link replaced by the same link may get its inode back.
            if before.get(path).is_some_and(|w| w.starts_with("link")) {
                continue;
            }
            assert!(
                real.contains(path),
                "{options:?}: {} was to change and did not; changed {real:#?}",
                path.display()
            );
        }
        assert_eq!(state(outside.path()), outside_before, "{options:?}");
        // What stands where a directory the include filter leaves out
        // would be is not the restore's to touch.
        if !options.include.is_empty() {
            let e = std::fs::symlink_metadata(root.join("e")).unwrap();
            assert!(e.file_type().is_symlink(), "{options:?}: e was replaced");
        }
        // With SNAP:PATH the target stands for PATH, so --delete empties
        // it of all else; otherwise what is beside the snapshot stays.
        if options.subpath.is_none() {
            assert_eq!(std::fs::read(t.join("beside")).unwrap(), b"mine");
        }
    }
}
