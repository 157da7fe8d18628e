//! Files arca writes outside the repository (the log, the metrics file):
//! never opened through a symbolic link, never one another user planted.
//!
//! A root cron job writing `--log-file /var/log/arca.log` or a metrics file
//! into a directory others can write must not be turned into "append to
//! /etc/passwd" or "copy /etc/shadow into a world-readable file" by a link
//! left at that path. So the final component is opened with `O_NOFOLLOW`
//! (and `O_NONBLOCK`, so a FIFO cannot hang the backup), and what was
//! opened must be a regular file of this user with one name.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

/// Opens `path` for appending, creating it with mode 0600.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| explain(e, path))?;
    ours(&file, path)?;
    Ok(file)
}

/// Reads `path` if it exists (`None` when it does not), refusing a link or
/// a file that is not this user's own regular file.
pub fn read_own(path: &Path) -> io::Result<Option<String>> {
    match open_own(path)? {
        Some(file) => io::read_to_string(file).map(Some),
        None => Ok(None),
    }
}

/// Opens `path` for reading if it exists (`None` when it does not),
/// refusing a link or a file that is not this user's own regular file.
pub fn open_own(path: &Path) -> io::Result<Option<File>> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(explain(e, path)),
    };
    ours(&file, path)?;
    Ok(Some(file))
}

/// An `ELOOP` from `O_NOFOLLOW` says the path is a symbolic link.
fn explain(e: io::Error, path: &Path) -> io::Error {
    if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link; arca does not write through links",
                path.display()
            ),
        )
    } else {
        e
    }
}

/// The opened file must be a regular file, owned by this process's user,
/// with no other name.
fn ours(file: &File, path: &Path) -> io::Result<()> {
    let meta = file.metadata()?;
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} {why}; arca leaves it alone", path.display()),
        ))
    };
    if !meta.is_file() {
        return refuse("is not a regular file");
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return refuse("belongs to another user");
    }
    if meta.nlink() > 1 {
        return refuse("has other names (hard links)");
    }
    Ok(())
}
