//! Reading a `pg_basebackup` tar stream as it goes by, for the few entries
//! that describe the backup.
//!
//! The stream is stored untouched; [`TarWatch`] only looks at the tar
//! headers on the way and keeps, bounded, the content of `backup_label`,
//! `PG_VERSION` and the end of `backup_manifest` (whose `WAL-Ranges` say
//! where the backup stops). Anything that is not a well-formed tar stream
//! makes [`TarWatch::finish`] fail, so a broken stream is never saved as a
//! base backup.

use std::io::Read;

/// Tar block size.
const BLOCK: usize = 512;
/// Most bytes kept of `backup_label` (PostgreSQL writes a few hundred).
const MAX_LABEL: usize = 64 * 1024;
/// Most bytes kept of `PG_VERSION`.
const MAX_VERSION: usize = 64;
/// Bytes kept of the end of `backup_manifest`: its `WAL-Ranges` and
/// checksum come last and take well under this.
const MANIFEST_TAIL: usize = 64 * 1024;

/// Which entry's content is being kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Label,
    Version,
    Manifest,
}

enum State {
    /// Collecting a 512-byte header.
    Header { filled: usize },
    /// Inside an entry: `left` content bytes, then `pad` bytes of padding.
    Data {
        left: u64,
        pad: u64,
        keep: Option<Keep>,
    },
    /// After the end-of-archive block.
    End,
    /// Not a tar stream; the reason.
    Broken(String),
}

/// What the stream told about the backup.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub label: Vec<u8>,
    pub version: Vec<u8>,
    pub manifest_tail: Vec<u8>,
    pub manifest_seen: bool,
}

/// A reader that passes a tar stream through and watches its entries.
pub(crate) struct TarWatch<'a> {
    inner: &'a mut dyn Read,
    header: [u8; BLOCK],
    state: State,
    offset: u64,
    seen: Seen,
}

impl<'a> TarWatch<'a> {
    pub fn new(inner: &'a mut dyn Read) -> TarWatch<'a> {
        TarWatch {
            inner,
            header: [0; BLOCK],
            state: State::Header { filled: 0 },
            offset: 0,
            seen: Seen::default(),
        }
    }

    /// What was seen, once the stream has ended: an error when it was not a
    /// complete tar stream.
    pub fn seen(&self) -> Result<&Seen, String> {
        match &self.state {
            State::End => Ok(&self.seen),
            State::Broken(reason) => Err(reason.clone()),
            State::Header { filled: 0 } if self.offset > 0 => Ok(&self.seen),
            _ => Err(format!(
                "the tar stream ends inside an entry, after {} bytes",
                self.offset
            )),
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::End | State::Broken(_) => return,
                State::Header { filled } => {
                    let n = (BLOCK - *filled).min(bytes.len());
                    self.header[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == BLOCK {
                        self.state = self.parse_header();
                    }
                }
                State::Data { left, pad, keep } => {
                    if *left > 0 {
                        let n = (*left).min(bytes.len() as u64) as usize;
                        if let Some(which) = *keep {
                            keep_bytes(&mut self.seen, which, &bytes[..n]);
                        }
                        *left -= n as u64;
                        bytes = &bytes[n..];
                    } else {
                        let n = (*pad).min(bytes.len() as u64) as usize;
                        *pad -= n as u64;
                        bytes = &bytes[n..];
                    }
                    if let State::Data {
                        left: 0, pad: 0, ..
                    } = self.state
                    {
                        self.state = State::Header { filled: 0 };
                    }
                }
            }
        }
    }

    /// Reads the header block just collected.
    fn parse_header(&mut self) -> State {
        let h = &self.header;
        let at = self.offset;
        if h.iter().all(|&b| b == 0) {
            return State::End;
        }
        let Some(stored) = octal(&h[148..156]) else {
            return State::Broken(format!("no tar header at byte {at} of the stream"));
        };
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if sum != stored {
            return State::Broken(format!("no tar header at byte {at} of the stream"));
        }
        let Some(size) = number(&h[124..136]) else {
            return State::Broken(format!("the tar header at byte {at} has a bad size"));
        };
        let kind = h[156];
        let keep = if kind == b'0' || kind == 0 {
            match entry_name(h).as_slice() {
                b"backup_label" => Some(Keep::Label),
                b"PG_VERSION" => Some(Keep::Version),
                b"backup_manifest" => {
                    self.seen.manifest_seen = true;
                    Some(Keep::Manifest)
                }
                _ => None,
            }
        } else {
            None
        };
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if size == 0 {
            State::Header { filled: 0 }
        } else {
            State::Data {
                left: size,
                pad,
                keep,
            }
        }
    }
}

impl Read for TarWatch<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.offset;
        self.feed(&buf[..n]);
        self.offset = before + n as u64;
        Ok(n)
    }
}

