//! `dump`: a stored file's bytes, or a directory as a tar stream, on stdout.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arca_core::{Node, NodeKind, Repository};

use crate::cli::DumpArgs;
use crate::config::Config;
use crate::session;

pub fn run(config: &Config, args: DumpArgs) -> Result<i32> {
    let repo = session::open(config)?;
    let (_, snapshot) =
        arca_core::select::resolve(&repo, &args.snapshot.which, &args.filter.filter())?;
    let (at, node) = arca_core::find_node(&repo, &snapshot, &args.path)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = match node.kind {
        NodeKind::File => {
            arca_core::write_content(&repo, &node, &mut out).map_err(|e| damaged_file(e, &at))
        }
        NodeKind::Dir => dump_tar(&repo, &at, &node, &mut out),
        _ => bail!("{} is not a file or directory", args.path.display()),
    };
    match written.and_then(|()| out.flush().context("cannot write to standard output")) {
        Err(e) if is_broken_pipe(&e) => Ok(crate::exit::SUCCESS),
        other => other.map(|()| crate::exit::SUCCESS),
    }
}

/// Names the file whose content could not be read when the repository is
/// damaged (the engine's error names the pack and blob).
fn damaged_file(error: arca_core::Error, path: &Path) -> anyhow::Error {
    if error.is_damage() {
        let message = format!(
            "{} is damaged in this snapshot: {error}; run arca check --read-data",
            path.display()
        );
        anyhow::Error::from(error).context(message)
    } else {
        error.into()
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Streams a directory as tar: entries relative to the directory's parent,
/// contents chunk by chunk.
fn dump_tar(repo: &Repository, at: &Path, node: &Node, out: &mut dyn Write) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    let base = at.parent().unwrap_or(Path::new("/")).to_path_buf();
    append(&mut builder, repo, &base, at, node)?;
    let tree = node.subtree.as_ref().context("directory without a tree")?;
    // The walk's callback can only return the engine's error type; keep the
    // writer's own error (a closed pipe, say) to return it unchanged.
    let mut failed: Option<anyhow::Error> = None;
    let walked = arca_core::walk(repo, tree, at, &mut |path, child| {
        append(&mut builder, repo, &base, path, child).map_err(|e| {
            let message = e.to_string();
            failed = Some(e);
            arca_core::Error::InvalidInput(message)
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    walked?;
    builder.finish().context("cannot write the tar stream")?;
    Ok(())
}

fn append(
    builder: &mut tar::Builder<&mut dyn Write>,
    repo: &Repository,
    base: &Path,
    path: &Path,
    node: &Node,
) -> Result<()> {
    let name: PathBuf = path.strip_prefix(base).unwrap_or(path).to_path_buf();
    let mut header = tar::Header::new_gnu();
    header.set_mode(node.mode);
    header.set_uid(u64::from(node.uid));
    header.set_gid(u64::from(node.gid));
    header.set_mtime(node.mtime.seconds.max(0) as u64);
    if !node.user.is_empty() {
        let _ = header.set_username(&node.user);
    }
    if !node.group.is_empty() {
        let _ = header.set_groupname(&node.group);
    }
    match node.kind {
        NodeKind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(node.size);
            // Exactly the size the header announces (see ExactReader).
            let chunks = node
                .content
                .iter()
                .map(|blob| repo.read_blob(arca_core::BlobKind::Data, &blob.id()));
            let reader = arca_core::raw::ExactReader::new(chunks, node.size, path);
            builder.append_data(&mut header, &name, reader)?;
        }
        NodeKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, &name, io::empty())?;
        }
        NodeKind::Symlink => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(
                &mut header,
                &name,
                std::ffi::OsStr::from_bytes(&node.target),
            )?;
        }
        _ => {} // FIFOs and devices are left out of the stream
    }
    Ok(())
}
