//! Metadata fidelity: a tree with every case an operator's server can hold
//! comes back exactly, compared against a manifest taken before the
//! snapshot (reading a file changes its atime, so the source itself is no
//! longer the reference afterwards).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use filetime::FileTime;

use crate::util::*;

/// Everything compared about one entry.
#[derive(Debug, PartialEq)]
struct Entry {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    atime: Option<(i64, i64)>,
    size: u64,
    /// BLAKE3 of the content, for files.
    content: Option<String>,
    target: Option<PathBuf>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    rdev: u64,
    /// Which entries share this one's inode (relative paths), for files.
    link_group: Vec<PathBuf>,
}

fn kind_of(m: &fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    let k = if t.is_file() {
        "file"
    } else if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "chardev"
    } else {
        "other"
    };
    k.to_string()
}

/// Metadata of every entry first, then contents: reading a file changes
/// its atime (for every name of its inode), so no read may come between
/// two metadata reads.
fn manifest(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    collect(root, root, &mut out, &mut inodes);
    for paths in inodes.values() {
        if paths.len() > 1 {
            for p in paths {
                out.get_mut(p).unwrap().link_group = paths.clone();
            }
        }
    }
    for (rel, entry) in out.iter_mut() {
        if entry.kind == "file" {
            let bytes = fs::read(root.join(rel)).unwrap();
            entry.content = Some(blake3::hash(&bytes).to_hex().to_string());
        }
    }
    out
}

/// Re-reads atimes after `manifest` read the contents: the state the
/// snapshot will see.
fn refresh_atimes(root: &Path, entries: &mut BTreeMap<PathBuf, Entry>) {
    for (rel, entry) in entries.iter_mut() {
        if entry.atime.is_some() {
            let m = fs::symlink_metadata(root.join(rel)).unwrap();
            entry.atime = Some((m.atime(), m.atime_nsec()));
        }
    }
}

fn collect(
    root: &Path,
    path: &Path,
    out: &mut BTreeMap<PathBuf, Entry>,
    inodes: &mut BTreeMap<u64, Vec<PathBuf>>,
) {
    let m = fs::symlink_metadata(path).unwrap();
    let rel = path.strip_prefix(root).unwrap().to_path_buf();
    let kind = kind_of(&m);
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if kind != "symlink" {
        for name in xattr::list(path).unwrap() {
            let value = xattr::get(path, &name).unwrap().unwrap_or_default();
            xattrs.push((name.as_bytes().to_vec(), value));
        }
    }
    xattrs.sort();
    if kind == "file" {
        inodes.entry(m.ino()).or_default().push(rel.clone());
    }
    out.insert(
        rel,
        Entry {
            mode: if kind == "symlink" {
                0
            } else {
                m.mode() & 0o7777
            },
            uid: m.uid(),
            gid: m.gid(),
            mtime: (m.mtime(), m.mtime_nsec()),
            // Directory atimes change as the walk reads them; symlink atimes
            // are not kept by every kernel path. Files and FIFOs are exact.
            atime: (kind == "file" || kind == "fifo").then(|| (m.atime(), m.atime_nsec())),
            size: if kind == "dir" { 0 } else { m.size() },
            // Filled in a second pass: reading changes atimes.
            content: None,
            target: (kind == "symlink").then(|| fs::read_link(path).unwrap()),
            xattrs,
            rdev: m.rdev(),
            link_group: Vec::new(),
            kind: kind.clone(),
        },
    );
    if kind == "dir" {
        for entry in fs::read_dir(path).unwrap() {
            collect(root, &entry.unwrap().path(), out, inodes);
        }
    }
}

fn set_times(path: &Path, atime: FileTime, mtime: FileTime) {
    filetime::set_symlink_file_times(path, atime, mtime).unwrap();
}