/// The entry's name: the ustar prefix joined to the name field, without a
/// leading `./`.
fn entry_name(h: &[u8; BLOCK]) -> Vec<u8> {
    let field = |b: &[u8]| b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec();
    let mut name = field(&h[0..100]);
    if &h[257..263] == b"ustar\0" {
        let prefix = field(&h[345..500]);
        if !prefix.is_empty() {
            name = [prefix.as_slice(), b"/", name.as_slice()].concat();
        }
    }
    match name.strip_prefix(b"./") {
        Some(rest) => rest.to_vec(),
        None => name,
    }
}

fn keep_bytes(seen: &mut Seen, which: Keep, bytes: &[u8]) {
    match which {
        Keep::Label => {
            let room = MAX_LABEL.saturating_sub(seen.label.len());
            seen.label
                .extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
        Keep::Version => {
            let room = MAX_VERSION.saturating_sub(seen.version.len());
            seen.version
                .extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
        Keep::Manifest => {
            let tail = &mut seen.manifest_tail;
            tail.extend_from_slice(bytes);
            if tail.len() > 2 * MANIFEST_TAIL {
                tail.drain(..tail.len() - MANIFEST_TAIL);
            }
        }
    }
}

/// An octal field (digits, then spaces or NULs).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// A size field: octal, or base-256 (high bit of the first byte set) for
/// sizes octal cannot hold.
fn number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut value: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        Some(value)
    } else {
        octal(field)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn watch(bytes: &[u8], chunk: usize) -> Result<Seen, String> {
        fn copy(s: &Seen) -> Seen {
            Seen {
                label: s.label.clone(),
                version: s.version.clone(),
                manifest_tail: s.manifest_tail.clone(),
                manifest_seen: s.manifest_seen,
            }
        }
        let mut source = bytes;
        let mut w = TarWatch::new(&mut source);
        let mut buf = vec![0; chunk];
        let mut out = Vec::new();
        loop {
            let n = w.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, bytes, "the stream passes through unchanged");
        w.seen().map(copy)
    }

    #[test]
    fn keeps_the_describing_entries_whatever_the_read_sizes() {
        let manifest = [vec![b'x'; 200_000], b"END".to_vec()].concat();
        let tar = tar_of(&[
            ("backup_label", b"START WAL LOCATION: 0/2000028\n"),
            ("base/1/1259", &[7u8; 9000]),
            ("PG_VERSION", b"15\n"),
            ("backup_manifest", &manifest),
        ]);
        for chunk in [1, 7, 512, 513, 65536] {
            let seen = watch(&tar, chunk).unwrap();
            assert_eq!(seen.label, b"START WAL LOCATION: 0/2000028\n");
            assert_eq!(seen.version, b"15\n");
            assert!(seen.manifest_seen);
            assert!(seen.manifest_tail.ends_with(b"xEND"));
            assert!(seen.manifest_tail.len() <= 2 * MANIFEST_TAIL);
        }
    }

    #[test]
    fn refuses_what_is_not_a_complete_tar_stream() {
        assert!(watch(b"not a tar stream at all", 4096).is_err());
        let tar = tar_of(&[("backup_label", &[1u8; 5000])]);
        assert!(watch(&tar[..3000], 4096).is_err(), "cut inside an entry");
        let mut bad = tar.clone();
        bad[10] ^= 1;
        let err = watch(&bad, 4096).unwrap_err();
        assert!(err.contains("no tar header at byte 0"), "{err}");
        assert!(watch(b"", 4096).is_err(), "an empty stream");
    }
}
