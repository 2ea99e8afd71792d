//! The local catalog: what one project/env folder holds, read from manifests. Files that no
//! manifest describes are reported as foreign and never touched.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{DirLock, PARTIAL_SUFFIX};
use crate::names::{Kind, Stem};
use crate::records::manifest::Manifest;

/// A complete local backup: its manifest and where its files are.
#[derive(Debug, Clone)]
pub struct LocalBackup {
    pub stem: Stem,
    pub manifest: Manifest,
    pub data_path: PathBuf,
    pub manifest_path: PathBuf,
}

impl LocalBackup {
    /// The manifest with its row counts, for comparing them or writing the manifest back.
    pub fn full_manifest(&self) -> Result<Manifest> {
        if !self.manifest.tables_unread {
            return Ok(self.manifest.clone());
        }
        crate::records::manifest::with_row_counts(|| Manifest::read(&self.manifest_path))
    }
}

/// Suffix of a manifest being deleted: the backup no longer exists, its file is going.
pub const TOMBSTONE_SUFFIX: &str = ".deleting";

/// Everything found in one env folder.
#[derive(Debug, Default)]
pub struct Listing {
    /// Backups with a valid manifest and their data file present, oldest first.
    pub backups: Vec<LocalBackup>,
    /// Manifests that cannot be used, with the reason (unreadable, lying, data file missing).
    pub broken: Vec<(PathBuf, String)>,
    /// Files no manifest describes (old scripts' dumps, crash leftovers): never touched.
    pub foreign: Vec<PathBuf>,
    /// Temporary files of writers, live or crashed.
    pub partials: Vec<PathBuf>,
    /// Crash markers of backups between their file and their manifest (`.STEM.pending`).
    pub markers: Vec<PathBuf>,
    /// Manifests of deletions a crash interrupted (`.STEM.json.deleting`): the next prune
    /// finishes them.
    pub tombstones: Vec<PathBuf>,
    /// What the folder was when read under the env lock (None when read without it).
    stamp: Option<Stamp>,
}

/// A listing's proof of being current: the env lock's holder count it left and the folder's
/// identity and modification time. A pgtier writer always holds the lock, so an unchanged
/// count means none wrote since; a hand that added, removed or renamed a file moved the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    holders: u64,
    folder: (u64, u64, i64, i64, i64, i64),
}

