//! Multipart transfers of the S3 store: uploads with parallel parts, each with a CRC32C, a
//! full-object CRC32C at completion, resumed part by part after a kill and aborted after a
//! failure; and server-side copies of objects too large for one CopyObject.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::{S3Store, b64, crc32c, describe, encode_key, part_size};
use crate::store::{PutOptions, StoreError};
use crate::ui::Progress;
use crate::vocab::StorageClass;

impl S3Store {
    /// The unfinished upload of `key` a killed run left, if any.
    async fn find_upload(&self, key: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client()
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| self.other("listing uploads of", key, e))?;
        Ok(out.uploads().iter().filter(|u| u.key() == Some(key)).filter_map(|u| u.upload_id().map(str::to_string)).next_back())
    }

    /// Parts already uploaded: number -> (size, CRC32C base64, ETag).
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<std::collections::BTreeMap<i32, (u64, String, String)>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client()
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| self.other("listing parts of", key, e))?;
            for p in page.parts() {
                if let (Some(n), Some(size), Some(etag)) = (p.part_number(), p.size(), p.e_tag()) {
                    out.insert(n, (size as u64, p.checksum_crc32_c().unwrap_or("").to_string(), etag.to_string()));
                }
            }
            if page.is_truncated() == Some(true) {
                marker = page.next_part_number_marker().map(str::to_string);
            } else {
                return Ok(out);
            }
        }
    }

    /// Whether `key` exists with `size` bytes and the SHA-256 this upload carried.
    fn completed_as_expected(&self, key: &str, size: u64, sha256: Option<&str>) -> bool {
        use crate::store::Store as _;
        match self.head(key) {
            Ok(m) => m.size == size && sha256.is_some() && m.sha256.as_deref() == sha256,
            Err(_) => false,
        }
    }

    pub(super) fn put_multipart(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError> {
        let mut file = crate::fsutil::open_own(path).map_err(|e| StoreError::Other(e.to_string()))?;
        let size = file.metadata().map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?.len();
        let psize = part_size(size);
        let parts = size.div_ceil(psize);
        let (upload_id, done) = self.block(async {
            if let Some(id) = self.find_upload(key).await? {
                // Without part checksums a part cannot be proven whole: send them all again.
                let done = if self.legacy() { Default::default() } else { self.list_parts(key, &id).await? };
                tracing::info!("resuming the upload of {} ({} of {parts} parts already there)", self.url(key), done.len());
                return Ok::<_, StoreError>((id, done));
            }
            let mut req = self.client().create_multipart_upload().bucket(&self.bucket).key(key).storage_class(opts.class.as_str().into());
            if !self.legacy() {
                req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C).checksum_type(ChecksumType::FullObject);
            }
            if let Some(l) = &opts.lock {
                req = req.object_lock_mode(super::object_lock::mode(l)).object_lock_retain_until_date(super::object_lock::until(l));
            }
            if let Some(sha) = &opts.sha256 {
                req = req.metadata("sha256", sha);
            }
            let out = req.send().await.map_err(|e| self.other("starting the upload of", key, e))?;
            let id = out
                .upload_id()
                .ok_or_else(|| StoreError::Other(format!("{}: the store returned no upload id", self.url(key))))?
                .to_string();
            Ok((id, Default::default()))
        })?;

        let result =
            self.upload_parts(key, &upload_id, &mut file, size, psize, &done, progress).and_then(|(completed, full_crc, sha256)| {
                // Every part was hashed as it was read and sent: the object comes into being only
                // for the manifest's bytes.
                crate::store::check_sent(&self.url(key), opts, size, &sha256)?;
                self.block(async {
                    let legacy = self.legacy();
                    let completed = if legacy {
                        completed
                            .into_iter()
                            .map(|p| {
                                CompletedPart::builder()
                                    .part_number(p.part_number().unwrap_or(0))
                                    .set_e_tag(p.e_tag().map(str::to_string))
                                    .build()
                            })
                            .collect()
                    } else {
                        completed
                    };
                    let body = CompletedMultipartUpload::builder().set_parts(Some(completed)).build();
                    let mut req = self
                        .client()
                        .complete_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .multipart_upload(body);
                    if !legacy {
                        req = req
                            .checksum_crc32_c(b64(&full_crc.to_be_bytes()))
                            .checksum_type(ChecksumType::FullObject)
                            .mpu_object_size(size as i64);
                    }
                    req.send().await.map_err(|e| self.other("completing the upload of", key, e))
                })
            });
        match result {
            Ok(_) => Ok(()),
            // The completion may have happened with its answer lost (a dropped connection, then
            // a retry told NoSuchUpload): the object itself says whether the upload is done.
            Err(e)
                if !matches!(e, StoreError::Mismatch(_) | StoreError::Cancelled)
                    && self.completed_as_expected(key, size, opts.sha256.as_deref()) =>
            {
                tracing::info!(
                    "{}: the store's answer to completing the upload was lost ({e}), but the object is there, whole",
                    self.url(key)
                );
                Ok(())
            }
            Err(e) => {
                // A failed upload is aborted so nothing half-made lingers; a killed one is resumed.
                // An interrupted upload is kept: the next run resumes it part by part.
                if matches!(e, StoreError::Cancelled) {
                    return Err(e);
                }
                let aborted = self.block(async {
                    self.client()
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .send()
                        .await
                        .map_err(|a| StoreError::Other(describe(&a)))
                });
                if let Err(a) = aborted {
                    tracing::warn!("could not abort the failed upload of {} ({a}); the next run cleans it up", self.url(key));
                }
                Err(e)
            }
        }
    }

    /// Reads the file part by part, computing each part's CRC32C and the whole object's, and
    /// uploads the parts not already there, `concurrency` at a time.
    #[allow(clippy::too_many_arguments)]
    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        file: &mut std::fs::File,
        size: u64,
        psize: u64,
        done: &std::collections::BTreeMap<i32, (u64, String, String)>,
        progress: &Progress,
    ) -> Result<(Vec<CompletedPart>, u32, String), StoreError> {
        use sha2::Digest as _;
        let sem = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut full = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        let mut sha = sha2::Sha256::new();
        let mut handles = Vec::new();
        let mut completed = Vec::new();
        let mut offset = 0u64;
        let mut n = 0i32;
        while offset < size {
            if crate::signals::interrupted() {
                return Err(StoreError::Cancelled);
            }
            n += 1;
            let len = psize.min(size - offset) as usize;
            let mut buf = vec![0u8; len];
            file.read_exact(&mut buf).map_err(|e| StoreError::Other(format!("reading part {n}: {e}")))?;
            offset += len as u64;
            full.update(&buf);
            sha.update(&buf);
            let crc = b64(&crc32c(&buf).to_be_bytes());
            if let Some((psz, pcrc, etag)) = done.get(&n)
                && *psz == len as u64
                && *pcrc == crc
            {
                completed.push(CompletedPart::builder().part_number(n).e_tag(etag).checksum_crc32_c(crc).build());
                progress.inc(len as u64);
                continue;
            }
            let permit =
                self.block(async { sem.clone().acquire_owned().await.map_err(|e| StoreError::Other(format!("upload slots: {e}"))) })?;
            let (client, bucket, key_s, id, progress, legacy) =
                (self.client().clone(), self.bucket.clone(), key.to_string(), upload_id.to_string(), progress.clone(), self.legacy());
            handles.push(self.rt.spawn(async move {
                let mut req = client.upload_part().bucket(bucket).key(&key_s).upload_id(id).part_number(n);
                if !legacy {
                    req = req.checksum_crc32_c(&crc);
                } else {
                    req = req.content_md5(super::object_lock::md5_b64(&buf));
                }
                let out = req.body(ByteStream::from(Bytes::from(buf))).send().await;
                drop(permit);
                let out = out.map_err(|e| (n, super::rejects_checksums(e.code(), e.message().unwrap_or("")), describe(&e)))?;
                progress.inc(len as u64);
                Ok::<_, (i32, bool, String)>(
                    CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_string)).checksum_crc32_c(crc).build(),
                )
            }));
            // Stop early if a part already failed.
            if let Some(pos) = handles.iter().position(|h| h.is_finished()) {
                completed.push(self.part_done(key, handles.swap_remove(pos))?);
            }
        }
        for h in handles {
            completed.push(self.part_done(key, h)?);
        }
        completed.sort_by_key(|p| p.part_number());
        Ok((completed, full.finalize() as u32, hex::encode(sha.finalize())))
    }

    /// Waits for one part's upload and returns its completion record, or the error naming it.
    fn part_done(
        &self,
        key: &str,
        h: tokio::task::JoinHandle<Result<CompletedPart, (i32, bool, String)>>,
    ) -> Result<CompletedPart, StoreError> {
        match self.block(async { Ok(h.await) })? {
            Ok(Ok(p)) => {
                crate::fault::point("upload:after-part");
                Ok(p)
            }
            Ok(Err((n, true, msg))) => Err(StoreError::ChecksumsRejected(format!("uploading part {n} of {}: {msg}", self.url(key)))),
            Ok(Err((n, false, msg))) => Err(StoreError::Other(format!("uploading part {n} of {}: {msg}", self.url(key)))),
            Err(e) => Err(StoreError::Other(format!("upload task failed: {e}"))),
        }
    }

    pub(super) fn copy_multipart(
        &self,
        from: &str,
        to: &str,
        class: StorageClass,
        size: u64,
        sha256: Option<String>,
        lock: Option<&crate::store::ObjectLock>,
    ) -> Result<(), StoreError> {
        let source = format!("{}/{}", self.bucket, encode_key(from));
        self.block(async {
            let mut req = self.client().create_multipart_upload().bucket(&self.bucket).key(to).storage_class(class.as_str().into());
            if let Some(sha) = &sha256 {
                req = req.metadata("sha256", sha);
            }
            if let Some(l) = lock {
                req = req.object_lock_mode(super::object_lock::mode(l)).object_lock_retain_until_date(super::object_lock::until(l));
            }
            let id = req.send().await.map_err(|e| self.other("starting the copy to", to, e))?.upload_id().unwrap_or_default().to_string();
            let psize = part_size(size).max(512 << 20);
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut n = 0;
            let result: Result<(), StoreError> = async {
                while offset < size {
                    n += 1;
                    let end = (offset + psize).min(size) - 1;
                    let out = self
                        .client()
                        .upload_part_copy()
                        .bucket(&self.bucket)
                        .key(to)
                        .upload_id(&id)
                        .part_number(n)
                        .copy_source(&source)
                        .copy_source_range(format!("bytes={offset}-{end}"))
                        .send()
                        .await
                        .map_err(|e| self.other("copying into", to, e))?;
                    parts.push(
                        CompletedPart::builder()
                            .part_number(n)
                            .set_e_tag(out.copy_part_result().and_then(|r| r.e_tag()).map(str::to_string))
                            .build(),
                    );
                    offset = end + 1;
                }
                self.client()
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(to)
                    .upload_id(&id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await
                    .map_err(|e| self.other("completing the copy to", to, e))?;
                Ok(())
            }
            .await;
            if result.is_err() {
                let _ = self.client().abort_multipart_upload().bucket(&self.bucket).key(to).upload_id(&id).send().await;
            }
            result
        })
    }
}
