//! The worked examples of docs/format.md §9, rebuilt from the inputs given
//! there with the engine's own encoders and compared byte for byte with
//! the hex printed there. The document is compiled in, so the two cannot
//! drift apart: changing a constant, a field or an encoder without the
//! document (or the document without the code) fails here.
//!
//! Every value of §9 is a fenced block of hex that follows a line starting
//! with its name in backquotes. The inputs (master secret, repository id,
//! nonces) are read from there too. What this test computes independently
//! of the engine (the derived keys, the opening of each seal) uses the
//! primitives and the labels as §3 spells them, not `arca_core::format`.
//!
//! One value depends on more than the format: `frame-B` is what the zstd
//! library makes of blob B. Should a new libzstd compress it differently,
//! this test names `frame-B` and everything built on it; the format has not
//! changed, and §9.2 gets the new frame (any frame is valid, §5.2).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use arca_core::raw::{IndexFile, IndexPack, MasterKey, PackWriter, Sealer};
use arca_core::{
    BlobId, BlobKind, ChunkerParams, Id, Node, NodeKind, RepositoryConfig, Timestamp, Tree,
    with_fixed_nonces,
};

const FORMAT_MD: &str = include_str!("../../../../docs/format.md");

/// The text of §9, up to the next section.
fn section_9() -> &'static str {
    let start = FORMAT_MD
        .find("\n## 9. Worked examples")
        .expect("format.md has a §9");
    let rest = &FORMAT_MD[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The bytes of the value `name`: the first fenced block after the line
/// that starts with `` `name` ``; `None` when §9 has no such value.
fn vector(name: &str) -> Option<Vec<u8>> {
    let label = format!("`{name}`");
    let mut lines = section_9().lines();
    lines.by_ref().find(|l| l.starts_with(&label))?;
    lines.by_ref().find(|l| l.starts_with("```"))?;
    let hex: String = lines
        .take_while(|l| !l.starts_with("```"))
        .flat_map(|l| l.split_whitespace())
        .collect();
    Some(hex::decode(&hex).unwrap_or_else(|e| panic!("`{name}` is not hex: {e}")))
}

fn input(name: &str) -> Vec<u8> {
    vector(name).unwrap_or_else(|| panic!("format.md §9 lacks the input `{name}`"))
}

fn input_array<const N: usize>(name: &str) -> [u8; N] {
    input(name)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("`{name}` is {} bytes, not {N}", v.len()))
}

