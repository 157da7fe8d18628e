//! `mount`: the repository as a read-only FUSE file system until Ctrl-C,
//! SIGTERM or an unmount. The file system itself (inodes, listings, reads
//! through the blob cache) is the engine's [`SnapshotFs`]; this file only
//! speaks the kernel's protocol through `fuser`, mounting with fusermount3
//! (no libfuse). Each entry replied to a lookup is one reference the
//! kernel holds; its `forget` hands them back, so the view keeps only the
//! inodes the kernel still has.
//!
//! Takes no lock, like restore and the other readers (docs/concurrency.md):
//! the view reloads the index when index files change, so blobs a prune
//! repacked are found where they went.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use arca_core::{Attr, DirEntry, MountOptions, NodeKind, SnapshotFs, Timestamp};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};

use crate::cli::MountArgs;
use crate::config::Config;
use crate::session;

/// How long the kernel may keep attributes and names: short, so that new
/// snapshots show soon (stored entries never change, but cost is low).
const TTL: Duration = Duration::from_secs(1);

/// Request threads: reads of different blobs overlap.
const THREADS: usize = 4;

pub fn run(config: &Config, args: MountArgs) -> Result<i32> {
    let mountpoint = &args.mountpoint;
    if !mountpoint.is_dir() {
        bail!(
            "{} is not a directory; mount needs an existing empty directory",
            mountpoint.display()
        );
    }
    let repo = session::open(config)?;
    let options = MountOptions {
        cache_size: args.cache_size.0,
        filter: args.filter.filter(),
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        ..MountOptions::default()
    };
    let fs = Adapter {
        view: SnapshotFs::new(repo, options),
        dirs: Mutex::new(HashMap::new()),
        next_handle: AtomicU64::new(1),
    };
    let mut fuse = fuser::Config::default();
    fuse.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
        MountOption::FSName("arca".into()),
        MountOption::Subtype("arca".into()),
    ];
    if args.allow_other {
        fuse.acl = fuser::SessionACL::All;
    }
    fuse.n_threads = Some(THREADS);
    // The signal must not end the process before the unmount.
    let signals = crate::interrupt::redirect();
    let mounted = fuser::spawn_mount(fs, mountpoint, &fuse)
        .with_context(|| format!("cannot mount {}", mountpoint.display()))
        .map_err(|e| hint_fuse(e, mountpoint))?;
    if !config.quiet {
        eprintln!(
            "arca: repository mounted on {}; Ctrl-C unmounts",
            mountpoint.display()
        );
    }
    loop {
        match signals.recv_timeout(Duration::from_millis(200)) {
            Ok(_) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if mounted.guard.is_finished() => {
                // Unmounted from outside (fusermount3 -u).
                mounted
                    .join()
                    .with_context(|| format!("serving {}", mountpoint.display()))?;
                return Ok(crate::exit::SUCCESS);
            }
            Err(_) => {}
        }
    }
    let how = match mounted.umount_and_join() {
        Ok(()) => "",
        // Files are open in it: detach it now; their readers get errors
        // once this process is gone, as after any unmount of a busy FUSE
        // file system.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            unmount_lazily(mountpoint)
                .with_context(|| format!("cannot unmount {}", mountpoint.display()))?;
            " (files were still open in it)"
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot unmount {}", mountpoint.display()));
        }
    };
    if !config.quiet {
        eprintln!("arca: unmounted {}{how}", mountpoint.display());
    }
    Ok(crate::exit::SUCCESS)
}

/// Detaches a busy mount: umount2(MNT_DETACH) as root, else through
/// fusermount3 (or fusermount) -u -z, which are allowed to.
fn unmount_lazily(mountpoint: &Path) -> Result<()> {
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())?;
    // SAFETY: umount2 reads a valid NUL-terminated path.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    for helper in ["fusermount3", "fusermount"] {
        let status = std::process::Command::new(helper)
            .args(["-u", "-z", "--"])
            .arg(mountpoint)
            .stdin(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Ok(());
        }
    }
    bail!("the file system is busy and fusermount3 -u -z failed")
}

