//! Which PostgreSQL client tools an operation uses. A backup needs a pg_dump at least as new as
//! the server (`Pg::connect` picks it). A restore needs a pg_restore that reads the archive's
//! format and whose session the target server accepts: the target's own major where it is
//! installed, else the oldest newer one the server accepts, else an older one that reads the
//! archive, else a newer one whose script is passed through psql without the settings an older
//! server does not know. Where none fits, it names the major to install, before anything is
//! created.

use std::path::PathBuf;

use super::{Pg, Version, versioned_bindirs};
use crate::error::{Error, Result};

/// The newest archive format a pg_restore of `major` reads: 1.14 up to 15, 1.15 for 16, 1.16
/// from 17 on.
pub fn max_archive(major: u32) -> (u8, u8) {
    match major {
        0..=11 => (1, 13),
        12..=15 => (1, 14),
        16 => (1, 15),
        _ => (1, 16),
    }
}

/// The archive format a pg_dump of `major` writes.
pub fn written_by(major: u32) -> (u8, u8) {
    max_archive(major)
}

/// The oldest pg_restore major that reads archive format `v`.
pub fn reader_of(v: (u8, u8)) -> u32 {
    match v {
        (1, 16..) => 17,
        (1, 15) => 16,
        (1, 14) => 12,
        _ => 11,
    }
}

/// Whether a pg_restore of `tool` can talk to a server of `server` directly: pg_restore 17 and
/// later open their session with `SET transaction_timeout`, which servers up to 16 refuse.
pub fn direct_into(tool: u32, server: u32) -> bool {
    tool < 17 || server >= 17
}

/// The pg_restore a restore uses.
#[derive(Debug, Clone)]
pub struct RestoreTool {
    /// Its folder (None: the container's, or PATH's).
    pub bindir: Option<PathBuf>,
    pub version: Version,
    /// Its script goes through psql (a pg_restore newer than 16 into a server up to 16), less
    /// the settings that server does not know; no parallel jobs then.
    pub through_psql: bool,
}

impl RestoreTool {
    /// How it is said in reports: `pg_restore 16.15` (`, through psql`).
    pub fn describe(&self) -> String {
        format!("pg_restore {}{}", self.version, if self.through_psql { " (its script through psql)" } else { "" })
    }
}

impl Pg {
    /// The pg_restore that restores an archive of format `archive` into this server, or why
    /// there is none here (exit 2, naming what to install).
    pub fn restore_tool(&self, archive: (u8, u8)) -> Result<RestoreTool> {
        let server = self.server_version().major;
        let candidates = self.restore_candidates()?;
        let readers: Vec<&RestoreTool> = candidates.iter().filter(|t| max_archive(t.version.major) >= archive).collect();
        let need = reader_of(archive);
        if readers.is_empty() {
            let have: Vec<String> = candidates.iter().map(|t| t.version.to_string()).collect();
            return Err(Error::Unsupported(format!(
                "this backup is a pg_dump archive of format {}.{}, which only pg_restore {need} or newer reads; this host has pg_restore {}. Install the PostgreSQL {} client tools{}",
                archive.0,
                archive.1,
                if have.is_empty() { "nowhere".to_string() } else { have.join(", ") },
                need.max(server),
                self.where_to_install()
            )));
        }
        let pick = readers
            .iter()
            .find(|t| t.version.major == server)
            .or_else(|| {
                readers.iter().filter(|t| t.version.major > server && direct_into(t.version.major, server)).min_by_key(|t| t.version)
            })
            .or_else(|| readers.iter().filter(|t| t.version.major < server).max_by_key(|t| t.version))
            .copied()
            .unwrap_or(readers[0]);
        let mut pick = pick.clone();
        pick.through_psql = !direct_into(pick.version.major, server);
        Ok(pick)
    }

    /// This connection with the tools of `t`'s folder.
    pub fn with_restore_tool(&self, t: &RestoreTool) -> Pg {
        let mut pg = self.clone();
        if t.bindir.is_some() {
            pg.bindir = t.bindir.clone();
        }
        pg
    }

    /// Every pg_restore this connection could use: the container's, the configured folder's,
    /// or each installed major's (and PATH's when none is).
    fn restore_candidates(&self) -> Result<Vec<RestoreTool>> {
        if self.conn.container.is_some() || self.fixed_bindir {
            let version = self.tool_version("pg_restore")?;
            return Ok(vec![RestoreTool { bindir: self.bindir.clone(), version, through_psql: false }]);
        }
        let mut out = Vec::new();
        for (_, dir) in versioned_bindirs() {
            if !dir.join("pg_restore").is_file() {
                continue;
            }
            let probe = Pg { bindir: Some(dir.clone()), ..self.clone() };
            if let Ok(version) = probe.tool_version("pg_restore") {
                out.push(RestoreTool { bindir: Some(dir), version, through_psql: false });
            }
        }
        if out.is_empty() {
            let probe = Pg { bindir: None, ..self.clone() };
            if let Ok(version) = probe.tool_version("pg_restore") {
                out.push(RestoreTool { bindir: None, version, through_psql: false });
            }
        }
        Ok(out)
    }

    /// Where tools are installed for this connection, for messages.
    pub(super) fn where_to_install(&self) -> &'static str {
        if self.conn.container.is_some() {
            " in the container"
        } else if self.fixed_bindir {
            " and point pg_bindir in pgtier.yml at them"
        } else {
            " (Debian: postgresql-client-N) or set pg_bindir in pgtier.yml"
        }
    }
}

/// The major of a version string as pg_dump records it (`17.11`, `16.4 (Debian 16.4-1)`).
pub fn major_of(version: &str) -> Option<u32> {
    Version::from_tool_output(version).map(|v| v.major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_and_servers() {
        assert_eq!(max_archive(15), (1, 14));
        assert_eq!(max_archive(16), (1, 15));
        assert_eq!(max_archive(18), (1, 16));
        assert_eq!(reader_of((1, 16)), 17);
        assert_eq!(reader_of((1, 14)), 12);
        assert!(direct_into(16, 13) && direct_into(18, 17) && !direct_into(17, 16));
        assert_eq!(major_of("16.4 (Debian 16.4-1.pgdg120+1)"), Some(16));
    }
}
