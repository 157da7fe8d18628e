#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use super::*;

use arca_backend::{Backend, MemoryBackend};

use crate::blob::Sealer;
use crate::config::InitOptions;
use crate::index::IndexFile;
use crate::key::TEST_KDF;
use crate::pack::PackWriter;
use crate::repository::Owner;
use crate::time::Time;

fn repository() -> Repository {
    let backend = Arc::new(MemoryBackend::new());
    let options = InitOptions {
        kdf: TEST_KDF,
        ..InitOptions::default()
    };
    Repository::init(backend.clone(), b"pw", &options, &Owner::default()).unwrap();
    let mut repo = Repository::open(backend, b"pw").unwrap();
    repo.load_index().unwrap();
    repo
}

/// Stores blobs of one kind in one pack with its index file, without any
/// of the pipeline's checks; returns their ids.
fn store(repo: &mut Repository, kind: BlobKind, blobs: &[Vec<u8>]) -> Vec<Id> {
    let mut writer = PackWriter::new(kind, 1 << 20);
    let mut sealer = Sealer::default();
    let mut ids = Vec::new();
    for plain in blobs {
        let id = repo.key().blob_id(plain);
        let mut stored = Vec::new();
        let c = sealer.seal_into(repo.key(), 3, kind, &id, plain, &mut stored);
        writer.add(id, plain.len() as u32, c, &stored).unwrap();
        ids.push(id);
    }
    let entry = repo.write_pack(writer.finish(repo.key()).unwrap()).unwrap();
    repo.save_index(&IndexFile {
        supersedes: Vec::new(),
        packs: vec![entry],
    })
    .unwrap();
    repo.load_index().unwrap();
    ids
}

/// A file made of `chunks`, claiming `size` bytes.
fn file(repo: &mut Repository, name: &[u8], chunks: &[Vec<u8>], size: u64) -> Node {
    let ids = store(repo, BlobKind::Data, chunks);
    Node {
        size,
        content: ids.into_iter().map(BlobId).collect(),
        mode: 0o640,
        ..Node::new(name, NodeKind::File)
    }
}

fn tree(repo: &mut Repository, mut nodes: Vec<Node>) -> TreeId {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    TreeId(store(repo, BlobKind::Tree, &[Tree { nodes }.encode()])[0])
}

fn save(repo: &Repository, root: TreeId, host: &str, tags: &[&str], seconds: i64) -> SnapshotId {
    let snapshot = Snapshot {
        time: Time {
            at: Timestamp { seconds, nanos: 0 },
            offset_seconds: 0,
        },
        tree: root,
        paths: vec![serde_bytes::ByteBuf::from(b"/data".to_vec())],
        hostname: host.into(),
        username: "u".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        description: String::new(),
        parent: None,
        program_version: "test".into(),
        summary: None,
        original: None,
        copied_from: None,
    };
    repo.save_snapshot(&snapshot).unwrap()
}

/// Three chunks of distinct bytes: 1000, 10 and 3000 bytes.
fn chunks() -> Vec<Vec<u8>> {
    [1000usize, 10, 3000]
        .iter()
        .enumerate()
        .map(|(c, &len)| (0..len).map(|i| (i * 7 + c * 13) as u8).collect())
        .collect()
}

/// A repository with one snapshot of `/data/{big, link, sub/}` plus the
/// nodes given, mounted; returns the view and the inode of `/data`.
fn mounted(extra: Vec<Node>, options: MountOptions) -> (SnapshotFs, u64) {
    let mut repo = repository();
    let all: Vec<u8> = chunks().concat();
    let big = file(&mut repo, b"big", &chunks(), all.len() as u64);
    let mut link = Node::new(b"link", NodeKind::Symlink);
    link.target = b"big".to_vec();
    link.size = 3;
    let sub = tree(&mut repo, Vec::new());
    let mut sub_node = Node::new(b"sub", NodeKind::Dir);
    sub_node.subtree = Some(sub);
    let mut nodes = vec![big, link, sub_node];
    nodes.extend(extra);
    let data = tree(&mut repo, nodes);
    let mut data_node = Node::new(b"data", NodeKind::Dir);
    data_node.subtree = Some(data);
    let root = tree(&mut repo, vec![data_node]);
    save(&repo, root, "db1", &["nightly"], 1_000_000);
    let fs = SnapshotFs::new(repo, options);
    let snapshots = fs.lookup(ROOT, b"snapshots").unwrap().ino;
    let listing = fs.readdir(snapshots).unwrap();
    assert_eq!(listing.len(), 1);
    let snapshot = fs.lookup(snapshots, &listing[0].name).unwrap().ino;
    let data = fs.lookup(snapshot, b"data").unwrap().ino;
    (fs, data)
}

