//! A stored file's content as a reader of exactly the size its entry
//! records.
//!
//! Whatever writes the content after a header that announces its size (a
//! tar stream) must not let the content run longer or shorter than
//! announced: bytes past the size would be read as the next header, so a
//! hostile tree could smuggle members into the stream. This reader gives
//! out exactly `size` bytes and fails, naming the path, when the chunks
//! hold more or fewer.

use std::io;
use std::path::PathBuf;

/// Reads chunks from `chunks` as one stream of exactly `size` bytes.
pub struct ExactReader<I> {
    chunks: I,
    path: PathBuf,
    size: u64,
    left: u64,
    chunk: Vec<u8>,
    pos: usize,
}

impl<I> std::fmt::Debug for ExactReader<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactReader")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("left", &self.left)
            .finish()
    }
}

impl<I: Iterator<Item = crate::Result<Vec<u8>>>> ExactReader<I> {
    /// `path` names the file in errors.
    pub fn new(chunks: I, size: u64, path: impl Into<PathBuf>) -> Self {
        ExactReader {
            chunks,
            path: path.into(),
            size,
            left: size,
            chunk: Vec::new(),
            pos: 0,
        }
    }

    fn mismatch(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: its stored content is not the {} bytes its entry records (the repository is damaged)",
                self.path.display(),
                self.size
            ),
        )
    }

    /// Moves to the next chunk with bytes; false at the end.
    fn fill(&mut self) -> io::Result<bool> {
        while self.pos == self.chunk.len() {
            match self.chunks.next() {
                None => return Ok(false),
                Some(chunk) => {
                    self.chunk = chunk
                        .map_err(|e| io::Error::other(format!("{}: {e}", self.path.display())))?;
                    self.pos = 0;
                }
            }
        }
        Ok(true)
    }
}

impl<I: Iterator<Item = crate::Result<Vec<u8>>>> io::Read for ExactReader<I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let more = self.fill()?;
        if self.left == 0 {
            return if more { Err(self.mismatch()) } else { Ok(0) };
        }
        if !more {
            return Err(self.mismatch());
        }
        let n = buf
            .len()
            .min(self.chunk.len() - self.pos)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::ExactReader;

    fn read(chunks: &[&[u8]], size: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let chunks = chunks.iter().map(|c| Ok(c.to_vec()));
        ExactReader::new(chunks, size, "/f").read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn gives_exactly_the_recorded_size_or_fails() {
        assert_eq!(read(&[b"ab", b"", b"cd"], 4).unwrap(), b"abcd");
        assert_eq!(read(&[], 0).unwrap(), b"");
        assert!(read(&[b"abcd"], 3).is_err(), "longer");
        assert!(read(&[b"ab"], 3).is_err(), "shorter");
        assert!(read(&[b"x"], 0).is_err(), "content for an empty entry");
    }
}