/// The folder's device, inode, and modification and change times to the nanosecond.
fn folder_time(dir: &Path) -> Option<(u64, u64, i64, i64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

impl Listing {
    /// Reads `dir` (a missing folder is an empty listing).
    pub fn scan(dir: &Path, project: &str, env: &str) -> Result<Listing> {
        // Counted by tests (`PGTIER_LOG=pgtier::reads=debug`): a night reads each folder at
        // most twice.
        tracing::debug!(target: "pgtier::reads", "listing {}", dir.display());
        crate::fsutil::check_not_linked(dir)?;
        let mut out = Listing::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.at(dir)?;
            if entry.file_type().at(entry.path())?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let mut described = std::collections::HashSet::new();
        for name in &names {
            let path = dir.join(name);
            if name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX) {
                out.partials.push(path);
                continue;
            }
            if name.starts_with('.') && name.ends_with(".pending") {
                out.markers.push(path);
                continue;
            }
            if name.starts_with('.') && name.ends_with(TOMBSTONE_SUFFIX) {
                out.tombstones.push(path);
                continue;
            }
            let Some(stem) = name.strip_suffix(".json").and_then(Stem::parse) else { continue };
            // Row counts are most of a large database's manifest, and only a restore or a drill
            // compares them: they are read then (`full_manifest`).
            let manifest = match crate::records::manifest::without_row_counts(|| Manifest::read(&path)) {
                Ok(m) => m,
                Err(e) => {
                    // Ours by name even if unreadable: broken, not foreign.
                    described.insert(name.clone());
                    let why = e.to_string();
                    let why = why.strip_prefix(&format!("{}: ", path.display())).map(str::to_string).unwrap_or(why);
                    out.broken.push((path, why));
                    continue;
                }
            };
            if manifest.project != project || manifest.env != env {
                described.insert(name.clone());
                out.broken.push((path, format!("describes {}/{}, not {project}/{env}", manifest.project, manifest.env)));
                continue;
            }
            described.insert(name.clone());
            described.insert(manifest.file.clone());
            let data_path = dir.join(&manifest.file);
            match std::fs::symlink_metadata(&data_path) {
                Ok(m) if m.file_type().is_symlink() => {
                    out.broken
                        .push((path, format!("its backup file {} is a symbolic link: refused, never read or uploaded", manifest.file)));
                    continue;
                }
                Ok(m) if m.is_file() => {}
                _ => {
                    out.broken.push((path, format!("its backup file {} is missing", manifest.file)));
                    continue;
                }
            }
            out.backups.push(LocalBackup { stem, manifest, data_path, manifest_path: path });
        }
        for name in names {
            // Dot-files are pgtier's own bookkeeping (locks, partial files), never backups.
            if !described.contains(&name) && !name.starts_with('.') {
                out.foreign.push(dir.join(name));
            }
        }
        out.backups.sort_by(|a, b| a.stem.cmp(&b.stem));
        Ok(out)
    }

    /// Whether the folder holds the backup `stem`.
    pub fn contains(&self, stem: &Stem) -> bool {
        self.backups.binary_search_by(|b| b.stem.cmp(stem)).is_ok()
    }

    /// A listing of just `backups` (oldest first), as of no folder.
    pub fn of(backups: Vec<LocalBackup>) -> Listing {
        Listing { backups, ..Default::default() }
    }

    /// The folder under `lock` (held by the caller): `known` if it was read under an earlier
    /// lock and nothing changed the folder since, else read now.
    pub fn under_lock(known: Option<Listing>, dir: &Path, project: &str, env: &str, lock: &DirLock) -> Result<Listing> {
        if let Some(mut l) = known
            && let Some(stamp) = l.stamp
            && stamp.holders == lock.before()
            && Some(stamp.folder) == folder_time(dir)
        {
            l.stamp = Some(Stamp { holders: lock.ours(), ..stamp });
            return Ok(l);
        }
        // The time is taken before the read: a change during it shows at the next check.
        let folder = folder_time(dir);
        let mut l = Listing::scan(dir, project, env)?;
        l.stamp = folder.map(|folder| Stamp { holders: lock.ours(), folder });
        Ok(l)
    }

    /// After the caller changed the folder under `lock` and recorded the change here: the
    /// listing is current again as of now.
    pub fn changed_under(&mut self, dir: &Path, lock: &DirLock) {
        self.stamp = folder_time(dir).map(|folder| Stamp { holders: lock.ours(), folder });
    }

    /// Records a backup written since the scan (its data file was read as foreign, its crash
    /// `marker` as a marker): as a scan now would see it.
    pub fn add(&mut self, b: LocalBackup, marker: &Path) {
        self.foreign.retain(|p| *p != b.data_path);
        self.markers.retain(|p| p != marker);
        let at = self.backups.partition_point(|x| x.stem < b.stem);
        self.backups.insert(at, b);
    }

    /// Forgets backups deleted since the scan.
    pub fn remove(&mut self, stems: &std::collections::HashSet<&str>) {
        self.backups.retain(|b| !stems.contains(b.stem.to_string().as_str()));
    }

    /// Whether any file here (a backup's, a broken manifest, a foreign file, a crash marker)
    /// already uses `stem`.
    pub fn uses(&self, stem: &Stem) -> bool {
        let prefix = format!("{stem}.");
        let marker = format!(".{stem}.");
        let named = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) || n.starts_with(&marker));
        self.backups.iter().any(|b| b.stem == *stem)
            || self.broken.iter().any(|(p, _)| named(p))
            || self.foreign.iter().any(named)
            || self.markers.iter().any(named)
    }

    /// Database backups only (not globals), oldest first.
    pub fn databases(&self) -> impl DoubleEndedIterator<Item = &LocalBackup> {
        self.backups.iter().filter(|b| b.stem.kind == Kind::Database)
    }

    /// The newest database backup.
    pub fn latest(&self) -> Option<&LocalBackup> {
        self.databases().next_back()
    }

    /// Finds a backup by stem (`db_20250106_020000`), file name or path.
    pub fn find(&self, spec: &str) -> Option<&LocalBackup> {
        let name = Path::new(spec).file_name().and_then(|n| n.to_str()).unwrap_or(spec);
        let stem = Stem::parse(name).or_else(|| Stem::split_file_name(name).map(|(s, _)| s))?;
        self.backups.iter().find(|b| b.stem == stem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing with a marker that is in no folder: seen again only if the listing was reused.
    fn tagged(mut l: Listing) -> Listing {
        l.foreign.push(PathBuf::from("/nowhere/tag"));
        l
    }

    fn reused(l: &Listing) -> bool {
        l.foreign.iter().any(|p| p == Path::new("/nowhere/tag"))
    }

    #[test]
    fn a_listing_is_reused_under_the_next_lock_only_if_nothing_changed_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let read = |known: Option<Listing>| {
            let lock = DirLock::acquire(d).unwrap();
            Listing::under_lock(known, d, "p", "e", &lock).unwrap()
        };
        // Unchanged since: the listing goes on.
        let l = tagged(read(None));
        let l = read(Some(l));
        assert!(reused(&l), "nothing changed: the listing is reused");

        // Another pgtier process held the lock in between (it may have written): read again.
        drop(DirLock::acquire(d).unwrap());
        assert!(!reused(&read(Some(l))), "another holder came: read again");

        // A file added by hand (no lock): the folder's time moved, read again. The wait passes
        // the kernel's coarse clock tick, within which two changes share a time.
        let l = tagged(read(None));
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(d.join("db_20250101_020000.dump"), b"x").unwrap();
        let again = read(Some(l));
        assert!(!reused(&again), "a hand's file: read again");
        assert_eq!(again.foreign, vec![d.join("db_20250101_020000.dump")]);

        // Read without the lock: never taken for current.
        let unlocked = tagged(Listing::scan(d, "p", "e").unwrap());
        assert!(!reused(&read(Some(unlocked))), "a listing read without the lock is read again");
    }
}