#[test]
fn the_layout_has_snapshots_hosts_tags_and_latest() {
    let (fs, _) = mounted(Vec::new(), MountOptions::default());
    let names: Vec<Vec<u8>> = fs
        .readdir(ROOT)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [&b"hosts"[..], b"latest", b"snapshots", b"tags"].map(<[u8]>::to_vec)
    );
    let snapshots = fs.lookup(ROOT, b"snapshots").unwrap().ino;
    let name = fs.readdir(snapshots).unwrap()[0].name.clone();
    assert!(
        String::from_utf8_lossy(&name).starts_with("1970-01-12T13:46:40+00:00_"),
        "{name:?}"
    );
    let latest = fs.lookup(ROOT, b"latest").unwrap();
    assert_eq!(latest.kind, NodeKind::Symlink);
    let target = fs.readlink(latest.ino).unwrap();
    assert_eq!(target, [&b"snapshots/"[..], &name].concat());
    assert_eq!(latest.size, target.len() as u64);
    let hosts = fs.lookup(ROOT, b"hosts").unwrap().ino;
    let db1 = fs.lookup(hosts, b"db1").unwrap().ino;
    let in_host: Vec<Vec<u8>> = fs
        .readdir(db1)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(in_host, vec![name.clone(), b"latest".to_vec()]);
    assert_eq!(
        fs.readlink(fs.lookup(db1, b"latest").unwrap().ino).unwrap(),
        name
    );
    let tags = fs.lookup(ROOT, b"tags").unwrap().ino;
    let nightly = fs.lookup(tags, b"nightly").unwrap().ino;
    assert!(fs.lookup(nightly, &name).is_ok());
    assert!(matches!(
        fs.lookup(tags, b"weekly"),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn entries_keep_their_inode_and_show_stored_metadata() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap();
    assert_eq!(fs.lookup(data, b"big").unwrap().ino, big.ino);
    let listed = fs.readdir(data).unwrap();
    assert_eq!(
        listed.iter().find(|e| e.name == b"big").unwrap().ino,
        big.ino
    );
    assert_eq!(
        (big.kind, big.perm, big.size),
        (NodeKind::File, 0o640, 4010)
    );
    assert_eq!(fs.getattr(big.ino).unwrap(), big);
    assert_eq!(fs.parent(big.ino).unwrap(), data);
    let link = fs.lookup(data, b"link").unwrap();
    assert_eq!(fs.readlink(link.ino).unwrap(), b"big");
    let sub = fs.lookup(data, b"sub").unwrap();
    assert_eq!(sub.kind, NodeKind::Dir);
    assert!(fs.readdir(sub.ino).unwrap().is_empty());
    assert!(fs.readdir(big.ino).is_err(), "a file is not a directory");
    assert!(
        fs.read(sub.ino, 0, 10).is_err(),
        "a directory is not a file"
    );
    assert!(fs.getattr(9999).is_err());
}

#[test]
fn reads_at_any_offset_match_the_content_across_blob_boundaries() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap().ino;
    let all: Vec<u8> = chunks().concat();
    // Boundaries at 1000 and 1010; reads inside, across one and across two.
    for (offset, size) in [
        (0, 1),
        (0, 4010),
        (999, 2),
        (995, 20),
        (1000, 10),
        (1005, 3000),
        (4009, 1),
        (500, 100_000),
    ] {
        let got = fs.read(big, offset, size).unwrap();
        let end = (offset as usize + size as usize).min(all.len());
        assert_eq!(got, all[offset as usize..end], "read {size} at {offset}");
    }
}

#[test]
fn reads_at_or_past_the_end_are_empty() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap().ino;
    assert!(fs.read(big, 4010, 100).unwrap().is_empty());
    assert!(fs.read(big, u64::MAX - 1, u32::MAX).unwrap().is_empty());
    assert_eq!(fs.read(big, 4000, u32::MAX).unwrap().len(), 10);
}

