//! The backup source: which paths a snapshot covers and what the filesystem
//! says about each entry. Reading file content is the archiver's business;
//! this module turns paths and metadata into the shape of the snapshot tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use std::collections::{HashMap, HashSet};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::tree::{Node, NodeKind, Xattr};

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

/// Flags every source open carries: no following a link in the last
/// component, no blocking on a FIFO put in a file's place, no leaking the
/// descriptor to a hook.
fn source_flags() -> nix::fcntl::OFlag {
    use nix::fcntl::OFlag;
    OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC
}

/// Opens a source file for reading without updating its access time where
/// the kernel allows it (owner or root), so a backup leaves atimes, and the
/// trees that record them, as they were. `path` is reached through its
/// directory's handle (see [`DirHandle`]); the file opened must be the one
/// the walk listed (same device and inode, a regular file): a file swapped
/// for another, or for a link, between listing and opening is not read.
pub(crate) fn open_file(path: &Path, listed: &Metadata) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |extra: nix::fcntl::OFlag| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((source_flags() | extra).bits())
            .open(path)
    };
    let file = match open(nix::fcntl::OFlag::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EPERM as i32) => {
            open(nix::fcntl::OFlag::empty())
        }
        other => other,
    }
    .map_err(replaced_if_link)?;
    let opened = file.metadata()?;
    if !opened.is_file() || !same_entry(&opened, listed) {
        return Err(replaced());
    }
    Ok(file)
}

fn same_entry(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// What a source entry swapped under the walk reads as.
fn replaced() -> std::io::Error {
    std::io::Error::other(
        "changed during backup: it was replaced between listing and opening, and is not stored",
    )
}

/// `O_NOFOLLOW` met a link where the walk had listed something else.
fn replaced_if_link(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
        replaced()
    } else {
        e
    }
}

/// An open source directory. Its entries are reached through the handle
/// (`/proc/self/fd/N/NAME`), never by resolving the directory's path again,
/// so swapping the directory (or any directory above it) for a link or
/// another directory after it was checked changes nothing that is read.
pub(crate) struct DirHandle {
    _dir: std::fs::File,
    /// The path that reaches the open directory itself.
    access: PathBuf,
}

impl DirHandle {
    /// Opens the directory at `path` (itself reached through its parent's
    /// handle, or a source path as given). With `listed`, it must be the
    /// directory the walk listed there.
    pub fn open(path: &Path, listed: Option<&Metadata>) -> std::io::Result<DirHandle> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let flags = nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_CLOEXEC
            | if listed.is_some() {
                source_flags()
            } else {
                nix::fcntl::OFlag::empty()
            };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits())
            .open(path)
            .map_err(|e| {
                // A link (or a file) where a directory was listed.
                let swapped = e.raw_os_error() == Some(nix::errno::Errno::ENOTDIR as i32);
                if swapped && listed.is_some() {
                    replaced()
                } else {
                    replaced_if_link(e)
                }
            })?;
        if let Some(listed) = listed
            && !same_entry(&dir.metadata()?, listed)
        {
            return Err(replaced());
        }
        let proc = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        // Without /proc the directory's path is used (checked as above).
        let access = if proc.is_dir() {
            proc
        } else {
            path.to_path_buf()
        };
        Ok(DirHandle { _dir: dir, access })
    }

    /// The path that lists this directory.
    pub fn path(&self) -> &Path {
        &self.access
    }
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
        // Walking a directory to back it up changes its atime, so a
        // directory's atime would make every tree new on every run; it is
        // recorded as its mtime instead.
        atime: if kind == NodeKind::Dir {
            Timestamp::new(meta.mtime(), meta.mtime_nsec())
        } else {
            Timestamp::new(meta.atime(), meta.atime_nsec())
        },
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

/// The node of a stream stored as one file: owned by the running user,
/// mode 0600, timestamped now.
pub(crate) fn stream_node(name: &str, size: u64, content: Vec<crate::id::BlobId>) -> Node {
    let now = jiff::Timestamp::now();
    let t = Timestamp::new(now.as_second(), i64::from(now.subsec_nanosecond()));
    Node {
        mode: 0o600,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        mtime: t,
        atime: t,
        ctime: t,
        size,
        content,
        ..Node::new(name.as_bytes(), NodeKind::File)
    }
}

/// What to leave out of a snapshot.
#[derive(Clone, Debug, Default)]
pub struct ExcludeOptions {
    /// Patterns with gitignore semantics, matched against absolute paths
    /// (`*.tmp` anywhere, `/srv/cache` anchored, `logs/` directories only,
    /// `!keep.log` re-includes).
    pub patterns: Vec<String>,
    /// Files of such patterns, one per line (`#` comments, as .gitignore).
    pub pattern_files: Vec<PathBuf>,
    /// Leave out directories that contain an entry of one of these names.
    pub if_present: Vec<String>,
    /// Leave out files larger than this many bytes.
    pub larger_than: Option<u64>,
    /// Stay on the file systems of the source paths.
    pub one_file_system: bool,
}

