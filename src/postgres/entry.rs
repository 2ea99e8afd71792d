//! One entry of a custom-format archive's table of contents: what `archive` reads and
//! `canonical` puts in a form that compares across pg_dump versions.

/// One entry of the archive's table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub dump_id: i64,
    pub had_dumper: bool,
    /// `TABLE`, `INDEX`, `TABLE DATA`, `DATABASE PROPERTIES`, …
    pub desc: String,
    pub tag: String,
    /// 1 none, 2 pre-data, 3 data, 4 post-data.
    pub section: i64,
    pub defn: String,
    pub copy_stmt: String,
    /// The schema, empty for objects outside one.
    pub namespace: String,
    pub tablespace: String,
    pub owner: String,
    pub deps: Vec<i64>,
    /// In a directory-format archive, the file holding the entry's data (`1234.dat.gz`
    /// without the compression suffix, as pg_dump names it in `toc.dat`).
    pub file: Option<String>,
}