#[test]
fn a_read_fetches_only_the_blobs_it_covers() {
    let options = MountOptions {
        read_ahead: 0,
        ..MountOptions::default()
    };
    let (fs, data) = mounted(Vec::new(), options);
    let big = fs.lookup(data, b"big").unwrap().ino;
    let before = fs.blobs_fetched();
    fs.read(big, 2000, 1).unwrap();
    assert_eq!(fs.blobs_fetched() - before, 1, "only the third blob");
    fs.read(big, 2500, 100).unwrap();
    assert_eq!(fs.blobs_fetched() - before, 1, "the cache answers");
    fs.read(big, 990, 30).unwrap();
    assert_eq!(
        fs.blobs_fetched() - before,
        3,
        "the first two, the third cached"
    );
}

#[test]
fn files_whose_blobs_disagree_with_their_size_fail_to_read() {
    let mut repo = repository();
    let short = file(&mut repo, b"short", &chunks(), 5000);
    let long = file(&mut repo, b"long", &chunks(), 10);
    let mut huge = file(&mut repo, b"huge", &chunks(), u64::MAX);
    huge.mode = 0o600;
    let mut missing = Node::new(b"missing", NodeKind::File);
    missing.content = vec![BlobId(Id([9; 32]))];
    missing.size = 1;
    drop(repo);
    let (fs, data) = mounted(vec![short, long, huge, missing], MountOptions::default());
    for name in [&b"short"[..], b"long", b"huge", b"missing"] {
        let attr = fs.lookup(data, name).unwrap();
        for (offset, size) in [(0, 1), (4005, 10), (6000, 1), (u64::MAX - 3, 100)] {
            let read = fs.read(attr.ino, offset, size);
            assert!(
                matches!(read, Err(Error::Corrupt { .. })),
                "{} at {offset}: {read:?}",
                String::from_utf8_lossy(name)
            );
        }
    }
}

#[test]
fn a_blob_shorter_than_the_index_says_is_an_error_not_a_short_read() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap().ino;
    let inode = fs.inode(big).unwrap();
    let What::Node(node) = &inode.what else {
        unreachable!()
    };
    // Plant a wrong-length blob under the first chunk's id.
    let first = (BlobKind::Data, node.content[0].id());
    fs.inner
        .cache
        .insert(first, Cached::Data(vec![0; 999].into()));
    assert!(matches!(fs.read(big, 0, 10), Err(Error::Corrupt { .. })));
    assert!(fs.read(big, 1005, 10).is_ok(), "other blobs still read");
}

#[test]
fn the_cache_stays_within_its_bound() {
    let cache = BlobCache::new(2500);
    for i in 0..10u8 {
        cache.insert(
            (BlobKind::Data, Id([i; 32])),
            Cached::Data(vec![i; 1000].into()),
        );
        assert!(cache.bytes() <= 2500);
    }
    assert_eq!(cache.bytes(), 2000);
    assert!(cache.get(&(BlobKind::Data, Id([9; 32]))).is_some());
    assert!(
        cache.get(&(BlobKind::Data, Id([0; 32]))).is_none(),
        "oldest evicted"
    );
    // A use makes an entry the newest.
    cache.get(&(BlobKind::Data, Id([8; 32])));
    cache.insert(
        (BlobKind::Data, Id([20; 32])),
        Cached::Data(vec![0; 1000].into()),
    );
    assert!(cache.get(&(BlobKind::Data, Id([8; 32]))).is_some());
    assert!(cache.get(&(BlobKind::Data, Id([9; 32]))).is_none());
    // Too big to cache at all: served, not kept.
    cache.insert(
        (BlobKind::Data, Id([30; 32])),
        Cached::Data(vec![0; 3000].into()),
    );
    assert!(cache.bytes() <= 2500);
    assert!(cache.get(&(BlobKind::Data, Id([30; 32]))).is_none());

    let options = MountOptions {
        cache_size: 1500,
        ..MountOptions::default()
    };
    let (fs, data) = mounted(Vec::new(), options);
    let big = fs.lookup(data, b"big").unwrap().ino;
    for offset in (0..4010).step_by(100) {
        fs.read(big, offset, 200).unwrap();
        assert!(fs.cached_bytes() <= 1500, "{}", fs.cached_bytes());
    }
}

#[test]
fn sequential_reads_fetch_ahead_within_the_cache() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap().ino;
    let before = fs.blobs_fetched();
    fs.read(big, 0, 10).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs.blobs_fetched() < before + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let fetched = fs.blobs_fetched();
    fs.read(big, 10, 4000).unwrap();
    assert_eq!(fs.blobs_fetched(), fetched, "the rest was fetched ahead");
}

