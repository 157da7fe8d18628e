//! The backup source: which paths a snapshot covers and what the filesystem
//! says about each entry. Reading file content is the archiver's business;
//! this module turns paths and metadata into the shape of the snapshot tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::tree::{Node, NodeKind};

/// The snapshot's root, mirroring absolute paths: directories on the way to
/// a source path are `Virtual` (only their own metadata is stored), source
/// paths are `Real` (stored with everything below them).
#[derive(Debug)]
pub(crate) enum SourceNode {
    Real(PathBuf),
    Virtual(PathBuf, BTreeMap<Vec<u8>, SourceNode>),
}

/// Makes a source path absolute without following its last component (a
/// symlink given as a source is stored as a symlink, not followed).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let meta_err = |e| Error::source(path, e);
    std::fs::symlink_metadata(path).map_err(meta_err)?;
    let name = path.file_name().filter(|_| {
        !matches!(
            path.components().next_back(),
            Some(Component::CurDir | Component::ParentDir)
        )
    });
    match (name, path.parent()) {
        (Some(name), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(parent.canonicalize().map_err(meta_err)?.join(name))
        }
        _ => path.canonicalize().map_err(meta_err),
    }
}

/// The names along a path, without root, `.` or `..` components.
pub(crate) fn names_of(path: &Path) -> Vec<&OsStr> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Builds the root of the snapshot tree from absolute source paths.
pub(crate) fn build_root(paths: &[PathBuf]) -> SourceNode {
    let mut root = SourceNode::Virtual(PathBuf::from("/"), BTreeMap::new());
    for path in paths {
        let names = names_of(path);
        if names.is_empty() {
            return SourceNode::Real(PathBuf::from("/"));
        }
        let mut node = &mut root;
        let mut walked = PathBuf::from("/");
        for (i, name) in names.iter().enumerate() {
            walked.push(name);
            let SourceNode::Virtual(_, children) = node else {
                break; // an ancestor is already a source path: covered
            };
            let key = name.as_bytes().to_vec();
            if i + 1 == names.len() {
                children.insert(key, SourceNode::Real(walked.clone()));
                break;
            }
            node = children
                .entry(key)
                .or_insert_with(|| SourceNode::Virtual(walked.clone(), BTreeMap::new()));
        }
    }
    root
}

/// The node for an entry from its metadata (content and subtree left empty).
pub(crate) fn node_from_metadata(name: &[u8], meta: &Metadata) -> Option<Node> {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::Chardev
    } else if ft.is_block_device() {
        NodeKind::Blockdev
    } else {
        return None;
    };
    Some(Node {
        name: name.to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        user: String::new(),
        group: String::new(),
        mtime: Timestamp::new(meta.mtime(), meta.mtime_nsec()),
        atime: Timestamp::new(meta.atime(), meta.atime_nsec()),
        ctime: Timestamp::new(meta.ctime(), meta.ctime_nsec()),
        size: if kind == NodeKind::Dir {
            0
        } else {
            meta.size()
        },
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        target: Vec::new(),
        rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
            meta.rdev()
        } else {
            0
        },
        xattrs: Vec::new(),
        content: Vec::new(),
        subtree: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(node: &SourceNode) -> String {
        match node {
            SourceNode::Real(p) => format!("R({})", p.display()),
            SourceNode::Virtual(p, children) => {
                let inner: Vec<String> = children
                    .iter()
                    .map(|(k, v)| format!("{}:{}", String::from_utf8_lossy(k), shape(v)))
                    .collect();
                format!("V({})[{}]", p.display(), inner.join(","))
            }
        }
    }

    #[test]
    fn root_mirrors_absolute_paths_and_merges_covered_ones() {
        let paths = [
            PathBuf::from("/srv/db"),
            PathBuf::from("/srv/db/sub"),
            PathBuf::from("/etc"),
        ];
        assert_eq!(
            shape(&build_root(&paths)),
            "V(/)[etc:R(/etc),srv:V(/srv)[db:R(/srv/db)]]"
        );
        let paths = [PathBuf::from("/srv/db/sub"), PathBuf::from("/srv/db")];
        assert_eq!(
            shape(&build_root(&paths)),
            "V(/)[srv:V(/srv)[db:R(/srv/db)]]"
        );
        assert_eq!(shape(&build_root(&[PathBuf::from("/")])), "R(/)");
    }

    #[test]
    fn absolute_keeps_a_symlink_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/nonexistent", &link).unwrap();
        let abs = absolute(&link).unwrap();
        assert_eq!(abs.file_name().unwrap(), "link");
        assert!(absolute(&dir.path().join("missing")).is_err());
    }
}
