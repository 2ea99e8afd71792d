//! Counting every table's rows from the dump itself, as its bytes stream by: pgtier asks
//! pg_dump for an uncompressed custom archive, whose data blocks hold each table's COPY text,
//! one line a row. The counts describe exactly what was dumped, cost no second scan of any
//! table and no lock beyond pg_dump's own.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// A block of table data in the custom format.
const BLK_DATA: u8 = 1;
/// A block of large objects.
const BLK_BLOBS: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Skipping the header and table of contents.
    Head(usize),
    BlockType,
    /// Reading an integer (sign byte + `int_size` bytes) into `then`.
    Int(Then),
    /// Inside a chunk of `usize` more bytes.
    Chunk(usize),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    DumpId { blobs: bool },
    ChunkLen { blobs: bool },
    BlobOid,
}

/// The row counts of every data block, by dump id, filled in as the archive is read.
#[derive(Debug)]
pub struct RowCounter {
    state: State,
    int_size: usize,
    int_buf: Vec<u8>,
    current: Option<i64>,
    blobs_block: bool,
    counts: BTreeMap<i64, u64>,
    /// The current table's lines.
    lines: Lines,
    error: Option<String>,
}

/// The rows of one table's COPY text, counted as its bytes go by: a line a row, less the end
/// pg_dump writes after the rows (`\.` and two empty lines, which are not rows).
#[derive(Debug, Default)]
pub struct Lines {
    lines: u64,
    tail: Vec<u8>,
}

impl Lines {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        self.tail.extend_from_slice(&bytes[bytes.len().saturating_sub(TERMINATOR.len())..]);
        let excess = self.tail.len().saturating_sub(TERMINATOR.len());
        self.tail.drain(..excess);
    }

    /// The rows, once the table's data went by.
    pub fn rows(&self) -> u64 {
        if self.tail == TERMINATOR { self.lines.saturating_sub(3) } else { self.lines }
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What pg_dump writes after a table's COPY rows in a custom archive.
const TERMINATOR: &[u8] = b"\\.\n\n\n";

impl RowCounter {
    /// A counter for an archive whose data starts after `head_len` bytes.
    pub fn new(head_len: usize, int_size: usize) -> RowCounter {
        RowCounter {
            state: State::Head(head_len),
            int_size,
            int_buf: Vec::new(),
            current: None,
            blobs_block: false,
            counts: BTreeMap::new(),
            lines: Lines::default(),
            error: None,
        }
    }

    fn int(&mut self) -> i64 {
        let sign = self.int_buf[0];
        let mut v: i64 = 0;
        for (i, b) in self.int_buf[1..].iter().enumerate().take(8) {
            v |= i64::from(*b) << (8 * i);
        }
        self.int_buf.clear();
        if sign != 0 { -v } else { v }
    }

    /// Takes the next bytes of the archive.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.error.is_none() {
            match self.state {
                State::Head(n) => {
                    let k = n.min(bytes.len());
                    bytes = &bytes[k..];
                    self.state = if n - k == 0 { State::BlockType } else { State::Head(n - k) };
                }
                State::BlockType => {
                    let t = bytes[0];
                    bytes = &bytes[1..];
                    self.state = match t {
                        BLK_DATA => State::Int(Then::DumpId { blobs: false }),
                        BLK_BLOBS => State::Int(Then::DumpId { blobs: true }),
                        other => {
                            self.error = Some(format!("unexpected data block type {other}"));
                            State::Done
                        }
                    };
                }
                State::Int(then) => {
                    let want = 1 + self.int_size - self.int_buf.len();
                    let k = want.min(bytes.len());
                    self.int_buf.extend_from_slice(&bytes[..k]);
                    bytes = &bytes[k..];
                    if self.int_buf.len() < 1 + self.int_size {
                        continue;
                    }
                    let v = self.int();
                    self.state = match then {
                        Then::DumpId { blobs } => {
                            self.blobs_block = blobs;
                            if blobs {
                                self.current = None;
                                State::Int(Then::BlobOid)
                            } else {
                                self.current = Some(v);
                                self.counts.entry(v).or_insert(0);
                                self.lines = Lines::default();
                                State::Int(Then::ChunkLen { blobs })
                            }
                        }
                        Then::BlobOid if v == 0 => State::BlockType,
                        Then::BlobOid => State::Int(Then::ChunkLen { blobs: true }),
                        Then::ChunkLen { blobs } if v == 0 => {
                            if blobs {
                                State::Int(Then::BlobOid)
                            } else {
                                if let Some(id) = self.current {
                                    self.counts.insert(id, self.lines.rows());
                                }
                                self.lines = Lines::default();
                                State::BlockType
                            }
                        }
                        Then::ChunkLen { .. } if v < 0 => {
                            self.error = Some(format!("a data chunk of {v} bytes"));
                            State::Done
                        }
                        Then::ChunkLen { .. } => State::Chunk(v as usize),
                    };
                }
                State::Chunk(n) => {
                    let k = n.min(bytes.len());
                    if let (Some(_), false) = (self.current, self.blobs_block) {
                        self.lines.feed(&bytes[..k]);
                    }
                    bytes = &bytes[k..];
                    self.state = if n - k == 0 { State::Int(Then::ChunkLen { blobs: self.blobs_block }) } else { State::Chunk(n - k) };
                }
                State::Done => return,
            }
        }
    }

    /// The counts, once the whole archive went by; an archive that ended inside a block, or
    /// whose blocks could not be read, has no counts.
    pub fn finish(&self) -> Result<BTreeMap<i64, u64>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.state {
            State::BlockType => Ok(self.counts.clone()),
            State::Head(_) => Ok(BTreeMap::new()),
            _ => Err("the archive ended inside a data block".into()),
        }
    }
}

/// A reader that passes an archive through and counts its rows on the way.
pub struct CountingReader<R> {
    inner: R,
    counter: Arc<Mutex<RowCounter>>,
}

impl<R: Read> CountingReader<R> {
    /// Wraps `inner`; the counts are read from `counter` after the end of the stream.
    pub fn new(inner: R, counter: Arc<Mutex<RowCounter>>) -> Self {
        CountingReader { inner, counter }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.lock().expect("row counter").feed(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mut out = vec![u8::from(v < 0)];
        out.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        out
    }

    #[test]
    fn rows_are_counted_across_chunks_and_feeds() {
        let mut a = b"HEAD".to_vec();
        a.push(BLK_DATA);
        a.extend(int(7));
        for chunk in [&b"1\tx\n2\ty\n3\t"[..], &b"z\n\\.\n\n\n"[..]] {
            a.extend(int(chunk.len() as i64));
            a.extend_from_slice(chunk);
        }
        a.extend(int(0));
        a.push(BLK_BLOBS);
        a.extend(int(9));
        a.extend(int(424242));
        a.extend(int(3));
        a.extend_from_slice(b"a\nb");
        a.extend(int(0));
        a.extend(int(0));
        a.push(BLK_DATA);
        a.extend(int(8));
        a.extend(int(6));
        a.extend_from_slice(b"\n\\.\n\n\n"); // one row: a single empty string
        a.extend(int(0));
        for step in [1, 3, 1000] {
            let mut c = RowCounter::new(4, 4);
            for piece in a.chunks(step) {
                c.feed(piece);
            }
            assert_eq!(c.finish().unwrap(), BTreeMap::from([(7, 3), (8, 1)]), "fed {step} bytes at a time");
        }
        let mut c = RowCounter::new(4, 4);
        c.feed(&a[..a.len() - 3]);
        assert!(c.finish().is_err());
    }
}