/// Builds the tree; returns whether extended attributes could be set here.
fn build(root: &Path) -> bool {
    fs::create_dir_all(root.join("empty/also-empty")).unwrap();
    let modes = root.join("modes");
    fs::create_dir_all(&modes).unwrap();
    for (name, mode) in [
        ("suid", 0o4755),
        ("sgid", 0o2750),
        ("plain", 0o640),
        ("ro", 0o444),
        ("none", 0o000),
    ] {
        write_file(&modes.join(name), name.as_bytes(), mode);
    }
    let sticky = root.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();

    // Names: not UTF-8, with a newline, 255 bytes.
    let names = root.join("names");
    fs::create_dir(&names).unwrap();
    for name in [&b"latin1-\xe9t\xe9"[..], b"new\nline", &[b'n'; 255]] {
        write_file(&names.join(OsStr::from_bytes(name)), name, 0o644);
    }

    // Links: dangling and relative symlinks, hard-link groups of 2 and 3.
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    symlink("modes/plain", root.join("relative")).unwrap();
    write_file(&root.join("hard-a"), b"shared inode", 0o600);
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    write_file(&root.join("names/triple"), b"three names", 0o644);
    fs::hard_link(root.join("names/triple"), root.join("triple-2")).unwrap();
    fs::hard_link(root.join("names/triple"), root.join("empty/triple-3")).unwrap();

    // A sparse file: data at both ends, a 62 MiB hole between.
    let sparse = root.join("sparse.img");
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(&sparse).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&random_bytes(1 << 20, 8), 0).unwrap();
        f.write_all_at(&random_bytes(1 << 20, 9), 63 << 20).unwrap();
    }

    // FIFO, and a character device when root.
    assert!(
        Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    if running_as_root() {
        assert!(
            Command::new("mknod")
                .arg(root.join("null-dev"))
                .args(["c", "1", "3"])
                .status()
                .unwrap()
                .success()
        );
        std::os::unix::fs::chown(root.join("modes/plain"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("dangling"), Some(4321), Some(8765)).unwrap();
    }

    // 120 levels deep.
    let mut deep = root.join("deep");
    for i in 0..120 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    write_file(&deep.join("bottom.txt"), b"the bottom", 0o644);

    // Extended attributes, where the file system supports them.
    let xattrs_ok = xattr::set(root.join("modes/plain"), "user.arca.test", b"value\x00bin").is_ok();
    if xattrs_ok {
        xattr::set(&names, "user.dir-attr", b"on a directory").unwrap();
    }

    // Times to the nanosecond: before 1970, after 2038, and ordinary.
    let old = FileTime::from_unix_time(-1_000_000_000, 1);
    let future = FileTime::from_unix_time(4_102_444_800, 999_999_999);
    let now = FileTime::from_unix_time(1_750_000_000, 123_456_789);
    set_times(&modes.join("suid"), now, old);
    set_times(&modes.join("sgid"), old, future);
    set_times(&root.join("dangling"), now, future);
    for dir in [&sticky, &names, &modes] {
        set_times(dir, now, now);
    }
    xattrs_ok
}

#[test]
fn every_kind_of_entry_and_metadata_comes_back_exactly() {
    let env = Env::with_repo();
    let source = env.path("source");
    let xattrs_ok = build(&source);
    let mut before = manifest(&source);
    refresh_atimes(&source, &mut before);

    let result = env.snapshot(&[&source]);
    assert_eq!(result["warnings"].as_array().unwrap().len(), 0, "{result}");
    let target = env.path("restore");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored_root = restored(&target, &source);
    let after = manifest(&restored_root);

    let mut mismatches = Vec::new();
    for (path, want) in &before {
        match after.get(path) {
            None => mismatches.push(format!("{}: missing", path.display())),
            Some(got) => {
                // Owners come back only as root.
                let owners_ok = !running_as_root() || (got.uid, got.gid) == (want.uid, want.gid);
                let same = got.kind == want.kind
                    && got.mode == want.mode
                    && got.mtime == want.mtime
                    && got.atime == want.atime
                    && got.size == want.size
                    && got.content == want.content
                    && got.target == want.target
                    && got.xattrs == want.xattrs
                    && got.rdev == want.rdev
                    && got.link_group == want.link_group
                    && owners_ok;
                if !same {
                    mismatches.push(format!(
                        "{}:\n  want {want:?}\n  got  {got:?}",
                        path.display()
                    ));
                }
            }
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            mismatches.push(format!("{}: unexpected", path.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // Hard links share one inode again; the sparse file keeps its holes.
    let ino = |p: &str| fs::metadata(restored_root.join(p)).unwrap().ino();
    assert_eq!(ino("hard-a"), ino("hard-b"));
    assert_eq!(ino("names/triple"), ino("empty/triple-3"));
    let blocks = |root: &Path| fs::metadata(root.join("sparse.img")).unwrap().blocks();
    assert!(
        blocks(&restored_root) <= blocks(&source) + 16,
        "sparse file allocated {} blocks, source {}",
        blocks(&restored_root),
        blocks(&source)
    );
    if xattrs_ok {
        assert!(!before[Path::new("modes/plain")].xattrs.is_empty());
    }
    if running_as_root() {
        assert_eq!(before[Path::new("null-dev")].kind, "chardev");
    }
}
