//! Keeping a hand-made SQL file inside its target database. psql runs it in restricted mode
//! (`\restrict`), where every meta-command fails, so no line can switch databases (`\connect`)
//! or run a shell command (`\!`). The one pattern pg_dump itself writes, the `pg_dump -C`
//! preamble (CREATE DATABASE, its owner, `\connect`), is recognised and skipped with a note, and
//! its statements about that database are applied to the target instead.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use crate::postgres::archive::rename_database;

/// The error kind a refused line is reported with (nothing else in the pipeline uses it).
pub const REFUSED: io::ErrorKind = io::ErrorKind::PermissionDenied;

/// The database a `\connect` line names: `\connect db` or pg_dump's
/// `\connect -reuse-previous=on "dbname='db'"`.
fn connect_target(line: &str) -> Option<String> {
    let arg = line.split_whitespace().skip(1).find(|w| !w.starts_with('-'))?;
    let arg = arg.trim_matches('"');
    match arg.strip_prefix("dbname='") {
        Some(rest) => Some(rest.strip_suffix('\'')?.replace("\\'", "'")),
        None => crate::postgres::first_ident(arg).or_else(|| Some(arg.to_string())),
    }
}

/// A reader of the SQL to give psql: the file, filtered, behind a `\restrict` line.
pub struct SqlGuard<R> {
    inner: BufReader<R>,
    out: Vec<u8>,
    pos: usize,
    line_no: u64,
    in_copy: bool,
    in_head: bool,
    preamble_db: Option<String>,
    target: String,
    notes: Arc<Mutex<Vec<String>>>,
}

impl<R: Read> SqlGuard<R> {
    /// Wraps `inner`; `target` is the database the SQL must stay in. Notes (a skipped
    /// preamble) are pushed to `notes`.
    pub fn new(inner: R, target: &str, notes: Arc<Mutex<Vec<String>>>) -> Self {
        let key: String = (0..32).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random::<usize>() % 36])).collect();
        SqlGuard {
            inner: BufReader::with_capacity(1 << 20, inner),
            out: format!("\\restrict pgtier{key}\n").into_bytes(),
            pos: 0,
            line_no: 0,
            in_copy: false,
            in_head: true,
            preamble_db: None,
            target: target.to_string(),
            notes,
        }
    }

    fn refuse(&self, what: &str) -> io::Error {
        io::Error::new(
            REFUSED,
            format!(
                "line {}: {what}; pgtier restores a SQL file only into its target database and runs no psql commands from it",
                self.line_no
            ),
        )
    }

    /// Reads one line and decides what to pass on.
    fn next_line(&mut self) -> io::Result<bool> {
        let mut line = Vec::new();
        if self.inner.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.in_copy {
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            if body.strip_suffix(b"\r").unwrap_or(body) == b"\\." {
                self.in_copy = false;
            }
            self.out.extend_from_slice(&line);
            return Ok(true);
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let t = text.trim();
        if t.starts_with('\\') {
            let word = t.split_whitespace().next().unwrap_or("");
            match word {
                // pg_dump's own guard lines; psql runs ours instead.
                "\\restrict" | "\\unrestrict" => return Ok(true),
                "\\connect" | "\\c" => {
                    // pg_dump -C reconnects to the database it created, which here is the target.
                    let named = connect_target(t);
                    let Some(db) = self.preamble_db.clone().filter(|db| named.as_deref() == Some(db.as_str())) else {
                        return Err(self.refuse(&format!("`{t}` would switch to another database")));
                    };
                    if self.in_head {
                        self.in_head = false;
                        let note = format!(
                            "skipped the pg_dump -C preamble (CREATE DATABASE {db}, \\connect): the SQL is restored into {}",
                            self.target
                        );
                        tracing::info!("{note}");
                        self.notes.lock().expect("notes").push(note);
                    }
                    return Ok(true);
                }
                _ => return Err(self.refuse(&format!("`{word}` is a psql command"))),
            }
        }
        if self.in_head && t.starts_with("CREATE DATABASE ") {
            self.preamble_db = crate::postgres::first_ident(&t["CREATE DATABASE ".len()..]);
            return Ok(true);
        }
        let names_database = t.starts_with("ALTER DATABASE ")
            || t.starts_with("COMMENT ON DATABASE ")
            || t.contains(" ON DATABASE ")
            || t.contains(" IN DATABASE ");
        if names_database && let Some(db) = &self.preamble_db {
            self.out.extend_from_slice(rename_database(&text, db, &self.target).as_bytes());
            return Ok(true);
        }
        if !(t.is_empty() || t.starts_with("--") || t.starts_with("SET ") || t.starts_with("SELECT pg_catalog.set_config")) {
            self.in_head = false;
        }
        if t.starts_with("COPY ") && t.ends_with("FROM stdin;") {
            self.in_copy = true;
        }
        self.out.extend_from_slice(&line);
        Ok(true)
    }
}

impl<R: Read> Read for SqlGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
            if !self.next_line()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> (io::Result<String>, Vec<String>) {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let mut g = SqlGuard::new(sql.as_bytes(), "pgtier_tmp_1_x", notes.clone());
        let mut out = String::new();
        let r = g.read_to_string(&mut out).map(|_| out);
        let n = notes.lock().unwrap().clone();
        (r, n)
    }

    #[test]
    fn the_create_preamble_is_skipped_and_its_database_statements_renamed() {
        let sql = "--\n\\restrict abc\nSET statement_timeout = 0;\nCREATE DATABASE shop WITH TEMPLATE = template0;\nALTER DATABASE shop OWNER TO app;\n\\unrestrict abc\n\\connect -reuse-previous=on \"dbname='shop'\"\n\\restrict abc\nALTER DATABASE shop SET search_path TO 'app';\n\\connect shop\nCREATE TABLE t (x text);\nCOPY public.t (x) FROM stdin;\n\\! not a command inside COPY\n\\.\n\\unrestrict abc\n";
        let (out, notes) = run(sql);
        let out = out.unwrap();
        assert!(out.starts_with("\\restrict pgtier"), "{out}");
        assert!(!out.contains("CREATE DATABASE") && !out.contains("\\connect") && !out.contains("restrict abc"), "{out}");
        assert!(
            out.contains("ALTER DATABASE \"pgtier_tmp_1_x\" OWNER TO app;")
                && out.contains("ALTER DATABASE \"pgtier_tmp_1_x\" SET search_path"),
            "{out}"
        );
        assert!(out.contains("\\! not a command inside COPY\n\\.\n"), "{out}");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn connect_and_shell_commands_are_refused() {
        let (out, _) = run("CREATE TABLE t (x int);\n\\connect other\n");
        assert!(out.unwrap_err().to_string().contains("line 2: `\\connect other` would switch"));
        let (out, _) = run("SELECT 1;\n  \\! touch /tmp/x\n");
        assert!(out.unwrap_err().to_string().contains("`\\!` is a psql command"));
        let (out, _) = run("\\c other\n");
        assert!(out.is_err());
    }
}
