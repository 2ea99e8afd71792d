//! Downloads of the S3 store: the body streams from the async runtime through a bounded
//! channel to a synchronous reader; a connection that drops mid-stream is resumed with a
//! ranged GET of the same version; a signal ends the download where it waits.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::runtime::signalled;
use super::{S3Store, describe};
use crate::store::StoreError;

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
                        if resumes >= 5 {
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
