//! Reading the table of contents of a pg_dump custom-format archive: every object's kind,
//! schema, name, owner, definition and dependencies. pgtier reads it from the head of the stream
//! it restores, so it knows what a backup holds before any database is touched: the database's
//! own properties, which entries make up one table, and a fingerprint to compare with what a
//! restore produced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

pub use super::entry::TocEntry;

/// The header fields and entries of an archive.
#[derive(Debug, Clone, Default)]
pub struct Toc {
    /// Archive format version, e.g. (1, 14, 0).
    pub version: (u8, u8, u8),
    /// The database name recorded by pg_dump.
    pub database: String,
    pub server_version: String,
    pub dump_version: String,
    pub entries: Vec<TocEntry>,
    /// Bytes of pg_dump's integers in this archive.
    pub int_size: usize,
    /// Bytes the header and table of contents take: the data blocks start here.
    pub head_len: usize,
    /// A custom archive (one stream) or a directory's `toc.dat` (data in files beside it).
    pub format: ArchiveFormat,
}

/// pg_dump's archive formats that pgtier reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `pg_dump -Fc`: one stream, the data blocks after the table of contents.
    #[default]
    Custom,
    /// `pg_dump -Fd`: `toc.dat` and one file per table's data and for the large objects.
    Directory,
}

/// pg_dump's format codes in an archive's header. A directory dump's `toc.dat` says 3 (the
/// code the tar format shares: unpacked, a `-Ft` archive is a valid directory-format dump, with
/// the same file name in each entry); 5 is read as the same.
const FORMAT_CUSTOM: u8 = 1;
const FORMAT_DIRECTORY: [u8; 2] = [3, 5];

/// Why a head could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum TocError {
    /// More bytes are needed.
    Incomplete,
    /// Not a custom archive, or one this build cannot read.
    Invalid(String),
}

/// The archive versions this reader knows (pg_dump 11 to 18 write 1.13 to 1.16).
const MIN_VERSION: (u8, u8) = (1, 12);
const MAX_VERSION: (u8, u8) = (1, 16);

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    int_size: usize,
    off_size: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, TocError> {
        let b = *self.buf.get(self.pos).ok_or(TocError::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], TocError> {
        let end = self.pos.checked_add(n).ok_or_else(|| TocError::Invalid("length overflow".into()))?;
        let s = self.buf.get(self.pos..end).ok_or(TocError::Incomplete)?;
        self.pos = end;
        Ok(s)
    }

    /// pg_dump's ReadInt: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<i64, TocError> {
        let sign = self.byte()?;
        let mut v: i64 = 0;
        for (i, b) in self.bytes(self.int_size)?.iter().enumerate() {
            if i < 8 {
                v |= i64::from(*b) << (8 * i);
            }
        }
        Ok(if sign != 0 { -v } else { v })
    }

    /// pg_dump's ReadStr: a length (-1 for NULL), then the bytes.
    fn str(&mut self) -> Result<Option<String>, TocError> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        if n > (1 << 30) {
            return Err(TocError::Invalid(format!("a string of {n} bytes")));
        }
        Ok(Some(String::from_utf8_lossy(self.bytes(n as usize)?).into_owned()))
    }

    fn string(&mut self) -> Result<String, TocError> {
        Ok(self.str()?.unwrap_or_default())
    }
}

