//! The fuzz targets' seed corpus (`fuzz/seeds/<target>/`): valid objects,
//! sealed under the fuzzing key, in both forms a target tries (as stored,
//! and as the plaintext behind the seal). This test checks that every seed
//! still decodes, so the corpus keeps up with the format; with
//! `ARCA_WRITE_FUZZ_SEEDS=<dir>` it writes a fresh corpus there first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use arca_core::format::{
    AAD_CONFIG, AAD_INDEX, AAD_LOCK, AAD_PACK_HEADER, AAD_SNAPSHOT, AAD_WAL_HEADER,
    COMPRESSION_ZSTD,
};
use arca_core::raw::{
    IndexFile, KeyFile, MasterKey, PackWriter, decode_wal, encode_wal, read_header,
};
use arca_core::{
    BlobKind, ChunkerParams, Id, KdfParams, LockMode, LockRecord, Node, NodeKind, Owner,
    RepositoryConfig, Snapshot, Time, Timestamp, Tree, TreeId, WalHeader,
};

/// The key every fuzz target seals with.
fn key() -> MasterKey {
    MasterKey::from_secret(&[7; 32])
}

fn sample_tree() -> Tree {
    let node = |name: &[u8], kind| Node {
        name: name.to_vec(),
        kind,
        mode: 0o640,
        uid: 1000,
        gid: 1000,
        user: "trader".into(),
        group: "desk".into(),
        mtime: Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        },
        atime: Timestamp::default(),
        ctime: Timestamp::default(),
        size: 12,
        inode: 77,
        device: 2049,
        links: 1,
        target: if kind == NodeKind::Symlink {
            b"../x".to_vec()
        } else {
            Vec::new()
        },
        rdev: 0,
        xattrs: Vec::new(),
        content: if kind == NodeKind::File {
            vec![arca_core::BlobId(Id([3; 32]))]
        } else {
            Vec::new()
        },
        subtree: (kind == NodeKind::Dir).then_some(TreeId(Id([4; 32]))),
    };
    Tree {
        nodes: vec![
            node(b"link", NodeKind::Symlink),
            node(b"orders.db", NodeKind::File),
            node(b"state", NodeKind::Dir),
        ],
    }
}

fn sample_snapshot() -> Snapshot {
    Snapshot {
        time: Time::now(),
        tree: TreeId(Id([4; 32])),
        paths: vec![serde_bytes::ByteBuf::from(b"/srv/trades".to_vec())],
        hostname: "db1".into(),
        username: "root".into(),
        tags: vec!["nightly".into()],
        description: String::new(),
        parent: None,
        program_version: "arca".into(),
        summary: None,
        original: None,
        copied_from: None,
    }
}

/// (target, seed name, bytes) for every seed.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let key = key();
    let mut out = Vec::new();
    let kdf = KdfParams {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    };
    let key_file = KeyFile::create(&key, b"pw", kdf, "db1", "root").unwrap();
    out.push(("key_file", "valid", key_file.encode()));

    let config = RepositoryConfig {
        version: 1,
        id: Id([9; 32]),
        chunker: ChunkerParams::default(),
        compression: 2,
        pack_size: 16 << 20,
    };
    let stored = config.encode(&key);
    let mut aad = AAD_CONFIG.to_vec();
    aad.extend_from_slice(&stored[..12]);
    out.push((
        "config",
        "plaintext",
        key.open(&aad, &stored[12..]).unwrap(),
    ));
    out.push(("config", "stored", stored));

    let mut writer = PackWriter::new(BlobKind::Data, 1 << 16);
    let mut sealer = arca_core::raw::Sealer::default();
    for plain in [&b"first chunk"[..], &[0; 3000]] {
        let id = key.blob_id(plain);
        let mut stored = Vec::new();
        let c = sealer.seal_into(&key, 3, BlobKind::Data, &id, plain, &mut stored);
        writer.add(id, plain.len() as u32, c, &stored).unwrap();
    }
    let pack = writer.finish(&key).unwrap();
    let bytes = pack.bytes().unwrap().to_vec();
    let header_len = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
    let sealed_header = &bytes[bytes.len() - 4 - header_len..bytes.len() - 4];
    out.push((
        "pack_header",
        "plaintext",
        key.open(AAD_PACK_HEADER, sealed_header).unwrap(),
    ));
    out.push(("pack_header", "stored", bytes.clone()));

    let index = IndexFile {
        supersedes: vec![arca_core::IndexId(Id([5; 32]))],
        packs: vec![arca_core::raw::IndexPack {
            id: pack.id,
            kind: BlobKind::Data.to_byte(),
            size: bytes.len() as u64,
            blobs: pack.entries.clone(),
            marked: None,
        }],
    };
    let stored = index.encode(&key);
    out.push(("index", "plaintext", key.open(AAD_INDEX, &stored).unwrap()));
    out.push(("index", "stored", stored));

    out.push(("tree", "valid", sample_tree().encode()));

    let stored = sample_snapshot().encode(&key);
    out.push((
        "snapshot",
        "plaintext",
        key.open(AAD_SNAPSHOT, &stored).unwrap(),
    ));
    out.push(("snapshot", "stored", stored));

    let owner = Owner {
        hostname: "db1".into(),
        username: "root".into(),
    };
    let stored = LockRecord::new(LockMode::Exclusive, "prune", &owner).encode(&key);
    out.push(("lock", "plaintext", key.open(AAD_LOCK, &stored).unwrap()));
    out.push(("lock", "stored", stored));

    let plain = b"order 1, order 2, order 3, ".repeat(100);
    let mut blob = vec![COMPRESSION_ZSTD];
    blob.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    blob.extend_from_slice(&zstd::bulk::compress(&plain, 3).unwrap());
    out.push(("blob", "zstd", blob));

    let header = WalHeader {
        name: "000000010000000000000001".into(),
        size: 0,
        hash: Id::default(),
        archived: Time::now(),
        frame_size: 4096,
    };
    let content = b"WAL record ".repeat(800);
    let (name, stored) = encode_wal(&key, &header, &content, 3).unwrap();
    let aad = [AAD_WAL_HEADER, &Id::from_hex(&name).unwrap().0].concat();
    let header_len = u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
    out.push((
        "wal",
        "header-plaintext",
        key.open(&aad, &stored[4..4 + header_len]).unwrap(),
    ));
    out.push(("wal", "stored", stored));
    let stream = base_backup_stream();
    let record = arca_core::pg::describe_stream(&mut &stream[..]).unwrap();
    out.push(("pg_base", "stream", stream));
    out.push(("pg_base", "record", serde_json::to_vec(&record).unwrap()));
    out
}

