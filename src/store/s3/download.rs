//! Downloads of the S3 store: the body streams from the async runtime through a bounded
//! channel to a synchronous reader; a connection that drops mid-stream is resumed with a
//! ranged GET of the same version; a signal ends the download where it waits. A large object
//! comes in ranged parts fetched in parallel (`PARTS_IN_FLIGHT` of `PART_SIZE` at most, so
//! memory stays bounded) and handed on in order: the reader sees one stream either way, and
//! whoever reads it checks its SHA-256 against the manifest as for any download.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::runtime::signalled;
use super::{S3Store, describe};
use crate::store::StoreError;

/// Objects from this size on download in parallel ranged parts.
pub const PARALLEL_FROM: u64 = 64 << 20;
/// The size of one ranged part.
pub const PART_SIZE: u64 = 8 << 20;
/// Parts downloading or waiting their turn at once: at most this many parts in memory.
pub const PARTS_IN_FLIGHT: usize = 4;
/// Attempts per part (or per resume of a single stream) before the source counts as lost.
const RESUMES: u32 = 5;

impl S3Store {
    /// A streaming reader of `key`: the body arrives through a channel from the runtime, and a
    /// dropped connection is resumed with a ranged GET (`If-Match` the ETag) up to five times.
    pub(super) fn download(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let first = self.block(async {
            self.client().get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| self.other("reading", key, e))
        })?;
        let total = first.content_length().unwrap_or(0) as u64;
        let etag = first.e_tag().map(str::to_string);
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
        let (client, bucket, key_s) = (self.client().clone(), self.bucket.clone(), key.to_string());
        let on_signal = tx.clone();
        if total >= PARALLEL_FROM {
            // The first answer told the size and the version; its body is dropped unread and
            // every part is a ranged GET of that version.
            drop(first);
            let parts = Parts { client: client.clone(), bucket, key: key_s, etag, total };
            self.rt.spawn(async move {
                tokio::select! {
                    _ = parts.send_in_order(tx) => {}
                    _ = signalled() => {
                        let _ = on_signal.send(Err(crate::signals::cancelled())).await;
                    }
                }
            });
            return Ok(Box::new(ChannelReader { rx, buf: Bytes::new(), _rt: Arc::clone(&self.rt) }));
        }
        let work = async move {
            let mut body = first.body;
            let mut offset = 0u64;
            let mut resumes = 0;
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        offset += chunk.len() as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                    None if offset >= total => return,
                    // An error after the last byte is not a dropped connection: say it as it is.
                    Some(Err(e)) if offset >= total => {
                        let _ = tx.send(Err(io::Error::other(format!("downloading {key_s}: {e}")))).await;
                        return;
                    }
                    failed => {
                        // The connection dropped mid-stream: continue from where it stopped.
                        let why = match failed {
                            Some(Err(e)) => e.to_string(),
                            _ => format!("the stream ended at byte {offset} of {total}"),
                        };
                        if resumes >= RESUMES {
                            let _ = tx.send(Err(crate::signals::source_lost(format!("downloading {key_s}: {why}")))).await;
                            return;
                        }
                        resumes += 1;
                        tracing::warn!("download of {key_s} interrupted at byte {offset} ({why}); resuming");
                        tokio::time::sleep(Duration::from_millis(200 * (1 << resumes))).await;
                        let mut req = client.get_object().bucket(&bucket).key(&key_s).range(format!("bytes={offset}-"));
                        if let Some(t) = &etag {
                            req = req.if_match(t);
                        }
                        match req.send().await {
                            Ok(o) => body = o.body,
                            Err(e) => {
                                let _ = tx.send(Err(crate::signals::source_lost(format!("downloading {key_s}: {}", describe(&e))))).await;
                                return;
                            }
                        }
                    }
                }
            }
        };
        // A signal ends the download where it waits (a stalled body, a resume's backoff): the
        // reader gets the error nothing retries.
        self.rt.spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = signalled() => {
                    let _ = on_signal.send(Err(crate::signals::cancelled())).await;
                }
            }
        });
        Ok(Box::new(ChannelReader { rx, buf: Bytes::new(), _rt: Arc::clone(&self.rt) }))
    }
}

/// One object downloaded in ranged parts of one version.
struct Parts {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    etag: Option<String>,
    total: u64,
}

/// Part downloads under way, in order; aborted when dropped.
struct InFlight(std::collections::VecDeque<tokio::task::JoinHandle<io::Result<Vec<Bytes>>>>);

impl std::ops::Deref for InFlight {
    type Target = std::collections::VecDeque<tokio::task::JoinHandle<io::Result<Vec<Bytes>>>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for InFlight {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.iter().for_each(|h| h.abort());
    }
}

impl Parts {
    /// Fetches the parts, `PARTS_IN_FLIGHT` at a time, and sends their bytes to `tx` in order.
    /// The parts still in flight are aborted however this ends (an error, the reader gone, or
    /// this future dropped on a signal).
    async fn send_in_order(self, tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>) {
        let this = Arc::new(self);
        let count = this.total.div_ceil(PART_SIZE);
        let mut pending = InFlight(std::collections::VecDeque::new());
        let mut next = 0u64;
        loop {
            while pending.len() < PARTS_IN_FLIGHT && next < count {
                let part = Arc::clone(&this);
                let start = next * PART_SIZE;
                let end = (start + PART_SIZE).min(this.total);
                pending.push_back(tokio::spawn(async move { part.fetch(start, end).await }));
                next += 1;
            }
            // Awaited in place, so a drop meanwhile aborts it with the others.
            let Some(first) = pending.front_mut() else { return };
            let done = first.await;
            pending.pop_front();
            let chunks = match done {
                Ok(Ok(chunks)) => chunks,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("downloading {}: {e}", this.key)))).await;
                    return;
                }
            };
            for c in chunks {
                if tx.send(Ok(c)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Bytes `start..end` of the object's version, resumed where a dropped connection left them.
    async fn fetch(&self, start: u64, end: u64) -> io::Result<Vec<Bytes>> {
        let mut chunks = Vec::new();
        let mut at = start;
        let mut attempts = 0;
        while at < end {
            let mut req = self.client.get_object().bucket(&self.bucket).key(&self.key).range(format!("bytes={at}-{}", end - 1));
            if let Some(t) = &self.etag {
                req = req.if_match(t);
            }
            let why = match req.send().await {
                Ok(o) => {
                    let mut body = o.body;
                    loop {
                        match body.next().await {
                            Some(Ok(c)) => {
                                at += c.len() as u64;
                                chunks.push(c);
                            }
                            Some(Err(e)) => break e.to_string(),
                            None if at >= end => break String::new(),
                            None => break format!("part {start}-{end} ended at byte {at}"),
                        }
                    }
                }
                Err(e) => describe(&e),
            };
            if at >= end {
                break;
            }
            attempts += 1;
            if attempts >= RESUMES {
                return Err(crate::signals::source_lost(format!("downloading {}: {why}", self.key)));
            }
            tracing::warn!("download of {} bytes {at}-{end} interrupted ({why}); resuming", self.key);
            tokio::time::sleep(Duration::from_millis(200 * (1 << attempts))).await;
        }
        if at > end {
            return Err(io::Error::other(format!("downloading {}: the store sent more than bytes {start}-{end}", self.key)));
        }
        Ok(chunks)
    }
}

/// The synchronous end of a download; keeps the runtime running the download alive.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    buf: Bytes,
    _rt: Arc<tokio::runtime::Runtime>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}