#[test]
fn snapshots_taken_later_appear_and_old_inodes_stay() {
    let options = MountOptions {
        refresh: Duration::ZERO,
        ..MountOptions::default()
    };
    let (fs, data) = mounted(Vec::new(), options);
    let snapshots = fs.lookup(ROOT, b"snapshots").unwrap().ino;
    let first = fs.readdir(snapshots).unwrap();
    // Another process takes a snapshot.
    let backend = fs.inner.repo.read().unwrap().shared_backend();
    let mut other = Repository::open(backend, b"pw").unwrap();
    other.load_index().unwrap();
    let root = tree(&mut other, vec![Node::new(b"new", NodeKind::Fifo)]);
    save(&other, root, "db2", &[], 2_000_000);
    let known = fs
        .inner
        .repo
        .read()
        .unwrap()
        .index()
        .contains(BlobKind::Tree, &root.id());
    assert!(!known, "the view's index does not know the new tree yet");
    let second = fs.readdir(snapshots).unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(second[0], first[0], "the old snapshot keeps its inode");
    let new = fs.lookup(snapshots, &second[1].name).unwrap().ino;
    assert_eq!(
        fs.readdir(new).unwrap()[0].name,
        b"new",
        "the new tree reads"
    );
    let latest = fs.lookup(ROOT, b"latest").unwrap().ino;
    assert_eq!(
        fs.readlink(latest).unwrap(),
        [&b"snapshots/"[..], &second[1].name].concat()
    );
    assert!(fs.lookup(data, b"big").is_ok());
    let hosts = fs.lookup(ROOT, b"hosts").unwrap().ino;
    assert_eq!(fs.readdir(hosts).unwrap().len(), 2);
}

#[test]
fn unsafe_host_and_tag_names_are_not_served() {
    let mut repo = repository();
    let root = tree(&mut repo, Vec::new());
    save(&repo, root, "..", &["a/b", "", "ok"], 10);
    save(&repo, root, "", &["."], 11);
    let fs = SnapshotFs::new(repo, MountOptions::default());
    let hosts = fs.lookup(ROOT, b"hosts").unwrap().ino;
    assert!(fs.readdir(hosts).unwrap().is_empty());
    let tags = fs.lookup(ROOT, b"tags").unwrap().ino;
    let names: Vec<Vec<u8>> = fs
        .readdir(tags)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![b"ok".to_vec()]);
    assert!(fs.lookup(hosts, b"..").is_err());
}

#[test]
fn a_tree_with_an_unsafe_name_is_an_error_for_that_directory_only() {
    let mut repo = repository();
    let bad = {
        let nodes = vec![Node::new(b"../escape", NodeKind::File)];
        TreeId(store(&mut repo, BlobKind::Tree, &[Tree { nodes }.encode()])[0])
    };
    let mut bad_dir = Node::new(b"bad", NodeKind::Dir);
    bad_dir.subtree = Some(bad);
    let good = tree(&mut repo, Vec::new());
    let mut good_dir = Node::new(b"good", NodeKind::Dir);
    good_dir.subtree = Some(good);
    let root = tree(&mut repo, vec![bad_dir, good_dir]);
    save(&repo, root, "h", &[], 10);
    let fs = SnapshotFs::new(repo, MountOptions::default());
    let snapshots = fs.lookup(ROOT, b"snapshots").unwrap().ino;
    let name = fs.readdir(snapshots).unwrap()[0].name.clone();
    let snap = fs.lookup(snapshots, &name).unwrap().ino;
    let bad = fs.lookup(snap, b"bad").unwrap().ino;
    assert!(matches!(fs.readdir(bad), Err(Error::Corrupt { .. })));
    assert!(fs.lookup(bad, b"../escape").is_err());
    let good = fs.lookup(snap, b"good").unwrap().ino;
    assert!(fs.readdir(good).is_ok());
}

#[test]
fn a_read_in_the_middle_fetches_nothing_ahead_until_it_becomes_a_run() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap().ino;
    let before = fs.blobs_fetched();
    // Two reads in order that began mid-file: not yet a sequential reader.
    fs.read(big, 500, 100).unwrap();
    fs.read(big, 600, 100).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fs.blobs_fetched() - before, 1, "only the first blob");
}

