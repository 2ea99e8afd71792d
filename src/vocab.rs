//! The vocabulary the layers share: plain data types that several parts and operations name
//! (a compression, an encryption block and what a manifest records of it, a database's
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
