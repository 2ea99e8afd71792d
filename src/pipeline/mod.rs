//! Streaming stages between pg_dump and the stored file, and back: compress -> encrypt -> hash
//! on the way in; hash -> decrypt -> decompress on the way out. Nothing buffers a whole dump.

mod gzip;
mod hash;
mod sniff;
pub mod tarball;

use std::io::{self, Read, Write};

pub use gzip::ParallelGzip;
pub use hash::{Digest, DigestCell, HashReader, HashWriter, digest_reader, sha256_file};
pub use sniff::{Layer, sniff};

use crate::error::{Error, Result};
use crate::ui::Progress;
use crate::vocab::Compression;

/// A writer stage that must write a trailer when the stream ends.
pub trait FinishWrite: Write + Send {
    /// Writes this stage's trailer and finishes every stage beneath it.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Wraps `inner` in the compression stage for `c`.
pub fn compressor(c: Compression, inner: Box<dyn FinishWrite>) -> io::Result<Box<dyn FinishWrite>> {
    Ok(match c {
        Compression::Gzip(level) => Box::new(ParallelGzip::new(inner, level, worker_threads())),
        Compression::Zstd(level) => {
            let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
            let threads = worker_threads() as u32;
            if threads > 1 {
                enc.multithread(threads)?;
                // Smaller jobs than zstd's default (4 windows) keep memory well under 64 MiB
                // at a negligible cost in ratio.
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            }
            Box::new(ZstdWriter(enc))
        }
        Compression::None => inner,
    })
}

/// Bytes per zstd worker job.
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// How many compression workers to run: one per core.
pub fn worker_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

struct ZstdWriter(zstd::stream::write::Encoder<'static, Box<dyn FinishWrite>>);

impl Write for ZstdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl FinishWrite for ZstdWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

/// Copies `from` into `to` with a 256 KiB buffer, reporting progress; returns the byte count.
pub fn copy_counted(from: &mut dyn Read, to: &mut dyn Write, progress: &Progress) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        crate::signals::check_io()?;
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !crate::signals::interrupted() => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        if total < 1 << 20 && total + n as u64 >= 1 << 20 {
            crate::fault::point("stream:1MiB");
        }
        total += n as u64;
        progress.inc(n as u64);
    }
}

/// What the decoding side found in the stored bytes, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub layers: Vec<Layer>,
}

impl Decoded {
    /// The innermost payload: a custom-format archive or plain SQL.
    pub fn payload(&self) -> Layer {
        *self.layers.last().expect("at least the payload layer")
    }
}

/// Opens an encryption layer (`crypto::Keys` does): the pipeline knows layers, not keys.
pub trait Decrypt {
    /// A reader of the plaintext of `input`, whose outer layer is `layer`.
    fn decryptor(&self, layer: Layer, input: Box<dyn Read + Send>, source: &str) -> Result<Box<dyn Read + Send>>;
}

/// Peels encryption and compression off `input`, sniffing each layer by its magic bytes, and
/// returns a reader of the payload (a pg_dump custom archive, a tar of a directory-format dump
/// or SQL text).
pub fn decoder(input: Box<dyn Read + Send>, keys: &dyn Decrypt, source: &str) -> Result<(Box<dyn Read + Send>, Decoded)> {
    let mut current = input;
    let mut layers = Vec::new();
    loop {
        let peeked = Peeked::new(current, 512).map_err(|e| Error::Failed(format!("{source}: cannot read: {e}")))?;
        let layer = sniff(peeked.head());
        layers.push(layer);
        if layers.len() > 4 {
            return Err(Error::Failed(format!("{source}: too many nested layers ({})", describe(&layers))));
        }
        current = match layer {
            Layer::Gzip => Box::new(flate2::read::MultiGzDecoder::new(peeked)),
            Layer::Zstd => Box::new(zstd::stream::read::Decoder::new(peeked).map_err(|e| Error::Failed(format!("{source}: zstd: {e}")))?),
            Layer::Age | Layer::AgeArmored | Layer::Pgp | Layer::PgpArmored => keys.decryptor(layer, Box::new(peeked), source)?,
            Layer::CustomArchive | Layer::Sql | Layer::Tar => return Ok((Box::new(peeked), Decoded { layers })),
            Layer::Empty if layers.len() == 1 => return Err(Error::Failed(format!("{source}: is empty"))),
            Layer::Empty => return Err(Error::Failed(format!("{source}: nothing inside {}", describe(&layers[..layers.len() - 1])))),
            Layer::Unknown => {
                let where_ = if layers.len() == 1 { String::new() } else { format!(" inside {}", describe(&layers[..layers.len() - 1])) };
                return Err(Error::Failed(format!(
                    "{source}: unknown data{where_}: expected gzip, zstd, age, OpenPGP, a pg_dump custom archive, a tar of a dump folder or SQL text"
                )));
            }
        };
    }
}

/// "age > gzip > custom archive", for messages.
pub fn describe(layers: &[Layer]) -> String {
    layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(" > ")
}

/// A reader whose first bytes were read ahead so they can be looked at before anything consumes them.
pub struct Peeked<R> {
    head: Vec<u8>,
    pos: usize,
    inner: R,
}

impl<R: Read> Peeked<R> {
    /// Reads up to `n` bytes ahead (fewer only at end of stream).
    pub fn new(mut inner: R, n: usize) -> io::Result<Self> {
        let mut head = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match inner.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !crate::signals::interrupted() => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(crate::signals::cancelled()),
                Err(e) => return Err(e),
            }
        }
        head.truncate(got);
        Ok(Peeked { head, pos: 0, inner })
    }

    /// The bytes read ahead.
    pub fn head(&self) -> &[u8] {
        &self.head
    }
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}