/// A memory backend that runs a hook once, right after it answered a
/// listing of index files: another process's snapshot lands between the
/// view's look at the index and its look at the snapshots.
struct Racing {
    inner: MemoryBackend,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Backend for Racing {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> std::result::Result<(), arca_backend::Error> {
        self.inner.create()
    }
    fn list(
        &self,
        kind: FileKind,
    ) -> std::result::Result<Vec<arca_backend::Entry>, arca_backend::Error> {
        let listed = self.inner.list(kind)?;
        if kind == FileKind::Index
            && let Some(hook) = lock(&self.hook).take()
        {
            hook();
        }
        Ok(listed)
    }
    fn read(
        &self,
        kind: FileKind,
        name: &str,
        max: u64,
    ) -> std::result::Result<Vec<u8>, arca_backend::Error> {
        self.inner.read(kind, name, max)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> std::result::Result<Vec<u8>, arca_backend::Error> {
        self.inner.read_range(kind, name, offset, length)
    }
    fn write(
        &self,
        kind: FileKind,
        name: &str,
        bytes: &[u8],
    ) -> std::result::Result<(), arca_backend::Error> {
        self.inner.write(kind, name, bytes)
    }
    fn remove(&self, kind: FileKind, name: &str) -> std::result::Result<(), arca_backend::Error> {
        self.inner.remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> std::result::Result<u64, arca_backend::Error> {
        self.inner.size(kind, name)
    }
}

#[test]
fn a_snapshot_stored_while_the_view_refreshes_reads_as_soon_as_it_is_listed() {
    let memory = MemoryBackend::new();
    let options = InitOptions {
        kdf: TEST_KDF,
        ..InitOptions::default()
    };
    Repository::init(Arc::new(memory.clone()), b"pw", &options, &Owner::default()).unwrap();
    let racing = Arc::new(Racing {
        inner: memory.clone(),
        hook: Mutex::new(None),
    });
    let mut repo = Repository::open(racing.clone(), b"pw").unwrap();
    repo.load_index().unwrap();
    let first = tree(&mut repo, vec![Node::new(b"old", NodeKind::Fifo)]);
    save(&repo, first, "db1", &[], 1_000_000);
    let fs = SnapshotFs::new(
        repo,
        MountOptions {
            refresh: Duration::ZERO,
            ..MountOptions::default()
        },
    );
    let snapshots = fs.lookup(ROOT, b"snapshots").unwrap().ino;
    assert_eq!(fs.readdir(snapshots).unwrap().len(), 1);
    // Another process stores its index file, then its snapshot file.
    *lock(&racing.hook) = Some(Box::new(move || {
        let mut other = Repository::open(Arc::new(memory), b"pw").unwrap();
        other.load_index().unwrap();
        let root = tree(&mut other, vec![Node::new(b"new", NodeKind::Fifo)]);
        save(&other, root, "db1", &[], 2_000_000);
    }));
    for _ in 0..2 {
        for entry in fs.readdir(snapshots).unwrap() {
            let listing = fs
                .lookup(snapshots, &entry.name)
                .and_then(|attr| fs.readdir(attr.ino));
            assert!(listing.is_ok(), "{listing:?}: a listed snapshot must read");
        }
    }
    assert_eq!(fs.readdir(snapshots).unwrap().len(), 2);
}

/// `/data` of [`mounted`] with `n` more entries, `f0000`, `f0001`, ….
fn crowded(n: usize) -> (SnapshotFs, u64, Vec<Vec<u8>>) {
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("f{i:04}").into_bytes()).collect();
    let extra = names
        .iter()
        .map(|name| Node::new(name, NodeKind::Fifo))
        .collect();
    let (fs, data) = mounted(extra, MountOptions::default());
    (fs, data, names)
}

#[test]
fn forgotten_entries_leave_the_table_and_come_back_with_their_number() {
    let (fs, data, names) = crowded(2000);
    let before = fs.inode_count();
    let numbers: Vec<u64> = names
        .iter()
        .map(|name| fs.lookup(data, name).unwrap().ino)
        .collect();
    assert_eq!(fs.inode_count(), before + names.len());
    for &ino in &numbers {
        fs.forget(ino, 1);
    }
    assert_eq!(fs.inode_count(), before, "every forgotten inode is dropped");
    for (name, &ino) in names.iter().zip(&numbers) {
        assert_eq!(
            fs.lookup(data, name).unwrap().ino,
            ino,
            "{} comes back with its number",
            String::from_utf8_lossy(name)
        );
        assert_eq!(fs.parent(ino).unwrap(), data);
    }
}

#[test]
fn an_inode_lives_until_each_of_its_lookups_is_forgotten() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let before = fs.inode_count();
    let big = fs.lookup(data, b"big").unwrap().ino;
    assert_eq!(fs.lookup(data, b"big").unwrap().ino, big);
    assert_eq!(fs.inode_count(), before + 1, "one inode, two lookups");
    fs.forget(big, 1);
    assert_eq!(fs.read(big, 0, 4).unwrap(), chunks()[0][..4]);
    fs.forget(big, 1);
    assert_eq!(fs.inode_count(), before);
    // The kernel forgets the root only on unmount, if at all: it stays.
    fs.forget(ROOT, 1_000);
    assert_eq!(fs.getattr(ROOT).unwrap().ino, ROOT);
    // A number the table does not hold (any more): ignored.
    fs.forget(big, 5);
    fs.forget(0, 1);
    fs.forget(u64::MAX, u64::MAX);
    assert_eq!(fs.inode_count(), before);
}

#[test]
fn a_forgotten_number_is_an_error_not_a_panic() {
    let (fs, data) = mounted(Vec::new(), MountOptions::default());
    let big = fs.lookup(data, b"big").unwrap().ino;
    let link = fs.lookup(data, b"link").unwrap().ino;
    let sub = fs.lookup(data, b"sub").unwrap().ino;
    for ino in [big, link, sub] {
        fs.forget(ino, 1);
        assert!(matches!(fs.getattr(ino), Err(Error::NotFound(_))));
        assert!(fs.parent(ino).is_err());
        assert!(fs.xattrs(ino).is_err());
        assert!(fs.lookup(ino, b"x").is_err());
    }
    assert!(fs.read(big, 0, 10).is_err());
    assert!(fs.readlink(link).is_err());
    assert!(fs.readdir(sub).is_err());
    for ino in [0, u64::MAX, big ^ 1] {
        assert!(fs.getattr(ino).is_err());
    }
}

#[test]
fn listing_a_big_directory_does_not_grow_the_table() {
    let (fs, data, names) = crowded(2000);
    let before = fs.inode_count();
    let listed = fs.readdir(data).unwrap();
    assert_eq!(listed.len(), names.len() + 3);
    assert_eq!(fs.readdir(data).unwrap(), listed, "the same numbers again");
    assert_eq!(fs.inode_count(), before);
    // A name looked up after the listing has the number it listed with.
    for entry in listed.iter().step_by(97) {
        assert_eq!(fs.lookup(data, &entry.name).unwrap().ino, entry.ino);
    }
    let mut numbers: Vec<u64> = listed.iter().map(|e| e.ino).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), listed.len(), "numbers are distinct");
    assert!(!numbers.contains(&0) && !numbers.contains(&ROOT));
}

