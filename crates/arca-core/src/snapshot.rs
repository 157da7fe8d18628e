//! Snapshot files: one per snapshot, under `snapshots/<id>`, sealed with
//! associated data `"arca.v1.snapshot"`.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::Result;
use crate::file;
use crate::format::{AAD_SNAPSHOT, MAX_SNAPSHOT_LEN};
use crate::id::{Id, SnapshotId, TreeId};
use crate::time::Time;

/// Where a copied snapshot came from: the snapshot of another repository
/// that `copy` wrote it from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The source repository's id (from its config).
    pub repository: Id,
    /// The snapshot's id in the source repository.
    pub snapshot: SnapshotId,
}

/// What one snapshot run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files counted as new (every file, when there is no parent).
    pub files_new: u64,
    /// Files changed relative to the parent snapshot.
    pub files_changed: u64,
    /// Files unchanged relative to the parent snapshot.
    pub files_unchanged: u64,
    /// Directories counted as new (every directory, when there is no parent).
    pub dirs_new: u64,
    /// Directories changed relative to the parent snapshot.
    pub dirs_changed: u64,
    /// Directories unchanged relative to the parent snapshot.
    pub dirs_unchanged: u64,
    /// Bytes of file content read from the source.
    pub bytes_read: u64,
    /// Plaintext bytes of blobs this run added to the repository.
    pub bytes_added: u64,
    /// Stored (compressed, sealed) bytes of those blobs.
    pub bytes_stored: u64,
    /// Number of blobs this run added.
    pub blobs_added: u64,
    /// Total size of the files in the snapshot, in bytes.
    pub total_bytes: u64,
    /// Number of files in the snapshot.
    pub total_files: u64,
    /// Source entries that could not be read and were left out.
    pub errors: u64,
    /// Duration of the run in milliseconds.
    pub duration_ms: u64,
}

impl Summary {
    /// Adds another part's counters (not the duration).
    pub(crate) fn add(&mut self, o: &Summary) {
        self.files_new += o.files_new;
        self.files_changed += o.files_changed;
        self.files_unchanged += o.files_unchanged;
        self.dirs_new += o.dirs_new;
        self.dirs_changed += o.dirs_changed;
        self.dirs_unchanged += o.dirs_unchanged;
        self.bytes_read += o.bytes_read;
        self.bytes_added += o.bytes_added;
        self.bytes_stored += o.bytes_stored;
        self.blobs_added += o.blobs_added;
        self.total_bytes += o.total_bytes;
        self.total_files += o.total_files;
        self.errors += o.errors;
    }
}

/// A decoded snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the snapshot was taken, with the UTC offset of the place.
    pub time: Time,
    /// The root tree.
    pub tree: TreeId,
    /// The absolute source paths, raw bytes.
    pub paths: Vec<serde_bytes::ByteBuf>,
    /// Host the snapshot was taken on.
    pub hostname: String,
    /// User who took it.
    pub username: String,
    /// Labels; empty when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Free text; empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The earlier snapshot this one was based on; `None`: none (every file
    /// was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// The writer's name and version, e.g. `arca 0.1.0`.
    pub program_version: String,
    /// Statistics of the run; `None` when the writer recorded none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// For a snapshot made by `repair snapshots`: the damaged original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
    /// For a snapshot written by `copy`: the snapshot it is a copy of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<Origin>,
}

