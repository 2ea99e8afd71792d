//! A folder as one tar stream and back: how a directory-format dump (`pg_dump -Fd`) is stored
//! as one object per backup. The stream is plain POSIX tar (ustar), readable by any `tar`:
//! one top folder, `toc.dat` first, then the other files, largest first (a restore that loads
//! each file as it arrives starts on the longest work first). Unpacking takes regular files
//! and folders only, under the target folder, each 0600 (folders 0700): a link, a device or a
//! path leaving the folder is refused, not followed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// The file written first, so a reader meets the table of contents before the data.
pub const FIRST: &str = "toc.dat";

/// The files of `dir` (pg_dump's directory format has no subfolders) with their sizes, in the
/// order `pack` writes them: `FIRST`, then the largest first.
pub fn listing(dir: &Path) -> io::Result<Vec<(String, u64)>> {
    let mut names: Vec<(String, u64)> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().into_string().map_err(|n| io::Error::other(format!("file name {n:?} is not UTF-8")))?;
        if !e.file_type()?.is_file() {
            return Err(io::Error::other(format!("{} is not a regular file", e.path().display())));
        }
        names.push((name, e.metadata()?.len()));
    }
    names.sort_by(|(a, la), (b, lb)| (a != FIRST, std::cmp::Reverse(la), a).cmp(&(b != FIRST, std::cmp::Reverse(lb), b)));
    Ok(names)
}

/// Writes `files` of `dir` (as `listing` gives them) into `out` as a tar stream under the
/// folder `top`. Each file is handed to `seen` as it goes by (its name and bytes, in order)
/// and removed once written, so the folder and the stream never both take the whole dump's
/// room.
pub fn pack(dir: &Path, files: &[(String, u64)], top: &str, out: &mut dyn Write, seen: &mut dyn FnMut(&str, &[u8])) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o700);
    header.set_size(0);
    builder.append_data(&mut header, format!("{top}/"), io::empty())?;
    for (name, len) in files {
        let (path, len) = (dir.join(name), *len);
        let file = File::open(&path)?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_size(len);
        let mut reader = Seen { inner: file.take(len), name, seen: &mut *seen, read: 0 };
        builder.append_data(&mut header, format!("{top}/{name}"), &mut reader)?;
        if reader.read != len {
            return Err(io::Error::other(format!("{} changed size while it was archived", path.display())));
        }
        std::fs::remove_file(&path)?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

struct Seen<'a, R> {
    inner: R,
    name: &'a str,
    seen: &'a mut dyn FnMut(&str, &[u8]),
    read: u64,
}

impl<R: Read> Read for Seen<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::signals::check_io()?;
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n > 0 {
            (self.seen)(self.name, &buf[..n]);
        }
        Ok(n)
    }
}

/// Unpacks the tar stream `input` into the empty folder `into` and returns the folder that
/// holds `FIRST` (`into` itself or its one top folder). Reads `input` to its end, so a checksum
/// over the stream is complete when this returns.
pub fn unpack(input: &mut dyn Read, into: &Path) -> io::Result<PathBuf> {
    unpack_each(input, into, &mut |_| true)
}

/// Where a file of the stream being unpacked stands.
pub enum Step<'a> {
    /// Created on disk with this many bytes to come, being written (it may be renamed
    /// meanwhile: the writing goes on into the same file).
    Begun(&'a Path, u64),
    /// Whole on disk.
    Whole(&'a Path),
}

/// `unpack`, telling `each` as each file begins and once it is whole. When `each` answers false
/// to a whole file, the files after it are read but no longer written (the stream still goes by
/// to its end).
pub fn unpack_each(input: &mut dyn Read, into: &Path, each: &mut dyn FnMut(Step) -> bool) -> io::Result<PathBuf> {
    let mut writing = true;
    let mut archive = tar::Archive::new(&mut *input);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        let safe = !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(invalid(format!("the archive holds {}, a path outside its folder", rel.display())));
        }
        let target = into.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => crate::fsutil::ensure_private_dir(&target).map_err(io::Error::other)?,
            tar::EntryType::Regular | tar::EntryType::Continuous if !writing => {
                io::copy(&mut entry, &mut io::sink())?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    crate::fsutil::ensure_private_dir(parent).map_err(io::Error::other)?;
                }
                let mut out = io::BufWriter::with_capacity(1 << 20, private_create(&target)?);
                each(Step::Begun(&target, entry.size()));
                io::copy(&mut entry, &mut out)?;
                out.flush()?;
                writing = each(Step::Whole(&target));
            }
            // Extended headers carry long names and the like, which `path()` already applied.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader | tar::EntryType::GNULongName => {}
            other => {
                return Err(invalid(format!("the archive holds {} of type {other:?}: only files and folders are restored", rel.display())));
            }
        }
    }
    // The end-of-archive blocks and any padding after them belong to the checked stream.
    io::copy(input, &mut io::sink())?;
    if !writing {
        return Ok(into.to_path_buf());
    }
    if into.join(FIRST).is_file() {
        return Ok(into.to_path_buf());
    }
    let mut tops = std::fs::read_dir(into)?.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join(FIRST).is_file());
    match (tops.next(), tops.next()) {
        (Some(top), None) => Ok(top),
        (None, _) => Err(invalid(format!("the archive holds no {FIRST}: it is not a pg_dump directory-format dump"))),
        (Some(_), Some(_)) => Err(invalid(format!("the archive holds more than one folder with a {FIRST}"))),
    }
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

fn private_create(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_goes_through_tar_and_back_with_the_table_of_contents_first() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("3001.dat.gz"), b"rows").unwrap();
        std::fs::write(src.path().join("toc.dat"), b"PGDMP...").unwrap();
        std::fs::write(src.path().join("blobs.toc"), b"").unwrap();
        let mut stream = Vec::new();
        let mut order = Vec::new();
        std::fs::write(src.path().join("3002.dat.gz"), b"more rows").unwrap();
        let files = listing(src.path()).unwrap();
        assert_eq!(files.len(), 4);
        pack(src.path(), &files, "db_20261204_010000", &mut stream, &mut |name, _| {
            if order.last().map(String::as_str) != Some(name) {
                order.push(name.to_string());
            }
        })
        .unwrap();
        assert_eq!(order, ["toc.dat", "3002.dat.gz", "3001.dat.gz"], "the largest first; empty files are not read");
        assert_eq!(std::fs::read_dir(src.path()).unwrap().count(), 0, "each file is removed once written");
        let dest = tempfile::tempdir().unwrap();
        let top = unpack(&mut &stream[..], dest.path()).unwrap();
        assert_eq!(top, dest.path().join("db_20261204_010000"));
        assert_eq!(std::fs::read(top.join("3001.dat.gz")).unwrap(), b"rows");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(top.join("toc.dat")).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn links_and_paths_leaving_the_folder_are_refused() {
        for (name, kind) in [("../evil", tar::EntryType::Regular), ("d/link", tar::EntryType::Symlink)] {
            let mut stream = Vec::new();
            {
                let mut b = tar::Builder::new(&mut stream);
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_size(0);
                h.set_mode(0o600);
                if kind == tar::EntryType::Symlink {
                    h.set_link_name("/etc/passwd").unwrap();
                }
                // Written raw, as a hostile archive would be (the builder refuses "..").
                let bytes = name.as_bytes();
                h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
                b.finish().unwrap();
            }
            let dest = tempfile::tempdir().unwrap();
            let err = unpack(&mut &stream[..], dest.path()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{name}: {err}");
            assert!(!dest.path().parent().unwrap().join("evil").exists());
        }
    }
}