/// Parses the header and table of contents at the start of `buf`; returns them and how many
/// bytes they took.
pub fn parse(buf: &[u8]) -> Result<(Toc, usize), TocError> {
    if buf.len() < 5 {
        return Err(TocError::Incomplete);
    }
    if &buf[..5] != b"PGDMP" {
        return Err(TocError::Invalid("not a pg_dump archive".into()));
    }
    let mut c = Cursor { buf, pos: 5, int_size: 4, off_size: 8 };
    let version = (c.byte()?, c.byte()?, c.byte()?);
    if (version.0, version.1) < MIN_VERSION || (version.0, version.1) > MAX_VERSION {
        return Err(TocError::Invalid(format!(
            "archive format {}.{} is not one this pgtier reads (it reads {}.{} to {}.{}, written by pg_dump 11 to 18)",
            version.0, version.1, MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION.0, MAX_VERSION.1
        )));
    }
    c.int_size = c.byte()? as usize;
    c.off_size = c.byte()? as usize;
    if !(1..=8).contains(&c.int_size) || !(1..=16).contains(&c.off_size) {
        return Err(TocError::Invalid(format!("integer size {} / offset size {}", c.int_size, c.off_size)));
    }
    let format = match c.byte()? {
        FORMAT_CUSTOM => ArchiveFormat::Custom,
        c if FORMAT_DIRECTORY.contains(&c) => ArchiveFormat::Directory,
        other => return Err(TocError::Invalid(format!("archive format code {other} is neither the custom nor the directory format"))),
    };
    let v = (version.0, version.1);
    if v >= (1, 15) {
        c.byte()?; // compression algorithm
    } else {
        c.int()?; // compression level
    }
    for _ in 0..7 {
        c.int()?; // creation time
    }
    let database = c.string()?;
    let server_version = c.string()?;
    let dump_version = c.string()?;
    let count = c.int()?;
    if !(0..=10_000_000).contains(&count) {
        return Err(TocError::Invalid(format!("{count} entries")));
    }
    let mut entries = Vec::with_capacity(count.min(100_000) as usize);
    for _ in 0..count {
        let dump_id = c.int()?;
        let had_dumper = c.int()? != 0;
        c.string()?; // table oid
        c.string()?; // oid
        let tag = c.string()?;
        let desc = c.string()?;
        let section = c.int()?;
        let defn = c.string()?;
        c.string()?; // drop statement
        let copy_stmt = c.string()?;
        let namespace = c.string()?;
        let tablespace = c.string()?;
        if v >= (1, 14) {
            c.string()?; // table access method
        }
        if v >= (1, 16) {
            c.int()?; // relkind
        }
        let owner = c.string()?;
        c.string()?; // "with oids", always false
        let mut deps = Vec::new();
        while let Some(d) = c.str()? {
            deps.push(d.trim().parse().map_err(|_| TocError::Invalid(format!("dependency {d:?}")))?);
        }
        let file = match format {
            // The custom format's extra field: where the entry's data block starts.
            ArchiveFormat::Custom => {
                c.byte()?;
                c.bytes(c.off_size)?;
                None
            }
            // The directory format's: the file holding the entry's data.
            ArchiveFormat::Directory => c.str()?.filter(|f| !f.is_empty()),
        };
        entries.push(TocEntry { dump_id, had_dumper, desc, tag, section, defn, copy_stmt, namespace, tablespace, owner, deps, file });
    }
    let (int_size, head_len) = (c.int_size, c.pos);
    Ok((Toc { version, database, server_version, dump_version, entries, int_size, head_len, format }, c.pos))
}

/// Reads an archive's table of contents from the head of `input`; returns it (or why it could
/// not be read: an archive format this build does not know) and a reader that yields the whole
/// stream again from its first byte.
pub fn read_head(mut input: Box<dyn Read + Send>) -> io::Result<(Result<Toc, String>, Box<dyn Read + Send>)> {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut next_try = 64 << 10;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        crate::signals::check_io()?;
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !crate::signals::interrupted() => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        // Parse at doubling sizes, so a large table of contents is parsed a few times, not once a chunk.
        if n == 0 || buf.len() >= next_try {
            match parse(&buf) {
                Ok((toc, _)) => return Ok((Ok(toc), Box::new(io::Cursor::new(buf).chain(input)))),
                Err(TocError::Incomplete) if n == 0 => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside its table of contents"));
                }
                Err(TocError::Incomplete) => next_try = buf.len() * 2,
                Err(TocError::Invalid(m)) => return Ok((Err(m), Box::new(io::Cursor::new(buf).chain(input)))),
            }
        }
    }
}

