//! arca-core in another program: open (or make) a repository, snapshot a directory, list
//! the snapshots, restore the newest. Arguments: `[REPO SOURCE TARGET]`, else temporary ones.

use arca_backend::LocalBackend;
use arca_core::{ErrorKind, InitOptions, Owner, Repository, SnapshotOptions, restore, snapshot};

const PASSWORD: &[u8] = b"example password";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (temp, mut args) = (tempfile::tempdir()?, std::env::args_os().skip(1));
    let mut path = |name| args.next().map_or(temp.path().join(name), Into::into);
    let (location, from, to) = (path("repo"), path("source"), path("target"));
    if !from.exists() {
        std::fs::create_dir_all(&from)?;
        std::fs::write(from.join("hello.txt"), "hello, arca\n")?;
    }
    let backend = std::sync::Arc::new(LocalBackend::new(location));
    let mut repo = match Repository::open(backend.clone(), PASSWORD) {
        Err(e) if e.kind() == ErrorKind::NoRepository => {
            // A cheap KDF keeps the example quick; keep the default in real use.
            let mut options = InitOptions::default();
            (options.kdf.memory_kib, options.kdf.iterations) = (8 * 1024, 1);
            Repository::init(backend, PASSWORD, &options, &Owner::default())?
        }
        opened => opened?,
    };
    repo.load_index()?;
    let mut options = SnapshotOptions::default();
    options.paths.push(from);
    snapshot(&mut repo, &options, &Default::default())?;
    let snapshots = repo.snapshots()?; // oldest first
    for (id, snap) in &snapshots {
        println!("{} {}", id.short(), snap.time);
    }
    let (_, newest) = snapshots.last().ok_or("no snapshot")?;
    let done = restore(&repo, newest, &to, &Default::default(), &Default::default())?;
    println!("restored {} files into {}", done.files, to.display());
    Ok(())
}
