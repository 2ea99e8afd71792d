//! Names that become paths: project and env names, and backup stems like `db_20250106_020000`.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Checks a project, env or tag name before it is used in a path; returns why it is unusable.
pub fn check_component(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 100 {
        return Err("must be at most 100 bytes".into());
    }
    if name.starts_with('.') {
        return Err(format!("{name:?} must not start with a dot"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("{name:?} contains {c:?}; use letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// What a backup holds: one database, or the cluster's roles and tablespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `pg_dump --format=custom` of one database; stem prefix `db`.
    Database,
    /// `pg_dumpall --globals-only`; stem prefix `globals`.
    Globals,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Database => "db",
            Kind::Globals => "globals",
        }
    }

    /// The extension of the uncompressed payload.
    pub fn payload_ext(self) -> &'static str {
        match self {
            Kind::Database => "dump",
            Kind::Globals => "sql",
        }
    }
}

/// The stem every file of one backup shares: `db_YYYYMMDD_HHMMSS`, with `-N` when a second
/// backup was taken within the same second.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stem {
    /// When the backup was taken (UTC, whole seconds).
    pub time: DateTime<Utc>,
    /// What it holds.
    pub kind: Kind,
    /// 1 for the first backup of a second, 2.. for later ones.
    pub seq: u32,
}

impl Stem {
    /// The stem of the first backup of `kind` taken at `time`.
    pub fn new(kind: Kind, time: DateTime<Utc>, seq: u32) -> Self {
        let time = DateTime::from_timestamp(time.timestamp(), 0).unwrap_or(time);
        Stem { time, kind, seq }
    }

    /// Parses `db_20250106_020000` or `db_20250106_020000-2`.
    pub fn parse(s: &str) -> Option<Stem> {
        let (kind, rest) = if let Some(r) = s.strip_prefix("db_") {
            (Kind::Database, r)
        } else if let Some(r) = s.strip_prefix("globals_") {
            (Kind::Globals, r)
        } else {
            return None;
        };
        let (ts, seq) = match rest.split_once('-') {
            Some((ts, n)) => {
                if n.starts_with('0') {
                    return None;
                }
                (ts, n.parse().ok().filter(|n| *n >= 2)?)
            }
            None => (rest, 1),
        };
        if ts.len() != 15 || !ts.bytes().enumerate().all(|(i, b)| if i == 8 { b == b'_' } else { b.is_ascii_digit() }) {
            return None;
        }
        let time = NaiveDateTime::parse_from_str(ts, "%Y%m%d_%H%M%S").ok()?.and_utc();
        Some(Stem { time, kind, seq })
    }

    /// Splits a file name into its stem and the rest (`.dump.gz.age`, `.json`, ...).
    pub fn split_file_name(name: &str) -> Option<(Stem, &str)> {
        let dot = name.find('.')?;
        let stem = Stem::parse(&name[..dot])?;
        Some((stem, &name[dot..]))
    }
}

impl std::fmt::Display for Stem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.kind.prefix(), self.time.format("%Y%m%d_%H%M%S"))?;
        if self.seq > 1 {
            write!(f, "-{}", self.seq)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_reject_paths_and_dots() {
        for bad in ["", "..", ".hidden", "a/b", "a\0b", "a b", "x;rm", "$(id)", "ü"] {
            assert!(check_component(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["filter-ical", "production", "app_2", "v1.2"] {
            assert!(check_component(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn stems_round_trip() {
        for s in ["db_20250106_020000", "db_20250106_020000-2", "globals_20241231_235959-13"] {
            assert_eq!(Stem::parse(s).unwrap().to_string(), s);
        }
        for bad in [
            "db_2025010_020000",
            "db_20250106_020000-1",
            "db_20250106_020000-02",
            "x_20250106_020000",
            "db_20251306_020000",
            "db_20250106-020000",
        ] {
            assert!(Stem::parse(bad).is_none(), "{bad:?} should not parse");
        }
        let (stem, rest) = Stem::split_file_name("db_20250106_020000.dump.gz.age").unwrap();
        assert_eq!(stem.to_string(), "db_20250106_020000");
        assert_eq!(rest, ".dump.gz.age");
    }
}