/// Entries that describe the database itself rather than an object in it.
pub fn is_database_entry(e: &TocEntry) -> bool {
    matches!(e.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES")
        || (matches!(e.desc.as_str(), "COMMENT" | "ACL" | "SECURITY LABEL") && e.tag.starts_with("DATABASE "))
}

/// Entries that set the restoring session's state, not objects.
fn is_session_entry(e: &TocEntry) -> bool {
    matches!(e.desc.as_str(), "ENCODING" | "STDSTRINGS" | "SEARCHPATH")
}

/// Entries that carry data rather than schema (a schema-only dump has none of them): table
/// rows, large objects with their grants and comments, sequence values, materialized view rows.
pub fn is_data_entry(e: &TocEntry) -> bool {
    matches!(
        e.desc.as_str(),
        "TABLE DATA" | "BLOBS" | "BLOB" | "BLOB METADATA" | "SEQUENCE SET" | "MATERIALIZED VIEW DATA" | "STATISTICS DATA"
    ) || (matches!(e.desc.as_str(), "COMMENT" | "ACL" | "SECURITY LABEL") && e.tag.starts_with("LARGE OBJECT"))
}

/// The sequence values an archive sets: (sequence as written in SQL, last value, is_called).
pub fn sequence_values(toc: &Toc) -> Vec<(String, i128, bool)> {
    toc.entries
        .iter()
        .filter(|e| e.desc == "SEQUENCE SET")
        .filter_map(|e| {
            // SELECT pg_catalog.setval('app."Odd_seq"', 1200, true);
            let args = e.defn.split_once("setval(")?.1;
            let (lit, rest) = args.strip_prefix('\'')?.split_once("', ")?;
            let mut parts = rest.trim_end().trim_end_matches(';').trim_end_matches(')').split(',');
            let value = parts.next()?.trim().parse().ok()?;
            let called = parts.next()?.trim() == "true";
            Some((lit.replace("''", "'"), value, called))
        })
        .collect()
}

/// How entries are compared between a backup and what a restore produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompareOptions {
    /// Owners were not restored (the roles do not exist here): leave them out.
    pub ignore_owners: bool,
    /// Grants were not restored: leave ACL entries out.
    pub ignore_privileges: bool,
}

/// The identity of an entry for comparisons: kind, schema and name.
pub fn entry_key(e: &TocEntry) -> String {
    if e.namespace.is_empty() { format!("{} {}", e.desc, e.tag) } else { format!("{} {}.{}", e.desc, e.namespace, e.tag) }
}

impl Toc {
    /// The `DATABASE` entry: how the database was created.
    pub fn database_entry(&self) -> Option<&TocEntry> {
        self.entries.iter().find(|e| e.desc == "DATABASE")
    }