/// Compiles exclude patterns and pattern files as `snapshot` reads them:
/// gitignore rules rooted at `/`, matched against absolute paths as stored.
/// `None` when there are none. `rewrite` compiles its patterns here too, so
/// a pattern means the same to both.
pub(crate) fn patterns(patterns: &[String], files: &[PathBuf]) -> Result<Option<Gitignore>> {
    if patterns.is_empty() && files.is_empty() {
        return Ok(None);
    }
    let mut builder = GitignoreBuilder::new("/");
    for file in files {
        if let Some(e) = builder.add(file) {
            return Err(Error::InvalidInput(format!(
                "exclude file {}: {e}",
                file.display()
            )));
        }
    }
    for pattern in patterns {
        builder
            .add_line(None, pattern)
            .map_err(|e| Error::InvalidInput(format!("exclude pattern {pattern:?}: {e}")))?;
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("exclude patterns: {e}")))
}

/// The compiled form of [`ExcludeOptions`].
#[derive(Debug)]
pub(crate) struct Filter {
    gitignore: Option<Gitignore>,
    if_present: Vec<PathBuf>,
    larger_than: Option<u64>,
    devices: Option<HashSet<u64>>,
}

impl Filter {
    pub(crate) fn new(options: &ExcludeOptions, sources: &[PathBuf]) -> Result<Filter> {
        let gitignore = patterns(&options.patterns, &options.pattern_files)?;
        let devices = if options.one_file_system {
            let mut set = HashSet::new();
            for path in sources {
                let meta = std::fs::symlink_metadata(path).map_err(|e| Error::source(path, e))?;
                set.insert(meta.dev());
            }
            Some(set)
        } else {
            None
        };
        Ok(Filter {
            gitignore,
            if_present: options.if_present.iter().map(PathBuf::from).collect(),
            larger_than: options.larger_than,
            devices,
        })
    }

    /// Whether an entry below a source path is left out.
    pub(crate) fn excludes(&self, path: &Path, meta: &Metadata) -> bool {
        let is_dir = meta.is_dir();
        if let Some(g) = &self.gitignore
            && g.matched(path, is_dir).is_ignore()
        {
            return true;
        }
        if let Some(limit) = self.larger_than
            && meta.is_file()
            && meta.len() > limit
        {
            return true;
        }
        if let Some(devices) = &self.devices
            && !devices.contains(&meta.dev())
        {
            return true;
        }
        is_dir
            && self
                .if_present
                .iter()
                .any(|name| path.join(name).symlink_metadata().is_ok())
    }
}

/// Looks up user and group names once per id.
#[derive(Debug, Default)]
pub(crate) struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub(crate) fn fill(&mut self, node: &mut Node) {
        node.user = self
            .users
            .entry(node.uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(node.uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone();
        node.group = self
            .groups
            .entry(node.gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(node.gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone();
    }
}

/// The extended attributes of an entry (not following symlinks), sorted by
/// name. File systems without xattr support give none.
pub(crate) fn read_xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file swapped for a link (or for another file) between the walk's
    /// listing and the open is not read (issue 17, finding 4).
    #[test]
    fn a_file_swapped_after_listing_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"root only").unwrap();
        let file = dir.path().join("mine");
        std::fs::write(&file, b"mine").unwrap();
        let listed = std::fs::symlink_metadata(&file).unwrap();
        assert!(open_file(&file, &listed).is_ok());

        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&secret, &file).unwrap();
        let err = open_file(&file, &listed).unwrap_err();
        assert!(err.to_string().contains("changed during backup"), "{err}");

        std::fs::remove_file(&file).unwrap();
        std::fs::hard_link(&secret, &file).unwrap();
        let err = open_file(&file, &listed).unwrap_err();
        assert!(err.to_string().contains("changed during backup"), "{err}");

        std::fs::remove_file(&file).unwrap();
        nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(
            open_file(&file, &listed).is_err(),
            "a FIFO is neither read nor waited on"
        );
    }

    /// Entries are reached through the directory's handle: swapping the
    /// directory for a link to elsewhere after it was opened changes
    /// nothing that is read, and a directory swapped before it is opened is
    /// refused.
    #[test]
    fn a_directory_swapped_for_a_link_is_not_entered() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("f"), b"root only").unwrap();
        let dir = root.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"mine").unwrap();
        let listed = std::fs::symlink_metadata(&dir).unwrap();
        let handle = DirHandle::open(&dir, Some(&listed)).unwrap();
        let inside = handle.path().join("f");
        let f_listed = std::fs::symlink_metadata(&inside).unwrap();

        std::fs::rename(&dir, root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        let mut read = String::new();
        std::io::Read::read_to_string(&mut open_file(&inside, &f_listed).unwrap(), &mut read)
            .unwrap();
        assert_eq!(read, "mine");
        let err = DirHandle::open(&dir, Some(&listed)).err().unwrap();
        assert!(err.to_string().contains("changed during backup"), "{err}");
    }

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
