//! pg_dump's directory format (`-Fd`), the one it can write with several connections in one
//! snapshot (`--jobs`): what pgtier asks of pg_dump, and every table's rows counted from the
//! dump's own files as they are archived, as `rows` counts them in a custom archive's stream.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::Version;
use super::archive::Toc;
use super::rows::Lines;
use crate::vocab::Compression;

/// How pg_dump compresses each file of a directory dump, for the policy's `compression`:
/// zstd where pg_dump has it (16 and later), else gzip (every pg_dump reads and writes it; a
/// zstd policy gets gzip's fastest level there), or none.
pub fn file_compression(policy: Compression, pg_dump: Version) -> Compression {
    match policy {
        Compression::Zstd(level) if pg_dump.major >= 16 => Compression::Zstd(level),
        Compression::Zstd(_) => Compression::Gzip(1),
        other => other,
    }
}

/// pg_dump's arguments for a directory dump into `dir` (which must not exist yet) with `jobs`
/// connections, each file compressed as `compression`.
pub fn dump_args(dir: &Path, jobs: u32, compression: Compression) -> Vec<String> {
    let compress = match compression {
        Compression::Zstd(level) => format!("--compress=zstd:{level}"),
        Compression::Gzip(level) => format!("--compress={level}"),
        Compression::None => "--compress=0".into(),
    };
    vec!["--format=directory".into(), format!("--jobs={jobs}"), compress, format!("--file={}", dir.display())]
}

/// Counts the rows of every table's data file as the files go by (in any order, each whole
/// before the next), decompressing them on the way.
pub struct FileRows {
    /// File name on disk (`3001.dat.zst`) -> dump id of its `TABLE DATA` entry.
    files: BTreeMap<String, i64>,
    current: Option<(String, i64, Decoder)>,
    counts: BTreeMap<i64, u64>,
    error: Option<String>,
}

enum Decoder {
    Plain(Lines),
    Gzip(Box<flate2::write::MultiGzDecoder<Lines>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Lines>>),
}

impl FileRows {
    /// A counter for the data files `toc` names.
    pub fn new(toc: &Toc) -> FileRows {
        let files = toc
            .entries
            .iter()
            .filter(|e| e.desc == "TABLE DATA")
            .filter_map(|e| e.file.as_ref().map(|f| (f.clone(), e.dump_id)))
            .flat_map(|(f, id)| ["", ".gz", ".zst"].map(|ext| (format!("{f}{ext}"), id)))
            .collect();
        FileRows { files, current: None, counts: BTreeMap::new(), error: None }
    }

    /// Takes the next bytes of file `name`.
    pub fn feed(&mut self, name: &str, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.current.as_ref().is_none_or(|(n, _, _)| n != name) {
            self.end_file();
            let Some(&id) = self.files.get(name) else { return };
            let decoder = if name.ends_with(".gz") {
                Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Lines::default())))
            } else if name.ends_with(".zst") {
                match zstd::stream::write::Decoder::new(Lines::default()) {
                    Ok(d) => Decoder::Zstd(Box::new(d)),
                    Err(e) => return self.fail(name, e),
                }
            } else {
                Decoder::Plain(Lines::default())
            };
            self.counts.insert(id, 0);
            self.current = Some((name.to_string(), id, decoder));
        }
        let Some((_, _, d)) = self.current.as_mut() else { return };
        let fed = match d {
            Decoder::Plain(l) => l.write_all(bytes),
            Decoder::Gzip(g) => g.write_all(bytes),
            Decoder::Zstd(z) => z.write_all(bytes),
        };
        if let Err(e) = fed {
            self.fail(name, e);
        }
    }

    fn fail(&mut self, name: &str, e: std::io::Error) {
        self.error = Some(format!("{name}: {e}"));
        self.current = None;
    }

    fn end_file(&mut self) {
        let Some((name, id, d)) = self.current.take() else { return };
        let lines = match d {
            Decoder::Plain(l) => Ok(l),
            Decoder::Gzip(g) => g.finish(),
            Decoder::Zstd(mut z) => z.flush().map(|()| z.into_inner()),
        };
        match lines {
            Ok(l) => {
                self.counts.insert(id, l.rows());
            }
            Err(e) => self.fail(&name, e),
        }
    }

    /// The counts by dump id, once every file went by; a file that could not be read leaves
    /// no counts at all.
    pub fn finish(mut self) -> Result<BTreeMap<i64, u64>, String> {
        self.end_file();
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.counts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::archive::TocEntry;

    fn entry(id: i64, file: &str) -> TocEntry {
        TocEntry {
            dump_id: id,
            had_dumper: true,
            desc: "TABLE DATA".into(),
            tag: format!("t{id}"),
            section: 3,
            defn: String::new(),
            copy_stmt: String::new(),
            namespace: "public".into(),
            tablespace: String::new(),
            owner: "o".into(),
            deps: vec![],
            file: Some(file.into()),
        }
    }

    #[test]
    fn rows_are_counted_in_plain_gzip_and_zstd_files_fed_in_pieces() {
        let toc = Toc { entries: vec![entry(1, "1.dat"), entry(2, "2.dat"), entry(3, "3.dat")], ..Toc::default() };
        let rows = b"a\tb\nc\\nd\te\n\\.\n\n\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rows).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&rows[..], 3).unwrap();
        let mut c = FileRows::new(&toc);
        c.feed("toc.dat", b"PGDMP");
        for piece in rows.chunks(3) {
            c.feed("1.dat", piece);
        }
        for piece in gz.chunks(5) {
            c.feed("2.dat.gz", piece);
        }
        for piece in zst.chunks(7) {
            c.feed("3.dat.zst", piece);
        }
        c.feed("blobs.toc", b"1 blob_1.dat\n");
        assert_eq!(c.finish().unwrap(), BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    }

    #[test]
    fn a_zstd_policy_gets_gzip_from_a_pg_dump_without_zstd() {
        let v = |major| Version { major, minor: 0 };
        assert_eq!(file_compression(Compression::Zstd(3), v(15)), Compression::Gzip(1));
        assert_eq!(file_compression(Compression::Zstd(3), v(16)), Compression::Zstd(3));
        assert_eq!(file_compression(Compression::Gzip(6), v(13)), Compression::Gzip(6));
    }
}
