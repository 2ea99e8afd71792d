//! SHA-256 and byte counts of the stored bytes, computed while they stream.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::FinishWrite;
use crate::error::{IoContext, Result};

/// Size and SHA-256 (hex) of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    pub sha256: String,
}

/// Where a hashing stage leaves its digest when the stream ends.
#[derive(Clone, Default)]
pub struct DigestCell(Arc<Mutex<Option<Digest>>>);

impl DigestCell {
    /// The digest, once the stream has ended.
    pub fn get(&self) -> Option<Digest> {
        self.0.lock().expect("digest cell").clone()
    }
}

/// The last stage before the file: hashes and counts what is written.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
    cell: DigestCell,
}

impl<W: Write + Send> HashWriter<W> {
    /// Hashes everything written to `inner`; the digest lands in the returned cell at `finish`.
    pub fn new(inner: W) -> (HashWriter<W>, DigestCell) {
        let cell = DigestCell::default();
        (HashWriter { inner, hasher: Sha256::new(), size: 0, cell: cell.clone() }, cell)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Send> FinishWrite for HashWriter<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.inner.flush()?;
        let sha256 = hex::encode(self.hasher.finalize_reset());
        *self.cell.0.lock().expect("digest cell") = Some(Digest { size: self.size, sha256 });
        Ok(())
    }
}

/// Hashes what is read through it; the digest lands in the cell at end of stream.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    cell: DigestCell,
    done: bool,
}

impl<R: Read> HashReader<R> {
    /// Hashes everything read from `inner`.
    pub fn new(inner: R) -> (HashReader<R>, DigestCell) {
        let cell = DigestCell::default();
        (HashReader { inner, hasher: Sha256::new(), size: 0, cell: cell.clone(), done: false }, cell)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let sha256 = hex::encode(self.hasher.finalize_reset());
            *self.cell.0.lock().expect("digest cell") = Some(Digest { size: self.size, sha256 });
        }
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Size and SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<Digest> {
    digest_reader(crate::fsutil::open_own(path)?).at(path)
}

/// Size and SHA-256 of everything a reader gives, to its end; stops at a signal.
pub fn digest_reader(mut r: impl Read) -> std::io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        crate::signals::check_io()?;
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Digest { size, sha256: hex::encode(hasher.finalize()) })
}