/// Hex as §9 prints it: 16 bytes a line.
fn shown(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The comparisons, gathered so that one run names every difference.
#[derive(Default)]
struct Differences(Vec<String>);

impl Differences {
    fn check(&mut self, name: &str, made: &[u8]) {
        match vector(name) {
            Some(printed) if printed == made => {}
            Some(printed) => self.0.push(format!(
                "`{name}`: format.md has ({} bytes)\n{}\nbut the code makes ({} bytes)\n{}",
                printed.len(),
                shown(&printed),
                made.len(),
                shown(made)
            )),
            None => self.0.push(format!(
                "`{name}`: missing from format.md §9; the code makes ({} bytes)\n{}",
                made.len(),
                shown(made)
            )),
        }
    }

    /// Opens the sealed value `name` (§3.3) with XChaCha20-Poly1305
    /// directly; a seal that does not open is a difference too.
    fn open(&mut self, name: &str, key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = sealed.split_at(24);
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let cipher = XChaCha20Poly1305::new(key.into());
        let opened = cipher.decrypt(XNonce::from_slice(nonce), payload).ok();
        if opened.is_none() {
            self.0.push(format!(
                "`{name}`: the code's seal does not open with K_enc and the associated data {:?}",
                String::from_utf8_lossy(aad)
            ));
        }
        opened
    }
}

fn node(name: &[u8], size: u64, inode: u64, content: Id) -> Node {
    let time = Timestamp {
        seconds: 1_700_000_000,
        nanos: 5,
    };
    Node {
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime: time,
        atime: time,
        ctime: time,
        size,
        inode,
        device: 2049,
        links: 1,
        content: vec![BlobId(content)],
        ..Node::new(name, NodeKind::File)
    }
}

#[test]
fn the_worked_examples_of_format_md_section_9_are_what_the_code_makes() {
    let mut differences = Differences::default();
    let secret: [u8; 32] = input_array("S");
    let key = MasterKey::from_secret(&secret);
    let k_enc = blake3::derive_key("arca v1 encryption key", &secret);
    differences.check("K_enc", &k_enc);
    differences.check("K_id", &blake3::derive_key("arca v1 blob id key", &secret));
    differences.check("seed", &key.chunker_seed().to_le_bytes());

    // §9.1: the config.
    let config = RepositoryConfig {
        version: 1,
        id: Id(input_array("R")),
        chunker: ChunkerParams::default(),
        compression: 2,
        pack_size: 16 << 20,
    };
    let stored = with_fixed_nonces(&[input_array("N_config")], || config.encode(&key));
    differences.check("config", &stored);
    let aad = [b"arca.v1.config", &stored[..12]].concat();
    if let Some(plain) = differences.open("config", &k_enc, &aad, &stored[12..]) {
        assert_eq!(plain[0], 0, "the config body is stored uncompressed");
        differences.check("config-body", &plain[1..]);
    }

    // §9.2: two data blobs in a pack, and the index file listing it.
    let (hello, a1000) = (b"hello".to_vec(), vec![b'a'; 1000]);
    let (id_a, id_b) = (key.blob_id(&hello), key.blob_id(&a1000));
    differences.check("idA", &id_a.0);
    differences.check("idB", &id_b.0);
    let nonces = [
        input_array("N_A"),
        input_array("N_B"),
        input_array("N_header"),
    ];
    let pack = with_fixed_nonces(&nonces, || {
        let mut writer = PackWriter::new(BlobKind::Data, 1 << 10);
        let mut sealer = Sealer::default();
        for (id, plain) in [(id_a, &hello), (id_b, &a1000)] {
            let mut stored = Vec::new();
            let compression = sealer.seal_into(&key, 2, BlobKind::Data, &id, plain, &mut stored);
            writer
                .add(id, plain.len() as u32, compression, &stored)
                .unwrap();
        }
        writer.finish(&key).unwrap()
    });
    let bytes = pack.bytes().unwrap();
    differences.check("pack", bytes);
    differences.check("pack-id", &pack.id.id().0);
    assert_eq!(pack.id.id().0, *blake3::hash(bytes).as_bytes());
    let b = pack.entries[1];
    let stored_b = &bytes[b.offset() as usize..(b.offset() + b.length()) as usize];
    let aad = [&[0][..], &id_b.0].concat();
    if let Some(frame) = differences.open("frame-B", &k_enc, &aad, stored_b) {
        differences.check("frame-B", &frame);
        assert_eq!(zstd::decode_all(&frame[..]).unwrap(), a1000);
    }
    let blobs_end = (b.offset() + b.length()) as usize;
    let sealed = &bytes[blobs_end..bytes.len() - 4];
    if let Some(header) = differences.open("header", &k_enc, b"arca.v1.pack-header", sealed) {
        differences.check("header", &header);
    }

    let index = IndexFile {
        supersedes: Vec::new(),
        packs: vec![IndexPack {
            id: pack.id,
            kind: 0,
            size: bytes.len() as u64,
            blobs: pack.entries.clone(),
            marked: None,
        }],
    };
    let stored = with_fixed_nonces(&[input_array("N_index")], || index.encode(&key));
    differences.check("index", &stored);
    if let Some(plain) = differences.open("index", &k_enc, b"arca.v1.index", &stored) {
        assert_eq!(
            plain[0], 0,
            "an index file this small is stored uncompressed"
        );
        differences.check("index-body", &plain[1..]);
    }

    // §9.3: a tree naming both blobs.
    let tree = Tree {
        nodes: vec![node(b"a.txt", 5, 41, id_a), node(b"b.txt", 1000, 42, id_b)],
    };
    let encoded = tree.encode();
    differences.check("tree", &encoded);
    differences.check("tree-id", &key.blob_id(&encoded).0);

    // §9.4: the name of a WAL object, and the associated data of its
    // only frame.
    let k_wal = blake3::derive_key("arca v1 wal name key", &secret);
    differences.check("K_wal", &k_wal);
    let segment = "000000010000000000000001";
    let wal_name = *blake3::keyed_hash(&k_wal, segment.as_bytes()).as_bytes();
    assert_eq!(key.wal_name(segment).0, wal_name);
    differences.check("wal-name", &wal_name);
    let frame_aad = [
        &b"arca.v1.wal-frame"[..],
        &wal_name,
        &0u64.to_le_bytes(),
        &[1],
    ]
    .concat();
    differences.check("wal-frame-aad", &frame_aad);

    assert!(
        differences.0.is_empty(),
        "format.md §9 and the code disagree:\n\n{}",
        differences.0.join("\n\n")
    );
}