    /// The large objects the archive holds: one `BLOB` entry each up to pg_dump 16; from 17 on,
    /// `BLOB METADATA` entries of up to 1,000 each, their definition one OID a line.
    pub fn large_objects(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.desc.as_str() {
                "BLOB" => 1,
                "BLOB METADATA" => e.defn.lines().filter(|l| !l.trim().is_empty()).count() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Entries by dump id.
    pub fn by_id(&self) -> BTreeMap<i64, &TocEntry> {
        self.entries.iter().map(|e| (e.dump_id, e)).collect()
    }

    /// Every schema object and database property, keyed and normalised so that the same database
    /// dumped under another name compares equal (`database` is the name it was dumped under).
    pub fn objects(&self, opts: CompareOptions) -> BTreeMap<String, String> {
        let db = &self.database;
        let mut out = BTreeMap::new();
        for e in &self.entries {
            if is_session_entry(e) || is_data_entry(e) || super::canonical::is_version_artefact(e) {
                continue;
            }
            if opts.ignore_privileges && e.desc == "ACL" {
                continue;
            }
            let (key, defn) = if is_database_entry(e) {
                (format!("{} (database)", e.desc), database_sql(e, db, "(database)", opts))
            } else {
                (entry_key(e), super::canonical::definition(e))
            };
            let owner = if opts.ignore_owners { "" } else { e.owner.as_str() };
            let value = format!("{defn}\u{1}{owner}\u{1}{}", e.tablespace);
            // Several entries can share a key (a table's comment and its column's): keep all.
            let slot = out.entry(key).or_insert_with(String::new);
            if !slot.is_empty() {
                slot.push('\u{2}');
            }
            slot.push_str(&value);
        }
        out
    }

    /// SHA-256 over `objects()`: one value that changes when any object or property does (and
    /// not with the pg_dump or server version that wrote it: see `canonical`).
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in self.objects(CompareOptions::default()) {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// The differences between what a backup holds and what a restore produced, one line each.
pub fn differences(backup: &Toc, restored: &Toc, opts: CompareOptions) -> Vec<String> {
    let (a, b) = (backup.objects(opts), restored.objects(opts));
    let mut out = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => out.push(format!("{k} is missing")),
            Some(w) if w != v => out.push(format!("{k}: {}", what_differs(v, w))),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{k} was not in the backup"));
    }
    out
}

/// Which property of an entry differs and both values: its owner, its tablespace, an option
/// of `CREATE DATABASE`, or the first line of its definition that differs.
fn what_differs(backup: &str, restored: &str) -> String {
    let cut = |s: &str| crate::ui::cut(s.trim(), 160);
    let parts = |v: &str| -> Vec<(String, String, String)> {
        v.split('\u{2}')
            .map(|e| {
                let mut p = e.split('\u{1}');
                (p.next().unwrap_or("").to_string(), p.next().unwrap_or("").to_string(), p.next().unwrap_or("").to_string())
            })
            .collect()
    };
    let (a, b) = (parts(backup), parts(restored));
    if a.len() != b.len() {
        return format!("the backup has {} entries of this name, the restored database {}", a.len(), b.len());
    }
    for ((da, oa, ta), (db, ob, tb)) in a.iter().zip(&b) {
        if oa != ob {
            return format!("owner differs: {oa:?} in the backup, {ob:?} restored");
        }
        if ta != tb {
            return format!("tablespace differs: {ta:?} in the backup, {tb:?} restored");
        }
        if da != db {
            if da.starts_with("CREATE DATABASE") && db.starts_with("CREATE DATABASE") {
                let (oa, ob) = (create_options(da), create_options(db));
                for key in oa.keys().chain(ob.keys()).collect::<BTreeSet<_>>() {
                    let (x, y) = (oa.get(key), ob.get(key));
                    if x != y {
                        let show = |v: Option<&String>| v.map_or("(not set)".to_string(), |v| v.clone());
                        return format!("{key} differs: {} in the backup, {} restored", show(x), show(y));
                    }
                }
            }
            let (la, lb): (Vec<&str>, Vec<&str>) = (da.lines().collect(), db.lines().collect());
            let n = la.iter().zip(&lb).position(|(x, y)| x != y).unwrap_or(la.len().min(lb.len()));
            return format!(
                "definition differs at line {}: {:?} in the backup, {:?} restored",
                n + 1,
                cut(la.get(n).copied().unwrap_or("(nothing)")),
                cut(lb.get(n).copied().unwrap_or("(nothing)"))
            );
        }
    }
    "differs".to_string()
}

/// The `KEY = value` options of a `CREATE DATABASE … WITH …` statement.
fn create_options(sql: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some((_, with)) = sql.split_once(" WITH ") else { return out };
    let mut rest = with.trim().trim_end_matches(';');
    while let Some((key, after)) = rest.split_once(" = ") {
        let key = key.trim().to_string();
        let (value, next) = if let Some(q) = after.strip_prefix('\'') {
            let end = q.find('\'').unwrap_or(q.len());
            (format!("'{}'", &q[..end]), q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next.trim_start();
    }
    out
}

/// Rewrites `DATABASE <from>` into `DATABASE <to>` in pg_dump's statements about a database
/// (CREATE, ALTER, COMMENT, GRANT/REVOKE … ON DATABASE, ALTER ROLE … IN DATABASE), outside
/// string literals and quoted identifiers other than the name itself.
pub fn rename_database(sql: &str, from: &str, to: &str) -> String {
    let to_q = if to == "(database)" { to.to_string() } else { crate::postgres::quote_ident(to) };
    // pg_dump writes the name bare when it is a plain identifier, quoted otherwise.
    let mut needles = vec![format!("DATABASE {}", crate::postgres::quote_ident(from))];
    if !from.is_empty() && from.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        needles.push(format!("DATABASE {from}"));
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    'scan: while i < sql.len() {
        if bytes[i] == b'\'' {
            // A string literal: copied as is ('' inside it is an escaped quote).
            let mut j = i + 1;
            while j < sql.len() {
                if bytes[j] == b'\'' {
                    if bytes.get(j + 1) == Some(&b'\'') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            let end = (j + 1).min(sql.len());
            out.push_str(&sql[i..end]);
            i = end;
            continue;
        }
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        for needle in &needles {
            if boundary && sql[i..].starts_with(needle.as_str()) {
                let after = sql[i + needle.len()..].chars().next();
                if after.is_none_or(|ch| !(ch.is_alphanumeric() || ch == '_' || ch == '"' || ch == '$')) {
                    out.push_str("DATABASE ");
                    out.push_str(&to_q);
                    i += needle.len();
                    continue 'scan;
                }
            }
        }
        let ch = sql[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Statements from the database's own entries (properties, comment, grants), renamed to `to`.
/// Without owners, the settings of roles in the database are left out (the roles may not exist).
pub fn database_statements(toc: &Toc, to: &str, opts: CompareOptions) -> Vec<String> {
    toc.entries
        .iter()
        .filter(|e| is_database_entry(e) && e.desc != "DATABASE")
        .filter(|e| !(opts.ignore_privileges && e.desc == "ACL"))
        .map(|e| database_sql(e, &toc.database, to, opts))
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// A database entry's SQL renamed to `to`, less role settings when owners are ignored.
fn database_sql(e: &TocEntry, from: &str, to: &str, opts: CompareOptions) -> String {
    let sql = rename_database(&super::canonical::definition(e), from, to);
    if !opts.ignore_owners {
        return sql;
    }
    sql.lines().filter(|l| !l.starts_with("ALTER ROLE ")).map(|l| format!("{l}\n")).collect()
}

/// The dump ids of `roots` and of everything they depend on, transitively.
pub fn closure_up(toc: &Toc, roots: &BTreeSet<i64>) -> BTreeSet<i64> {
    let by_id = toc.by_id();
    let mut seen = BTreeSet::new();
    let mut stack: Vec<i64> = roots.iter().copied().collect();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(e) = by_id.get(&id) {
            stack.extend(e.deps.iter().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_rewritten_only_as_names() {
        let sql = "ALTER DATABASE shop SET search_path TO 'app', 'DATABASE shop';\nALTER ROLE r IN DATABASE shop SET work_mem TO '8MB';\nREVOKE CONNECT,TEMPORARY ON DATABASE shop FROM PUBLIC;\nCOMMENT ON DATABASE shopping IS 'x';";
        let out = rename_database(sql, "shop", "pgtier_tmp_1");
        assert_eq!(
            out,
            "ALTER DATABASE \"pgtier_tmp_1\" SET search_path TO 'app', 'DATABASE shop';\nALTER ROLE r IN DATABASE \"pgtier_tmp_1\" SET work_mem TO '8MB';\nREVOKE CONNECT,TEMPORARY ON DATABASE \"pgtier_tmp_1\" FROM PUBLIC;\nCOMMENT ON DATABASE shopping IS 'x';"
        );
        assert_eq!(rename_database("ALTER DATABASE \"My Db\" SET x TO '1';", "My Db", "new"), "ALTER DATABASE \"new\" SET x TO '1';");
        assert_eq!(
            rename_database("COMMENT ON DATABASE a IS 'it''s DATABASE a';", "a", "B"),
            "COMMENT ON DATABASE \"B\" IS 'it''s DATABASE a';"
        );
    }

    #[test]
    fn a_difference_names_the_property_and_both_values() {
        let a = "CREATE DATABASE (database) WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'C';\n\u{1}app\u{1}";
        let b = "CREATE DATABASE (database) WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'en_US.UTF-8';\n\u{1}app\u{1}";
        assert_eq!(what_differs(a, b), "LOCALE differs: 'C' in the backup, 'en_US.UTF-8' restored");
        assert_eq!(what_differs("x\u{1}app\u{1}", "x\u{1}other\u{1}"), "owner differs: \"app\" in the backup, \"other\" restored");
        assert!(
            what_differs("a\nb\u{1}o\u{1}", "a\nc\u{1}o\u{1}")
                .starts_with("definition differs at line 2: \"b\" in the backup, \"c\" restored")
        );
    }

    #[test]
    fn garbage_and_short_heads_are_told_apart() {
        assert_eq!(parse(b"PGD").unwrap_err(), TocError::Incomplete);
        assert!(matches!(parse(b"hello world").unwrap_err(), TocError::Invalid(_)));
        assert_eq!(parse(b"PGDMP\x01\x0e\x00\x04\x08\x01").unwrap_err(), TocError::Incomplete);
        assert!(matches!(parse(b"PGDMP\x01\x63\x00\x04\x08\x01").unwrap_err(), TocError::Invalid(_)));
    }
}
