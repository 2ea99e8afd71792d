//! The sidecar manifest: what a backup holds and how to check it. A backup exists when its
//! manifest does; the manifest is written last, atomically.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::names::{Kind, Stem};
use crate::vocab::TierName;

/// The manifest format this build writes; older ones are read, newer ones refused.
pub const FORMAT_VERSION: u32 = 1;

/// Manifests are small; a larger file is not one of ours.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Everything pgtier records about one backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub kind: Kind,
    pub project: String,
    pub env: String,
    /// The database dumped (for globals: the database connected to).
    pub database: String,
    pub created_at: DateTime<Utc>,
    /// The stored file's name, in the same folder as the manifest.
    pub file: String,
    /// `custom` (pg_dump -Fc), `plain` (SQL text: globals and adopted SQL dumps).
    pub format: String,
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// Size of the stored bytes.
    pub size: u64,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The database's owner, encoding and locale, so a restore onto a new server recreates it alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_settings: Option<crate::vocab::DbInfo>,
    /// SHA-256 over the archive's schema objects and database properties (its table of
    /// contents), so two backups' schemas can be compared without opening them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_fingerprint: Option<String>,
    /// How many large objects the archive holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<u64>,
    /// Row counts per table (`schema.table`), taken in the dump's snapshot. None when unknown
    /// (adopted files, globals).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tables_or_nothing")]
    pub tables: Option<BTreeMap<String, u64>>,
    /// Set when the row counts were left unread (`without_row_counts`): such a manifest is for
    /// showing, never for comparing counts or for writing back.
    #[serde(skip)]
    pub tables_unread: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The tiers this backup was assigned when it was taken (stable: never re-decided).
    #[serde(default)]
    pub tiers: Vec<TierName>,
    /// How long pg_dump and the pipeline took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Set when the manifest was written by `adopt` for a file made by the old scripts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// Restore drills of this backup, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verifications: Vec<Verification>,
}

pub use crate::vocab::EncryptionInfo;

/// The stored file as a manifest describes it (see `Manifest::new`).
#[derive(Debug, Clone)]
pub struct Stored {
    /// `custom` (pg_dump -Fc) or `plain` (SQL text).
    pub format: &'static str,
    pub compression: &'static str,
    pub size: u64,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
}

