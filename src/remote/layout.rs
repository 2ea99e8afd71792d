//! Where each object of pgtier lives off-site, built and parsed in one place (as restic's layout
//! package does): `{project}/{env}/{tier}/{file}` for a backup's data and
//! `{project}/{env}/{tier}/{stem}.json` for its manifest, relative to the configured remote URL.
//! Whatever else is found under an env's folder is foreign and never touched.

use crate::names::Stem;
use crate::vocab::TierName;

/// The file name of a tier's lock canary.
const CANARY: &str = ".pgtier-canary";

/// The keys of one project/env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLayout {
    /// `{project}/{env}/`.
    prefix: String,
}

/// What a key under an env's folder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKey {
    /// A backup's data object: `{tier}/{file}`.
    Data { tier: TierName, stem: Stem },
    /// A backup's manifest: `{tier}/{stem}.json`.
    Manifest { tier: TierName, stem: Stem },
    /// The object `audit` proves a tier's Object Lock on: `{tier}/.pgtier-canary`.
    Canary { tier: TierName },
    /// The lease an agent holds while it works on the env (`.pgtier-lease`).
    Lease,
    /// Not pgtier's.
    Foreign,
}

impl EnvLayout {
    pub fn new(project: &str, env: &str) -> EnvLayout {
        EnvLayout { prefix: format!("{project}/{env}/") }
    }

    /// The env's folder, `{project}/{env}/` (what to list).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of the backup file `file` in `tier`'s folder.
    pub fn data_key(&self, tier: TierName, file: &str) -> String {
        format!("{}{tier}/{file}", self.prefix)
    }

    /// The key of the manifest of `stem` in `tier`'s folder.
    pub fn manifest_key(&self, tier: TierName, stem: &Stem) -> String {
        format!("{}{tier}/{stem}.json", self.prefix)
    }

    /// The key of `tier`'s lock canary (see `audit`).
    pub fn canary_key(&self, tier: TierName) -> String {
        format!("{}{tier}/{CANARY}", self.prefix)
    }

    /// The key of the env's lease (see `lease`).
    pub fn lease_key(&self) -> String {
        format!("{}{}", self.prefix, crate::remote::lease::NAME)
    }

    /// What `key` is; None when it is not under this env's folder at all.
    pub fn parse(&self, key: &str) -> Option<RemoteKey> {
        let rel = key.strip_prefix(&self.prefix)?;
        if rel == crate::remote::lease::NAME {
            return Some(RemoteKey::Lease);
        }
        let Some((tier, name)) = rel.split_once('/').and_then(|(t, n)| Some((TierName::parse(t)?, n))).filter(|(_, n)| !n.contains('/'))
        else {
            return Some(RemoteKey::Foreign);
        };
        if name == CANARY {
            return Some(RemoteKey::Canary { tier });
        }
        if let Some(stem) = name.strip_suffix(".json").and_then(Stem::parse) {
            return Some(RemoteKey::Manifest { tier, stem });
        }
        Some(match Stem::split_file_name(name) {
            Some((stem, _)) => RemoteKey::Data { tier, stem },
            None => RemoteKey::Foreign,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_built_parses_back() {
        let l = EnvLayout::new("shop", "production");
        let stem = Stem::parse("db_20250101_020000").unwrap();
        for tier in TierName::ALL {
            let data = l.data_key(tier, "db_20250101_020000.dump.gz.age");
            assert_eq!(data, format!("shop/production/{tier}/db_20250101_020000.dump.gz.age"));
            assert_eq!(l.parse(&data), Some(RemoteKey::Data { tier, stem: stem.clone() }));
            assert_eq!(l.parse(&l.manifest_key(tier, &stem)), Some(RemoteKey::Manifest { tier, stem: stem.clone() }));
            assert_eq!(l.parse(&l.canary_key(tier)), Some(RemoteKey::Canary { tier }));
        }
        assert_eq!(l.parse(&l.lease_key()), Some(RemoteKey::Lease));
    }

    #[test]
    fn anything_else_is_foreign_or_elsewhere() {
        let l = EnvLayout::new("shop", "production");
        for key in [
            "shop/production/daily/notes.txt",
            "shop/production/minutely/db_20250101_020000.dump",
            "shop/production/daily/x/db_20250101_020000.dump",
            "shop/production/README",
        ] {
            assert_eq!(l.parse(key), Some(RemoteKey::Foreign), "{key}");
        }
        assert_eq!(l.parse("shop/staging/daily/db_20250101_020000.dump"), None);
        assert_eq!(l.parse("shop/production-old/daily/db_20250101_020000.dump"), None);
    }
}