/// A small tar stream shaped as pg_basebackup writes one.
fn base_backup_stream() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let files: [(&str, &[u8]); 4] = [
        (
            "backup_label",
            b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n",
        ),
        ("PG_VERSION", b"16\n"),
        ("base/1/1259", &[0u8; 8192]),
        (
            "backup_manifest",
            b"{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n\"Manifest-Checksum\": \"00\"}\n",
        ),
    ];
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Whether `bytes` decode as the target reads them (either form).
fn decodes(target: &str, bytes: &[u8]) -> bool {
    let key = key();
    match target {
        "key_file" => KeyFile::decode(bytes, "seed").is_ok(),
        "config" => {
            let header = b"ARCAREPO\x01\x00\x00\x00";
            let mut aad = AAD_CONFIG.to_vec();
            aad.extend_from_slice(header);
            let mut stored = header.to_vec();
            stored.extend_from_slice(&key.seal(&aad, bytes));
            RepositoryConfig::decode(bytes, &key).is_ok()
                || RepositoryConfig::decode(&stored, &key).is_ok()
        }
        "pack_header" => {
            let mut pack = vec![0u8; 256];
            let sealed = key.seal(AAD_PACK_HEADER, bytes);
            pack.extend_from_slice(&sealed);
            pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
            read_header(&key, bytes, "seed").is_ok() || read_header(&key, &pack, "seed").is_ok()
        }
        "index" => {
            IndexFile::decode(bytes, &key, "seed").is_ok()
                || IndexFile::decode(&key.seal(AAD_INDEX, bytes), &key, "seed").is_ok()
        }
        "tree" => Tree::decode(bytes, "seed").is_ok(),
        "snapshot" => {
            Snapshot::decode(bytes, &key, "seed").is_ok()
                || Snapshot::decode(&key.seal(AAD_SNAPSHOT, bytes), &key, "seed").is_ok()
        }
        "lock" => {
            LockRecord::decode(bytes, &key, "seed").is_ok()
                || LockRecord::decode(&key.seal(AAD_LOCK, bytes), &key, "seed").is_ok()
        }
        "blob" => {
            let (head, body) = bytes.split_at(5);
            let raw = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
            zstd::bulk::decompress(body, raw).is_ok_and(|p| p.len() == raw)
        }
        "wal" => {
            // Stored, or the header's plaintext (which the fuzz target
            // seals as a header without frames, so only its decoding counts).
            let object = key.wal_name("000000010000000000000001").to_hex();
            let body = match bytes.split_first() {
                Some((0, body)) => Some(body.to_vec()),
                Some((1, packed)) => zstd::decode_all(packed).ok(),
                _ => None,
            };
            decode_wal(&key, &object, bytes).is_ok()
                || body.is_some_and(|b| rmp_serde::from_slice::<WalHeader>(&b).is_ok())
        }
        "pg_base" => {
            arca_core::pg::describe_stream(&mut &bytes[..]).is_ok()
                || arca_core::pg::parse_record(bytes, "seed").is_ok()
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

#[test]
fn every_seed_of_every_fuzz_target_decodes() {
    let generated = seeds();
    for (target, name, bytes) in &generated {
        assert!(decodes(target, bytes), "generated seed {target}/{name}");
    }
    if let Some(dir) = std::env::var_os("ARCA_WRITE_FUZZ_SEEDS") {
        for (target, name, bytes) in &generated {
            let dir = PathBuf::from(&dir).join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let targets = [
        "key_file",
        "config",
        "pack_header",
        "index",
        "tree",
        "snapshot",
        "lock",
        "blob",
        "wal",
        "pg_base",
    ];
    for target in targets {
        let dir = corpus().join(target);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!entries.is_empty(), "no seeds for {target}");
        for path in entries {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                decodes(target, &bytes),
                "seed {} no longer decodes",
                path.display()
            );
        }
    }
}
