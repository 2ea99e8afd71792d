//! Reading remote copies back (`audit --read-data`): every selected copy is downloaded and
//! hashed, and one whose bytes are not its manifest's is a finding. A HEAD says what the store
//! and pgtier recorded about an object; only reading it proves the bytes are still the ones
//! the manifest describes (restic's `check --read-data`).

use serde::Serialize;

use crate::remote::{EnvOffsite, Remote};
use crate::vocab::Finding;

/// Which copies to read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// Every copy.
    All,
    /// Each copy with this probability (percent), chosen afresh at every audit.
    Percent(f64),
    /// Group `n` of `t` (1-based): the same copies every time, so `1/7` … `7/7` on seven nights
    /// read everything once a week.
    Subset(u32, u32),
}

impl Sample {
    /// Parses `all`, `10%` or `2/7`.
    pub fn parse(s: &str) -> Option<Sample> {
        if s == "all" {
            return Some(Sample::All);
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().ok()?;
            return (p > 0.0 && p <= 100.0).then_some(if p >= 100.0 { Sample::All } else { Sample::Percent(p) });
        }
        let (n, t) = s.split_once('/')?;
        let (n, t): (u32, u32) = (n.trim().parse().ok()?, t.trim().parse().ok()?);
        (n >= 1 && n <= t).then_some(Sample::Subset(n, t))
    }

    fn takes(&self, key: &str) -> bool {
        match *self {
            Sample::All => true,
            Sample::Percent(p) => rand::random::<f64>() * 100.0 < p,
            Sample::Subset(n, t) => {
                use sha2::Digest as _;
                let h = sha2::Sha256::digest(key.as_bytes());
                let v = u64::from_be_bytes(h[..8].try_into().expect("eight bytes"));
                v % t as u64 == (n - 1) as u64
            }
        }
    }
}

/// What reading back found on one destination.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadBack {
    pub destination: String,
    /// Copies read and hashed.
    pub copies_read: u64,
    pub bytes_read: u64,
    /// Copies whose bytes are not their manifest's.
    pub mismatched: u64,
    /// Copies that could not be read (after a retry).
    pub unreadable: u64,
    /// Copies in an archive class (not read: that would need a paid thaw).
    pub cold_skipped: u64,
}

/// Reads back the copies `sample` selects from one env's catalog on `remote`.
pub fn read_back(remote: &Remote, offsite: &EnvOffsite, sample: Sample) -> crate::error::Result<(ReadBack, Vec<Finding>)> {
    let mut out = ReadBack { destination: remote.name().to_string(), ..ReadBack::default() };
    let mut findings = Vec::new();
    for b in offsite.cat.backups.values() {
        let Some(m) = &b.manifest else { continue };
        for o in b.copies.values() {
            if !sample.takes(&o.key) {
                continue;
            }
            crate::signals::check()?;
            let readable = offsite.heads.get(&o.key).map_or(o.thaw.readable(), |h| h.thaw.readable());
            if !readable {
                out.cold_skipped += 1;
                continue;
            }
            let url = remote.url(&o.key);
            // One retry: a transport fault is not a finding about the copy.
            let mut read = remote.read_digest(&o.key);
            if matches!(read, Err(ref e) if !matches!(e, crate::error::Error::Cancelled)) {
                read = remote.read_digest(&o.key);
            }
            match read {
                Ok(d) => {
                    out.copies_read += 1;
                    out.bytes_read += d.size;
                    if d.size != m.size || d.sha256 != m.sha256 {
                        out.mismatched += 1;
                        findings.push(Finding::new(
                            "remote-checksum",
                            &url,
                            format!(
                                "its bytes (size {}, sha256 {}) are not the manifest's ({} and {}): this copy of {} is damaged. Delete the object; the next `pgtier sync` puts a sound copy back (from the local file or another tier)",
                                d.size, d.sha256, m.size, m.sha256, b.stem
                            ),
                        ));
                    }
                }
                Err(crate::error::Error::Cancelled) => return Err(crate::error::Error::Cancelled),
                Err(e) => {
                    out.unreadable += 1;
                    findings.push(Finding::new("remote-unreadable", &url, format!("could not be read back: {e}")));
                }
            }
        }
    }
    Ok((out, findings))
}

#[cfg(test)]
mod tests {
    use super::Sample;

    #[test]
    fn samples_parse_and_subsets_cover_everything_once() {
        assert_eq!(Sample::parse("all"), Some(Sample::All));
        assert_eq!(Sample::parse("10%"), Some(Sample::Percent(10.0)));
        assert_eq!(Sample::parse("100%"), Some(Sample::All));
        assert_eq!(Sample::parse("2/7"), Some(Sample::Subset(2, 7)));
        for bad in ["0%", "101%", "0/7", "8/7", "x", "1/0"] {
            assert_eq!(Sample::parse(bad), None, "{bad}");
        }
        let keys: Vec<String> = (0..200).map(|i| format!("shop/production/daily/db_{i}.dump.gz")).collect();
        for k in &keys {
            let hits = (1..=7).filter(|n| Sample::Subset(*n, 7).takes(k)).count();
            assert_eq!(hits, 1, "{k} is in exactly one of 1/7 … 7/7");
        }
    }
}
