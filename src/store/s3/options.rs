//! What the S3 client needs to reach one bucket, given by the remote layer (the store does not
//! read the configuration).

use std::time::Duration;

/// How to reach one bucket: what the remote layer reads from a destination's settings.
#[derive(Debug, Clone)]
pub struct S3Options {
    pub bucket: String,
    /// Another endpoint than AWS's (MinIO, LocalStack, a proxy).
    pub endpoint_url: Option<String>,
    /// The region, else the standard chain's, else us-east-1.
    pub region: Option<String>,
    pub force_path_style: bool,
    /// How long one request may go without an answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Tries per request (`PGTIER_S3_MAX_ATTEMPTS` overrides it).
    pub attempts: u32,
    /// Parts sent or read at once.
    pub concurrency: usize,
    /// Send the newer checksum headers only where an operation requires them.
    pub checksums_when_required: bool,
    /// The destination's name, for messages that say which setting to change.
    pub name: String,
    /// Fixed credentials instead of the standard chain (environment, profile, web identity,
    /// instance role); for tools and tests that must not touch the process environment.
    pub credentials: Option<StaticCredentials>,
}

/// An access key pair. Its `Debug` shows the key id only.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticCredentials({}, secret withheld)", self.access_key_id)
    }
}