/// The outcome of one restore drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// `local` or `remote`.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// What the drill could not compare, e.g. "restored; no row counts to compare".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Optional checks the drill could not run here, each with why (`amcheck: …`); the row
    /// counts and the schema comparison are never among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl Manifest {
    /// What every backup's manifest has: whose backup it is, which stored file (`file`, next to
    /// the manifest) in which `format` and `compression`, and the stored bytes' size and
    /// SHA-256. The facts a dump adds (versions, settings, fingerprint, row counts, tiers,
    /// encryption) start empty and are set by the caller.
    pub fn new(project: &str, env: &str, database: &str, stem: &Stem, file: String, stored: Stored) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            kind: stem.kind,
            project: project.to_string(),
            env: env.to_string(),
            database: database.to_string(),
            created_at: stem.time,
            file,
            format: stored.format.to_string(),
            compression: stored.compression.to_string(),
            compression_level: None,
            encryption: None,
            size: stored.size,
            sha256: stored.sha256,
            pg_dump_version: None,
            server_version: None,
            database_settings: None,
            schema_fingerprint: None,
            large_objects: None,
            tables: None,
            tables_unread: false,
            tags: Vec::new(),
            tiers: Vec::new(),
            duration_seconds: None,
            adopted: false,
            verifications: Vec::new(),
        }
    }

    /// How the retention planner sees the backup `stem` this manifest describes.
    pub fn candidate(&self, stem: &Stem) -> crate::records::retention::Candidate<Stem> {
        crate::records::retention::Candidate {
            id: stem.clone(),
            created_at: stem.time,
            tags: self.tags.clone(),
            recorded_tiers: Some(self.tiers.iter().copied().collect()),
        }
    }

    /// The backup's stem, parsed from its file name.
    pub fn stem(&self) -> Option<Stem> {
        Stem::split_file_name(&self.file).map(|(s, _)| s)
    }

    /// The manifest's own file name: `{stem}.json`.
    pub fn manifest_name(&self) -> Result<String> {
        Ok(format!("{}.json", self.checked_stem()?))
    }

    /// The stem, or an error if the manifest names a file that is not a backup name.
    pub fn checked_stem(&self) -> Result<Stem> {
        self.stem().ok_or_else(|| Error::Failed(format!("manifest names file {:?}, which is not a pgtier backup name", self.file)))
    }

    /// The newest successful verification, if any.
    pub fn last_verified_ok(&self) -> Option<&Verification> {
        self.verifications.iter().rev().find(|v| v.ok)
    }

    /// Parses and checks a manifest's bytes; `expected_stem` is the stem its own file name carries.
    pub fn from_bytes(bytes: &[u8], source: &Path, expected_stem: Option<&Stem>) -> Result<Manifest> {
        // The version first: a manifest from a newer pgtier may have fields this one does not know.
        #[derive(Deserialize)]
        struct Version {
            format_version: Option<u64>,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| Error::Failed(format!("{}: not a valid pgtier manifest: {e}", source.display())))?;
        match version.format_version {
            Some(v) if v >= 1 && v <= u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::Failed(format!(
                    "{}: manifest format {v} is not supported by this pgtier (max {FORMAT_VERSION}); upgrade pgtier to read it",
                    source.display()
                )));
            }
            None => return Err(Error::Failed(format!("{}: not a valid pgtier manifest: no format_version", source.display()))),
        }
        let mut m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::Failed(format!("{}: not a valid pgtier manifest: {e}", source.display())))?;
        m.tables_unread = LIGHT.get();
        // The file name comes from the manifest; refuse anything that could leave the folder.
        let (stem, rest) = Stem::split_file_name(&m.file)
            .ok_or_else(|| Error::Failed(format!("{}: names file {:?}, which is not a pgtier backup name", source.display(), m.file)))?;
        if m.file.contains('/') || m.file.contains('\\') || rest.contains("..") || rest == ".json" || !valid_suffix(rest) {
            return Err(Error::Failed(format!("{}: names file {:?}, which is not a pgtier backup file", source.display(), m.file)));
        }
        if let Some(want) = expected_stem
            && &stem != want
        {
            return Err(Error::Failed(format!("{}: describes {:?}, not {want}", source.display(), m.file)));
        }
        if stem.kind != m.kind {
            return Err(Error::Failed(format!("{}: kind {:?} does not match file {:?}", source.display(), m.kind, m.file)));
        }
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Failed(format!("{}: sha256 is not 64 hex digits", source.display())));
        }
        Ok(m)
    }

    /// Reads and checks the manifest at `path`.
    pub fn read(path: &Path) -> Result<Manifest> {
        let meta = std::fs::metadata(path).at(path)?;
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(Error::Failed(format!("{}: {} bytes is too large for a manifest", path.display(), meta.len())));
        }
        let bytes = std::fs::read(path).at(path)?;
        let expected = path.file_stem().and_then(|s| s.to_str()).and_then(Stem::parse);
        Manifest::from_bytes(&bytes, path, expected.as_ref())
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        assert!(!self.tables_unread, "a manifest read without its row counts must never be written back");
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }
}

thread_local! {
    static LIGHT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with manifests read without their per-table row counts, which are most of a large
/// database's manifest: for commands that only show backups (`list`, `status`, `audit`).
pub fn without_row_counts<T>(f: impl FnOnce() -> T) -> T {
    let before = LIGHT.replace(true);
    let out = f();
    LIGHT.set(before);
    out
}

/// Runs `f` with manifests read whole, row counts included.
pub fn with_row_counts<T>(f: impl FnOnce() -> T) -> T {
    let before = LIGHT.replace(false);
    let out = f();
    LIGHT.set(before);
    out
}

fn tables_or_nothing<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<BTreeMap<String, u64>>, D::Error> {
    if LIGHT.get() {
        serde::de::IgnoredAny::deserialize(d)?;
        return Ok(None);
    }
    Option::<BTreeMap<String, u64>>::deserialize(d)
}

/// The suffixes a backup file may carry after its stem.
fn valid_suffix(rest: &str) -> bool {
    let mut parts = rest.strip_prefix('.').unwrap_or("").split('.');
    let Some(payload) = parts.next() else { return false };
    if !matches!(payload, "dump" | "sql" | "tar") {
        return false;
    }
    parts.all(|p| matches!(p, "gz" | "zst" | "age" | "gpg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        for ok in [".dump", ".dump.gz", ".dump.zst.age", ".sql.gz.gpg", ".sql.gz", ".tar", ".tar.age"] {
            assert!(valid_suffix(ok), "{ok}");
        }
        for bad in [".json", ".dump.exe", "", ".gz", ".dump.gz/../../x"] {
            assert!(!valid_suffix(bad), "{bad}");
        }
    }
}
