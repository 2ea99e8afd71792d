//! The vocabulary the layers share: plain data types that several parts and operations name
//! (tiers, where they live, storage classes, a compression, how to reach a server, an encryption block and what a manifest records of it, a database's
//! settings, an audit finding). It imports nothing of pgtier's, so every module may use it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a backup stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip(u32),
    Zstd(i32),
    None,
}

impl Compression {
    /// The file-name extension (without dot), if any.
    pub fn ext(self) -> Option<&'static str> {
        match self {
            Compression::Gzip(_) => Some("gz"),
            Compression::Zstd(_) => Some("zst"),
            Compression::None => None,
        }
    }

    /// The name recorded in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip(_) => "gzip",
            Compression::Zstd(_) => "zstd",
            Compression::None => "none",
        }
    }
}

/// An encryption block, with paths resolved; keys are parsed by `crypto` at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionConfig {
    Age {
        recipients: Vec<String>,
        recipients_file: Option<PathBuf>,
        identity_file: Option<PathBuf>,
        passphrase_file: Option<PathBuf>,
    },
    Gpg {
        passphrase_file: Option<PathBuf>,
        recipient_keys: Vec<PathBuf>,
        secret_key_file: Option<PathBuf>,
        secret_key_passphrase_file: Option<PathBuf>,
    },
}

/// How a backup is encrypted: the scheme and public identifiers, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionInfo {
    /// `age` or `gpg`.
    pub scheme: String,
    /// age recipients (public keys) or OpenPGP key fingerprints; `passphrase` for symmetric.
    pub recipients: Vec<String>,
}

/// A database's owner, encoding and locale: what a new database must copy from the one it
/// replaces, and what a manifest records so a host-loss restore recreates it alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbInfo {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
}

/// One problem an audit found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A short rule name (`checksum`, `stale`, `due-for-deletion`, ...).
    pub rule: String,
    /// The file, object key or config file concerned.
    pub file: String,
    pub message: String,
}

impl Finding {
    pub fn new(rule: &str, file: impl std::fmt::Display, message: impl Into<String>) -> Finding {
        Finding { rule: rule.into(), file: file.to_string(), message: message.into() }
    }
}

/// A retention tier, ordered from the shortest period to the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierName {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl TierName {
    /// Every tier, shortest period first.
    pub const ALL: [TierName; 5] = [TierName::Hourly, TierName::Daily, TierName::Weekly, TierName::Monthly, TierName::Yearly];

    /// The tier's name as used in paths and config.
    pub fn as_str(self) -> &'static str {
        match self {
            TierName::Hourly => "hourly",
            TierName::Daily => "daily",
            TierName::Weekly => "weekly",
            TierName::Monthly => "monthly",
            TierName::Yearly => "yearly",
        }
    }

    /// Parses a tier name.
    pub fn parse(s: &str) -> Option<TierName> {
        TierName::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The approximate length of one period in hours (for billing-duration sanity checks).
    pub fn period_hours(self) -> u64 {
        match self {
            TierName::Hourly => 1,
            TierName::Daily => 24,
            TierName::Weekly => 7 * 24,
            TierName::Monthly => 30 * 24,
            TierName::Yearly => 365 * 24,
        }
    }
}

impl std::fmt::Display for TierName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a tier keeps its copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Local,
    Remote,
}

/// An S3 storage class, with what it costs to delete early and whether reads need a thaw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageClass {
    Standard,
    StandardIa,
    OnezoneIa,
    IntelligentTiering,
    GlacierIr,
    Glacier,
    DeepArchive,
}

impl StorageClass {
    pub const ALL: [StorageClass; 7] = [
        StorageClass::Standard,
        StorageClass::StandardIa,
        StorageClass::OnezoneIa,
        StorageClass::IntelligentTiering,
        StorageClass::GlacierIr,
        StorageClass::Glacier,
        StorageClass::DeepArchive,
    ];

    /// The name S3 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::StandardIa => "STANDARD_IA",
            StorageClass::OnezoneIa => "ONEZONE_IA",
            StorageClass::IntelligentTiering => "INTELLIGENT_TIERING",
            StorageClass::GlacierIr => "GLACIER_IR",
            StorageClass::Glacier => "GLACIER",
            StorageClass::DeepArchive => "DEEP_ARCHIVE",
        }
    }

    /// Parses an S3 storage class name (as S3 writes it).
    pub fn parse(s: &str) -> Option<StorageClass> {
        StorageClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The minimum billable storage duration: deleting earlier is charged as if kept this long.
    pub fn min_days(self) -> u64 {
        match self {
            StorageClass::Standard | StorageClass::IntelligentTiering => 0,
            StorageClass::StandardIa | StorageClass::OnezoneIa => 30,
            StorageClass::GlacierIr | StorageClass::Glacier => 90,
            StorageClass::DeepArchive => 180,
        }
    }

    /// Whether a GET needs a `RestoreObject` first.
    pub fn needs_thaw(self) -> bool {
        matches!(self, StorageClass::Glacier | StorageClass::DeepArchive)
    }
}

impl serde::Serialize for StorageClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for StorageClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An S3 Object Lock mode: COMPLIANCE (nobody can delete or shorten it, not even the root
/// account) or GOVERNANCE (only identities allowed `s3:BypassGovernanceRetention` can).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    Compliance,
    Governance,
}

impl LockMode {
    /// The name S3 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }

    pub fn parse(s: &str) -> Option<LockMode> {
        [LockMode::Compliance, LockMode::Governance].into_iter().find(|m| m.as_str() == s)
    }
}

impl Serialize for LockMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach PostgreSQL: through `docker exec` into a container, or directly with libpq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub container: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: String,
    pub password_file: Option<PathBuf>,
}
