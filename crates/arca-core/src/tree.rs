//! Tree blobs: one directory's entries.
//!
//! A tree is a MessagePack map `{"nodes": [node…]}` with nodes sorted by the
//! raw bytes of their names. Names are bytes, not strings, so any Unix file
//! name survives. Encoding is deterministic (fields in declaration order,
//! empty optional fields left out), so an unchanged directory encodes to the
//! same bytes, hashes to the same id and is stored once.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{BlobId, TreeId};
use crate::time::Timestamp;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    Chardev,
    /// A block device.
    Blockdev,
}

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// The attribute's name, raw bytes.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Its value, raw bytes.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One directory entry with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entry's name, raw bytes.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What the entry is.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Owner user name; empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Owner group name; empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time (for directories: the modification time, so that
    /// walking them does not change every tree).
    pub atime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Size in bytes (files: content length; symlinks: target length).
    pub size: u64,
    /// Inode number at the source.
    pub inode: u64,
    /// Device id of the file system that held it at the source (`st_dev`).
    pub device: u64,
    /// Hard link count.
    pub links: u64,
    /// Symlink target, raw bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub target: Vec<u8>,
    /// Device number of character and block devices.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Extended attributes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Files: the ids of their chunks, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Directories: the id of their tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<TreeId>,
}

impl Node {
    /// A node of `kind` named `name` with everything else empty or zero
    /// (mode 0755, one link): a start for programs that build trees.
    pub fn new(name: &[u8], kind: NodeKind) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            inode: 0,
            device: 0,
            links: 1,
            target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }
}

/// A decoded directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// One node per entry, sorted by name bytes.
    pub nodes: Vec<Node>,
}

/// The longest name a node may have (Linux allows 255 bytes; leave room).
const MAX_NAME_LEN: usize = 4096;

impl Tree {
    /// Encodes the tree; nodes must already be sorted by name.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain owned data into a Vec cannot fail.
        #[allow(clippy::expect_used)]
        rmp_serde::to_vec_named(self).expect("tree encodes")
    }

    /// Decodes and validates a tree; `object` names it in errors.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Tree> {
        let tree: Tree = crate::file::decode(bytes)
            .map_err(|e| Error::corrupt(object, format!("cannot decode tree: {e}")))?;
        tree.validate(object)?;
        Ok(tree)
    }

    /// Sorts nodes by name, as the format requires.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    fn validate(&self, object: &str) -> Result<()> {
        let mut previous: Option<&[u8]> = None;
        for node in &self.nodes {
            let name = &node.name[..];
            let shown = String::from_utf8_lossy(name);
            if !is_safe_name(name) {
                return Err(Error::corrupt(
                    object,
                    format!("unsafe entry name {shown:?}"),
                ));
            }
            if previous.is_some_and(|p| p >= name) {
                return Err(Error::corrupt(
                    object,
                    format!("entries not sorted at {shown:?}"),
                ));
            }
            let consistent = match node.kind {
                NodeKind::Dir => node.subtree.is_some() && node.content.is_empty(),
                NodeKind::File => node.subtree.is_none(),
                _ => node.subtree.is_none() && node.content.is_empty(),
            };
            if !consistent {
                return Err(Error::corrupt(
                    object,
                    format!("entry {shown:?} has fields its kind cannot have"),
                ));
            }
            previous = Some(name);
        }
        Ok(())
    }
}

/// A name that is safe to join onto a restore path: not empty, not `.` or
/// `..`, without `/` or NUL, and of bounded length.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

#[cfg(test)]
pub(crate) fn sample_node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: "u".into(),
        group: String::new(),
        mtime: Timestamp {
            seconds: -5,
            nanos: 7,
        },
        atime: Timestamp::default(),
        ctime: Timestamp {
            seconds: 1 << 40,
            nanos: 999_999_999,
        },
        size: 3,
        inode: 42,
        device: 7,
        links: 1,
        target: vec![],
        rdev: 0,
        xattrs: vec![],
        content: vec![],
        subtree: if kind == NodeKind::Dir {
            Some(TreeId::default())
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn round_trip_with_every_kind_and_raw_names() {
        let mut file = sample_node(b"a\xff\nname", NodeKind::File);
        file.content = vec![BlobId(Id([1; 32])), BlobId(Id([2; 32]))];
        file.xattrs = vec![Xattr {
            name: b"user.x".to_vec(),
            value: vec![0, 1],
        }];
        let mut link = sample_node(b"link", NodeKind::Symlink);
        link.target = b"/nowhere".to_vec();
        let mut dev = sample_node(b"null", NodeKind::Chardev);
        dev.rdev = 0x0103;
        let mut tree = Tree {
            nodes: vec![
                sample_node(b"dir", NodeKind::Dir),
                file,
                link,
                dev,
                sample_node(b"fifo", NodeKind::Fifo),
            ],
        };
        tree.sort();
        let bytes = tree.encode();
        assert_eq!(Tree::decode(&bytes, "tree").unwrap(), tree);
        assert_eq!(tree.encode(), bytes, "encoding is deterministic");
        let mut trailing = bytes.clone();
        trailing.push(0xc0);
        assert!(
            Tree::decode(&trailing, "tree").is_err(),
            "trailing bytes are refused"
        );
    }

    #[test]
    fn rdev_is_linux_dev_t_as_format_md_says() {
        use nix::sys::stat::{major, makedev, minor};
        // docs/format.md §4.8: the stored value is st_rdev as it is, and
        // restore hands it to mknod as it is.
        for (dev_major, dev_minor, rdev) in [
            (1, 3, 0x103),
            (8, 0, 0x800),
            (0x1234, 0x56789, 0x1000_5672_3489),
        ] {
            assert_eq!(makedev(dev_major, dev_minor), rdev);
            assert_eq!((major(rdev), minor(rdev)), (dev_major, dev_minor));
        }
    }

    #[test]
    fn rejects_traversal_names_and_unsorted_entries() {
        for bad in [&b".."[..], b".", b"a/b", b"", b"nul\0"] {
            let tree = Tree {
                nodes: vec![sample_node(bad, NodeKind::File)],
            };
            let err = Tree::decode(&tree.encode(), "tree t").unwrap_err();
            assert!(err.to_string().contains("tree t"), "{err}");
        }
        let tree = Tree {
            nodes: vec![
                sample_node(b"b", NodeKind::File),
                sample_node(b"a", NodeKind::File),
            ],
        };
        assert!(Tree::decode(&tree.encode(), "tree").is_err());
        let mut dir = sample_node(b"d", NodeKind::Dir);
        dir.subtree = None;
        assert!(Tree::decode(&Tree { nodes: vec![dir] }.encode(), "tree").is_err());
    }
}