/// Says what to install when mounting failed for want of FUSE.
fn hint_fuse(error: anyhow::Error, mountpoint: &Path) -> anyhow::Error {
    let missing = !Path::new("/dev/fuse").exists()
        || error
            .chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|e| e.kind() == std::io::ErrorKind::NotFound);
    if missing {
        error.context(format!(
            "mounting {} needs /dev/fuse and fusermount3 (Debian: apt install fuse3)",
            mountpoint.display()
        ))
    } else {
        error
    }
}

struct Adapter {
    view: SnapshotFs,
    /// Open directories: the listing taken when each was opened, so that
    /// reading it in pieces sees one consistent list.
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_handle: AtomicU64,
}

/// The kernel's answer for an engine error: missing is ENOENT, a request
/// that makes no sense (reading a directory) EINVAL, anything else (damage,
/// storage) EIO.
fn errno(error: &arca_core::Error) -> Errno {
    match error.kind() {
        arca_core::ErrorKind::NotFound => Errno::ENOENT,
        arca_core::ErrorKind::InvalidInput => Errno::EINVAL,
        _ => Errno::EIO,
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::Chardev => FileType::CharDevice,
        NodeKind::Blockdev => FileType::BlockDevice,
    }
}

fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    if t.seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.seconds as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.seconds.unsigned_abs()) + nanos
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.mtime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: u32::try_from(a.links).unwrap_or(u32::MAX),
        uid: a.uid,
        gid: a.gid,
        // The kernel's 32-bit encoding: major in bits 8..20, minor in
        // 0..8 and 20..32.
        rdev: {
            let (major, minor) = (nix::sys::stat::major(a.rdev), nix::sys::stat::minor(a.rdev));
            ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)) as u32
        },
        blksize: 4096,
        flags: 0,
    }
}

/// The xattr answer: the size asked for when `size` is 0, else the data if
/// it fits.
fn xattr_reply(reply: ReplyXattr, data: &[u8], size: u32) {
    if size == 0 {
        reply.size(u32::try_from(data.len()).unwrap_or(u32::MAX));
    } else if data.len() <= size as usize {
        reply.data(data);
    } else {
        reply.error(Errno::ERANGE);
    }
}

impl fuser::Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Large read-ahead: fewer, bigger requests for files read in order.
        let _ = config
            .set_max_readahead(1 << 20)
            .or_else(|nearest| config.set_max_readahead(nearest));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.view.lookup(parent.0, name.as_bytes()) {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// `batch_forget` comes here too: fuser's default calls this for each
    /// inode of the batch.
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.view.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.view.getattr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.view.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.view.getattr(ino.0) {
            // Stored content never changes: the page cache may keep it.
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.view.read(ino.0, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            // Whatever is wrong with the repository, this read fails, not
            // the mount.
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.view.readdir(ino.0) {
            Ok(entries) => {
                let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
                let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
                dirs.insert(handle, Arc::new(entries));
                reply.opened(FileHandle(handle), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = {
            let dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
            dirs.get(&fh.0).cloned()
        };
        let Some(entries) = entries else {
            return reply.error(Errno::EBADF);
        };
        let parent = self.view.parent(ino.0).unwrap_or(ino.0);
        let dots = [
            (ino.0, FileType::Directory, &b"."[..]),
            (parent, FileType::Directory, b".."),
        ];
        let all = dots.into_iter().chain(
            entries
                .iter()
                .map(|e| (e.ino, file_type(e.kind), e.name.as_slice())),
        );
        for (i, (ino, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        dirs.remove(&fh.0);
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.view.xattrs(ino.0) {
            Ok(xattrs) => match xattrs.iter().find(|x| x.name == name.as_bytes()) {
                Some(x) => xattr_reply(reply, &x.value, size),
                None => reply.error(Errno::NO_XATTR),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.view.xattrs(ino.0) {
            Ok(xattrs) => {
                let mut names = Vec::new();
                for x in &xattrs {
                    names.extend_from_slice(&x.name);
                    names.push(0);
                }
                xattr_reply(reply, &names, size);
            }
            Err(e) => reply.error(errno(&e)),
        }
    }
}
