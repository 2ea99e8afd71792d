//! Parallel gzip in the manner of pigz: the stream is cut into chunks, each compressed on its own
//! core into a complete gzip member, and the members are written in order. Concatenated members
//! are one valid gzip file (RFC 1952 §2.2) that `gunzip`, `zcat` and every zlib reader accept.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::FinishWrite;

/// Input bytes per gzip member. Large enough that restarting the dictionary costs ~0.1%,
/// small enough that two workers and their queues stay within a few MiB.
const CHUNK: usize = 1 << 20;

type Job = (u64, Vec<u8>);

/// A `Write` that gzips on several threads and writes members, in order, to an inner stage.
pub struct ParallelGzip {
    buf: Vec<u8>,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<Box<dyn FinishWrite>>>>,
}

impl ParallelGzip {
    /// Starts `threads` compression workers at `level` and a writer feeding `inner`.
    pub fn new(inner: Box<dyn FinishWrite>, level: u32, threads: usize) -> ParallelGzip {
        let threads = threads.max(1);
        let (job_tx, job_rx) = sync_channel::<Job>(threads);
        let (done_tx, done_rx) = sync_channel::<Job>(threads * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                std::thread::Builder::new().name("gzip".into()).spawn(move || worker(rx, tx, level)).expect("spawn gzip worker")
            })
            .collect();
        drop(done_tx);
        let writer =
            std::thread::Builder::new().name("gzip-out".into()).spawn(move || write_in_order(done_rx, inner)).expect("spawn gzip writer");
        ParallelGzip { buf: Vec::with_capacity(CHUNK), seq: 0, jobs: Some(job_tx), workers, writer: Some(writer) }
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = self.jobs.as_ref().expect("not finished").send((self.seq, chunk));
        self.seq += 1;
        if sent.is_err() {
            // The writer stopped: its error is the real one.
            return Err(self.shutdown().err().unwrap_or_else(|| io::Error::other("gzip writer stopped")));
        }
        Ok(())
    }

    fn shutdown(&mut self) -> io::Result<Box<dyn FinishWrite>> {
        self.jobs.take();
        for w in self.workers.drain(..) {
            w.join().map_err(|_| io::Error::other("gzip worker panicked"))?;
        }
        match self.writer.take() {
            Some(w) => w.join().map_err(|_| io::Error::other("gzip writer panicked"))?,
            None => Err(io::Error::other("gzip stage already finished")),
        }
    }
}

fn worker(jobs: Arc<Mutex<Receiver<Job>>>, done: SyncSender<Job>, level: u32) {
    loop {
        let job = jobs.lock().expect("job queue").recv();
        let Ok((seq, data)) = job else { return };
        let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), Compression::new(level));
        let out = enc.write_all(&data).and_then(|_| enc.finish()).expect("compressing into memory cannot fail");
        if done.send((seq, out)).is_err() {
            return;
        }
    }
}

fn write_in_order(done: Receiver<Job>, mut inner: Box<dyn FinishWrite>) -> io::Result<Box<dyn FinishWrite>> {
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (seq, member) in done {
        waiting.insert(seq, member);
        while let Some(member) = waiting.remove(&next) {
            inner.write_all(&member)?;
            next += 1;
        }
    }
    Ok(inner)
}

impl Write for ParallelGzip {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FinishWrite for ParallelGzip {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        // An empty stream still becomes one (empty) member: zero bytes are not valid gzip.
        if !self.buf.is_empty() || self.seq == 0 {
            self.dispatch()?;
        }
        self.shutdown()?.finish()
    }
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Collect(Arc<Mutex<Vec<u8>>>);
    impl Write for Collect {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl FinishWrite for Collect {
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn round_trip(input: &[u8], threads: usize) -> Vec<u8> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut gz = Box::new(ParallelGzip::new(Box::new(Collect(out.clone())), 6, threads));
        for piece in input.chunks(100_003) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap();
        let compressed = out.lock().unwrap().clone();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&compressed[..]).read_to_end(&mut back).unwrap();
        back
    }

    #[test]
    fn members_concatenate_to_the_input() {
        let input: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8 ^ (i / 7919) as u8).collect();
        for threads in [1, 2, 4] {
            assert_eq!(round_trip(&input, threads), input);
        }
        assert_eq!(round_trip(b"", 2), b"");
    }
}