impl Snapshot {
    /// Seals the snapshot for storage.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        file::seal(key, AAD_SNAPSHOT, self, file::METADATA_COMPRESSION)
    }

    /// Opens a stored snapshot; `object` names it in errors.
    pub fn decode(bytes: &[u8], key: &MasterKey, object: &str) -> Result<Snapshot> {
        file::open(key, AAD_SNAPSHOT, bytes, object, MAX_SNAPSHOT_LEN)
    }

    /// The paths as displayable strings.
    pub fn path_strings(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn round_trip_and_wrong_key() {
        let key = MasterKey::generate();
        let snap = Snapshot {
            time: Time::now(),
            tree: TreeId(Id([4; 32])),
            paths: vec![serde_bytes::ByteBuf::from(b"/srv/\xffdata".to_vec())],
            hostname: "db1".into(),
            username: "root".into(),
            tags: vec!["nightly".into()],
            description: String::new(),
            parent: Some(SnapshotId(Id([5; 32]))),
            program_version: "arca 0.1.0".into(),
            summary: Some(Summary {
                files_new: 3,
                ..Summary::default()
            }),
            original: Some(SnapshotId(Id([6; 32]))),
            copied_from: Some(Origin {
                repository: Id([7; 32]),
                snapshot: SnapshotId(Id([8; 32])),
            }),
        };
        let bytes = snap.encode(&key);
        assert_eq!(Snapshot::decode(&bytes, &key, "snapshot").unwrap(), snap);
        let err = Snapshot::decode(&bytes, &MasterKey::generate(), "snapshot 1234").unwrap_err();
        assert!(err.to_string().contains("snapshot 1234"), "{err}");
    }

    fn minimal() -> Snapshot {
        Snapshot {
            time: Time::now(),
            tree: TreeId(Id([4; 32])),
            paths: vec![serde_bytes::ByteBuf::from(b"/srv".to_vec())],
            hostname: "db1".into(),
            username: "root".into(),
            tags: vec![],
            description: String::new(),
            parent: None,
            program_version: "arca 0.1.0".into(),
            summary: None,
            original: None,
            copied_from: None,
        }
    }

    #[test]
    fn copied_from_is_omitted_when_absent_and_encodes_as_a_record() {
        let mut snap = minimal();
        let plain = rmp_serde::to_vec_named(&snap).unwrap();
        assert!(
            !plain.windows(11).any(|w| w == b"copied_from"),
            "an absent origin writes no key"
        );
        snap.copied_from = Some(Origin {
            repository: Id([7; 32]),
            snapshot: SnapshotId(Id([8; 32])),
        });
        let with = rmp_serde::to_vec_named(&snap).unwrap();
        // "copied_from" → map of 2: "repository" → bin 32, "snapshot" → bin 32.
        let mut expected = vec![0xab];
        expected.extend_from_slice(b"copied_from");
        expected.push(0x82);
        expected.push(0xaa);
        expected.extend_from_slice(b"repository");
        expected.extend_from_slice(&[0xc4, 0x20]);
        expected.extend_from_slice(&[7; 32]);
        expected.push(0xa8);
        expected.extend_from_slice(b"snapshot");
        expected.extend_from_slice(&[0xc4, 0x20]);
        expected.extend_from_slice(&[8; 32]);
        assert!(
            with.ends_with(&expected),
            "canonical encoding of the origin"
        );
    }

    #[test]
    fn snapshots_without_an_origin_still_decode() {
        // A snapshot written before `copied_from` existed: the same record
        // without the key, and one with an explicit nil.
        #[derive(Serialize)]
        struct Older<'a> {
            time: Time,
            tree: TreeId,
            paths: &'a [serde_bytes::ByteBuf],
            hostname: &'a str,
            username: &'a str,
            program_version: &'a str,
            /// `None`: no key; `Some(None)`: nil.
            #[serde(skip_serializing_if = "Option::is_none")]
            copied_from: Option<Option<()>>,
        }
        let snap = minimal();
        let key = MasterKey::generate();
        for copied_from in [None, Some(None)] {
            let older = Older {
                time: snap.time,
                tree: snap.tree,
                paths: &snap.paths,
                hostname: &snap.hostname,
                username: &snap.username,
                program_version: &snap.program_version,
                copied_from,
            };
            let bytes = file::seal(&key, AAD_SNAPSHOT, &older, 0);
            assert_eq!(Snapshot::decode(&bytes, &key, "snapshot").unwrap(), snap);
        }
    }

    #[test]
    fn a_malformed_origin_is_rejected() {
        #[derive(Serialize)]
        struct Bad<'a> {
            time: Time,
            tree: TreeId,
            paths: &'a [serde_bytes::ByteBuf],
            hostname: &'a str,
            username: &'a str,
            program_version: &'a str,
            copied_from: (serde_bytes::ByteBuf,),
        }
        let snap = minimal();
        let bad = Bad {
            time: snap.time,
            tree: snap.tree,
            paths: &snap.paths,
            hostname: &snap.hostname,
            username: &snap.username,
            program_version: &snap.program_version,
            copied_from: (serde_bytes::ByteBuf::from(vec![1; 31]),),
        };
        let key = MasterKey::generate();
        let bytes = file::seal(&key, AAD_SNAPSHOT, &bad, 0);
        let err = Snapshot::decode(&bytes, &key, "snapshot 99").unwrap_err();
        assert!(err.to_string().contains("snapshot 99"), "{err}");
    }
}
