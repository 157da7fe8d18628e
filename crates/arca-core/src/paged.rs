//! Chunking of database files on page boundaries.
//!
//! A database changes its pages in place: a night's work rewrites scattered
//! pages and leaves the rest where they were. Content-defined chunks of
//! about a megabyte make every touched page cost its whole chunk; fixed
//! groups of a few pages, aligned to page numbers, cost only the groups
//! touched. Pages never move within a file (only a vacuum renumbers them),
//! so alignment to page numbers finds every untouched group again, and
//! equal chunk sizes tell an observer nothing about content. How chunks are
//! cut is a writer's choice; readers only concatenate them (docs/format.md
//! §5.3).

use std::io::{self, Read};
use std::path::Path;

/// Bytes a database chunk aims at: groups of pages of about this size.
pub const GROUP_BYTES: usize = 32 * 1024;

/// PostgreSQL's page size (its default build), for relation files.
pub const PG_PAGE_SIZE: u32 = 8192;

/// Cuts a stream into groups of whole pages: every chunk but the last is
/// exactly [`group_size`] bytes.
#[derive(Debug)]
pub struct PageChunker<R> {
    source: R,
    buf: Vec<u8>,
    group: usize,
    eof: bool,
}

/// The size of a database chunk for pages of `page_size` bytes: as many
/// whole pages as fit in 32 KiB, at least one.
pub fn group_size(page_size: u32) -> usize {
    let page = page_size.max(1) as usize;
    page * (GROUP_BYTES / page).max(1)
}

impl<R: Read> PageChunker<R> {
    /// A chunker over `source` for pages of `page_size` bytes.
    pub fn new(source: R, page_size: u32) -> PageChunker<R> {
        let group = group_size(page_size);
        PageChunker {
            source,
            buf: Vec::with_capacity(group),
            group,
            eof: false,
        }
    }

    /// The next chunk, borrowed until the following call; `None` at the end.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let want = self.group;
        self.buf.clear();
        while self.buf.len() < want && !self.eof {
            let before = self.buf.len();
            self.buf.resize(want, 0);
            match self.source.read(&mut self.buf[before..]) {
                Ok(0) => {
                    self.buf.truncate(before);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(before + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(before),
                Err(e) => return Err(e),
            }
        }
        Ok((!self.buf.is_empty()).then_some(&self.buf[..]))
    }
}

/// A source of chunks, one at a time: content-defined or page groups.
pub(crate) trait NextChunk {
    /// The next chunk, borrowed until the following call; `None` at the end.
    fn next_chunk(&mut self) -> io::Result<Option<&[u8]>>;
}

impl<R: Read> NextChunk for PageChunker<R> {
    fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        PageChunker::next_chunk(self)
    }
}

impl<R: Read> NextChunk for crate::chunker::Chunker<R> {
    fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        crate::chunker::Chunker::next_chunk(self)
    }
}

/// Whether `path` names a PostgreSQL relation file in a data directory
/// (`base/DBOID/FILENODE[_fsm|_vm|_init][.SEGMENT]` or `global/FILENODE…`),
/// whose pages are [`PG_PAGE_SIZE`] bytes.
pub fn is_pg_relation(path: &Path) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let (stem, segment) = match name.split_once('.') {
        Some((stem, segment)) => (stem, Some(segment)),
        None => (name, None),
    };
    if segment.is_some_and(|s| !digits(s)) {
        return false;
    }
    let node = ["_fsm", "_vm", "_init"]
        .iter()
        .find_map(|fork| stem.strip_suffix(fork))
        .unwrap_or(stem);
    if !digits(node) {
        return false;
    }
    let parent = path.parent();
    let dir = parent.and_then(|p| p.file_name()).and_then(|n| n.to_str());
    let grand = parent
        .and_then(Path::parent)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    match (grand, dir) {
        (_, Some("global")) => true,
        (Some("base"), Some(db)) => digits(db),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(input: &[u8], page: u32) -> Vec<Vec<u8>> {
        let mut c = PageChunker::new(input, page);
        let mut out = Vec::new();
        while let Some(chunk) = c.next_chunk().unwrap() {
            out.push(chunk.to_vec());
        }
        out
    }

    /// A reader that returns at most `n` bytes a call, as a pipe or a
    /// page-by-page source does.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunks_are_whole_page_groups_whatever_the_reads() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(group_size(4096), 32 * 1024);
        assert_eq!(group_size(8192), 32 * 1024);
        assert_eq!(group_size(65536), 65536);
        assert_eq!(group_size(512), 32 * 1024);
        let plain = chunks(&input, 4096);
        assert_eq!(plain.concat(), input);
        assert!(
            plain[..plain.len() - 1]
                .iter()
                .all(|c| c.len() == 32 * 1024)
        );
        let mut trickled = Vec::new();
        let mut c = PageChunker::new(Trickle(&input, 4096), 4096);
        while let Some(chunk) = c.next_chunk().unwrap() {
            trickled.push(chunk.to_vec());
        }
        assert_eq!(trickled, plain);
        assert!(chunks(&[], 4096).is_empty());
    }

    #[test]
    fn a_changed_page_changes_only_its_group() {
        let mut input: Vec<u8> = (0..64 * 4096u32).map(|i| (i * 7 % 253) as u8).collect();
        let before = chunks(&input, 4096);
        input[20 * 4096 + 5] ^= 1;
        let after = chunks(&input, 4096);
        let differ = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 1);
    }

    #[test]
    fn postgresql_relation_files_are_recognised_by_path() {
        for yes in [
            "/srv/pg/base/16384/16385",
            "data/base/1/2619_fsm",
            "base/5/16390_vm.1",
            "/d/global/1262",
            "base/16384/16385.12",
        ] {
            assert!(is_pg_relation(Path::new(yes)), "{yes}");
        }
        for no in [
            "/srv/pg/base/16384/PG_VERSION",
            "base/x/16385",
            "other/16384/16385",
            "base/16384/16385.tmp",
            "base/16384/pg_filenode.map",
            "16385",
            "base/16384/_vm",
        ] {
            assert!(!is_pg_relation(Path::new(no)), "{no}");
        }
    }
}