#[test]
fn a_number_taken_by_another_live_entry_is_skipped() {
    let mut inodes = Inodes::default();
    let mut hold = |ino: u64, name: &[u8]| {
        let inode = Arc::new(Inode {
            ino,
            parent: ROOT,
            name: name.to_vec(),
            what: What::Snapshots,
            ends: OnceLock::new(),
            read_end: AtomicU64::new(0),
            run_start: AtomicU64::new(0),
        });
        inodes.live.insert(ino, Counted { inode, lookups: 1 });
        inodes.by_name.insert((ROOT, name.to_vec()), ino);
    };
    hold(40, b"a");
    hold(u64::MAX, b"b");
    let c = (ROOT, b"c".to_vec());
    assert_eq!(inodes.number(&c, 40), 41, "the next free number");
    assert_eq!(
        inodes.number(&c, u64::MAX),
        2,
        "past the end, 0 and the root"
    );
    assert_eq!(inodes.number(&c, 0), 2);
    assert_eq!(inodes.number(&c, ROOT), 2);
    // A live entry keeps its number whatever its hash says now.
    assert_eq!(inodes.number(&(ROOT, b"a".to_vec()), 7), 40);
}

#[test]
fn a_lookup_finds_each_entry_of_a_big_directory_and_nothing_between() {
    let (fs, data, names) = crowded(2000);
    let listed = fs.readdir(data).unwrap();
    for entry in &listed {
        let attr = fs.lookup(data, &entry.name).unwrap();
        assert_eq!(attr.ino, entry.ino);
        assert_eq!(attr.kind, entry.kind);
    }
    assert_eq!(
        fs.lookup(data, b"big").unwrap().size,
        chunks().concat().len() as u64
    );
    for missing in [
        &b"f"[..],
        b"f00000",
        b"f0999x",
        b"f9999",
        b"zz",
        b"",
        b"..",
        b"a/b",
    ] {
        assert!(
            matches!(fs.lookup(data, missing), Err(Error::NotFound(_))),
            "{}",
            String::from_utf8_lossy(missing)
        );
    }
    assert_eq!(listed.len(), names.len() + 3);
}
