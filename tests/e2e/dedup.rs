//! Deduplication and confidentiality, as seen from the outside.

use std::fs;
use std::io::Write;

use crate::util::*;

fn added(result: &serde_json::Value) -> u64 {
    result["summary"]["bytes_added"].as_u64().unwrap()
}

#[test]
fn unchanged_tree_adds_almost_nothing_and_an_append_adds_about_one_chunk() {
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir_all(source.join("db")).unwrap();
    write_file(
        &source.join("db/trades.db"),
        &random_bytes(50 << 20, 11),
        0o644,
    );
    write_file(&source.join("db/small.cfg"), b"max_position = 100\n", 0o644);

    let first = env.snapshot(&[&source]);
    assert!(
        added(&first) >= 50 << 20,
        "first snapshot stores the data: {first}"
    );

    let second = env.snapshot(&[&source]);
    assert!(
        added(&second) < 64 * 1024,
        "unchanged tree added {} bytes",
        added(&second)
    );
    assert_eq!(
        second["summary"]["bytes_read"], 0,
        "unchanged files are not read"
    );
    assert_eq!(second["summary"]["files_unchanged"], 2);
    assert_eq!(second["parent"], first["id"]);

    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(source.join("db/trades.db"))
        .unwrap();
    f.write_all(&random_bytes(1 << 20, 12)).unwrap();
    drop(f);
    let third = env.snapshot(&[&source]);
    assert_eq!(third["summary"]["files_changed"], 1);
    assert_eq!(third["summary"]["files_unchanged"], 1);
    assert!(third["summary"]["dirs_changed"].as_u64().unwrap() >= 1);
    let bytes = added(&third);
    // The appended MiB plus the file's old last chunk (cut by end of file,
    // not by content), re-chunked: at least 1 MiB, at most 1 MiB + one
    // maximum chunk, plus a few KiB of trees.
    assert!(bytes >= 1 << 20, "append added only {bytes} bytes");
    assert!(
        bytes <= (1 << 20) + MAX_CHUNK as u64 + 64 * 1024,
        "append added {bytes} bytes"
    );
    let blobs = third["summary"]["blobs_added"].as_u64().unwrap();
    assert!(blobs <= 12, "{blobs} blobs added");

    // Human output states the bytes added too.
    write_file(&source.join("db/small.cfg"), b"max_position = 200\n", 0o644);
    let text = env.ok(&["snapshot", source.to_str().unwrap()]);
    assert!(text.contains("added "), "{text}");
}

#[test]
fn identical_files_are_stored_once() {
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir_all(&source).unwrap();
    let data = random_bytes(4 << 20, 21);
    write_file(&source.join("a.bin"), &data, 0o644);
    write_file(&source.join("b.bin"), &data, 0o644);
    let result = env.snapshot(&[&source]);
    let bytes = added(&result);
    assert!(
        bytes < (4 << 20) + 64 * 1024,
        "duplicate content stored twice: {bytes}"
    );
}

#[test]
fn no_plaintext_or_file_name_reaches_the_repository() {
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir_all(&source).unwrap();
    let marker = b"PLAINTEXT-MARKER-ORDER-7731-XYZZY";
    let name = "secret-strategy-name-QX42.toml";
    // Compressible on purpose: uncompressed or compressed, it must not show.
    write_file(&source.join(name), &marker.repeat(2000), 0o644);
    write_file(&source.join("short.txt"), marker, 0o644);
    env.snapshot(&[&source]);
    env.ok(&[
        "snapshot",
        source.to_str().unwrap(),
        "--tag",
        "QX42-tag-secret",
    ]);
    let needles: [&[u8]; 4] = [
        marker,
        name.as_bytes(),
        b"secret-strategy",
        b"QX42-tag-secret",
    ];
    let files = files_below(&env.repo);
    assert!(files.len() > 4);
    for file in files {
        let bytes = fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains {:?}",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}
