use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use arca_core::{Node, NodeKind};
use serde::Serialize;

use crate::cli::LsArgs;
use crate::config::Config;
use crate::json::kind_name;
use crate::{output, session};

/// One entry as `ls --json` prints it (one object a line).
#[derive(Serialize)]
struct EntryJson {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

pub fn run(config: &Config, args: LsArgs) -> Result<i32> {
    output::listing();
    let repo = session::open(config)?;
    let (_, snapshot) =
        arca_core::select::resolve(&repo, &args.snapshot.which, &args.filter.filter())?;
    let path = args.path.unwrap_or_else(|| PathBuf::from("/"));
    arca_core::list(&repo, &snapshot, &path, &mut |path, node| {
        print_entry(config, args.long, path, node);
        Ok(())
    })?;
    Ok(crate::exit::SUCCESS)
}

fn print_entry(config: &Config, long: bool, path: &Path, node: &Node) {
    let shown = String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned();
    let mtime = arca_core::Time {
        at: node.mtime,
        offset_seconds: 0,
    };
    if config.json {
        output::json_line(&EntryJson {
            path: shown,
            kind: kind_name(node.kind),
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            size: node.size,
            mtime: mtime.to_rfc3339(),
            target: (node.kind == NodeKind::Symlink)
                .then(|| String::from_utf8_lossy(&node.target).into_owned()),
        });
    } else if long {
        let link = if node.kind == NodeKind::Symlink {
            format!(" -> {}", String::from_utf8_lossy(&node.target))
        } else {
            String::new()
        };
        output::line(output::sanitize(&format!(
            "{} {:>5} {:>5} {:>12} {} {shown}{link}",
            mode_string(node),
            node.uid,
            node.gid,
            node.size,
            mtime.to_local_string()
        )));
    } else {
        output::line(output::sanitize(&shown));
    }
}

/// `drwxr-xr-x`-style mode, with setuid, setgid and sticky bits.
fn mode_string(node: &Node) -> String {
    let kind = match node.kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
    };
    let m = node.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => set.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}
