//! A psql process driven over pipes: each statement is followed by an `\echo` of a marker, so
//! the caller knows where its output ends. psql flushes after every result, and a transaction
//! (for an exported snapshot) stays open for as long as the session does. psql stops at the
//! first failed statement (`ON_ERROR_STOP`); outside a transaction the session then starts a
//! new psql for the next statement, so a caller may try something else after a failure (create
//! a database another way, say). Inside a transaction it stays ended: what followed would no
//! longer be in that transaction.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};

use serde::de::DeserializeOwned;

use super::{Pg, Running};
use crate::error::Result;

/// Turns off every timeout a database or role may set that could cancel or end a pgtier session.
const GUARDS_OFF: &str = "SELECT count(set_config(name, '0', false)) FROM pg_settings WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout', 'transaction_timeout', 'idle_session_timeout', 'lock_timeout')";

/// An open psql session on one database.
pub struct Session {
    /// What a new psql for this session is started with.
    pg: Pg,
    running: Option<Running>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    marker: String,
    database: String,
    /// Whether a transaction the caller began is open.
    in_transaction: bool,
    /// Why psql ended for good: every later statement fails with the same cause.
    ended: Option<Ended>,
}

/// Why a session's psql ended.
enum Ended {
    /// A statement failed (the server's message).
    Statement(String),
    /// The connection broke or psql was killed: says nothing about the data.
    Connection(String),
}

impl Session {
    /// Starts psql on `database` and checks that it connected.
    pub fn start(pg: &Pg, database: &str) -> Result<Session> {
        let marker = format!("--pgtier-end-{}-{}--", std::process::id(), rand_suffix());
        let mut s = Session {
            pg: pg.clone(),
            running: None,
            stdin: None,
            stdout: None,
            marker,
            database: database.to_string(),
            in_transaction: false,
            ended: None,
        };
        s.spawn()?;
        Ok(s)
    }

    /// Starts (or starts again) this session's psql and lifts the timeouts.
    fn spawn(&mut self) -> Result<()> {
        let args: Vec<String> = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "--no-password"].iter().map(|s| s.to_string()).collect();
        let mut running = self.pg.spawn("psql", Some(&self.database), &args, Stdio::piped())?;
        let (Some(stdin), Some(stdout)) = (running.child.stdin.take(), running.child.stdout.take()) else {
            running.kill();
            return Err(crate::failed!("psql was started without its pipes"));
        };
        self.running = Some(running);
        self.stdin = Some(stdin);
        self.stdout = Some(BufReader::new(stdout));
        self.ended = None;
        self.in_transaction = false;
        if let Err(e) = self.roundtrip("SELECT 1") {
            let why = match &self.ended {
                Some(Ended::Statement(w) | Ended::Connection(w)) => w.clone(),
                None => e.to_string(),
            };
            self.ended = Some(Ended::Connection(why.clone()));
            return Err(crate::error::Error::Unreachable(format!("cannot connect to database {:?}: {why}", self.database)));
        }
        // The startup options lift these too; this covers servers that have more of them.
        self.roundtrip(GUARDS_OFF).map(|_| ())
    }

    /// The server's version.
    pub fn server_version(&self) -> super::Version {
        self.pg.server_version()
    }

    /// Runs one statement and returns its output lines (unaligned, tuples only).
    pub fn query_lines(&mut self, sql: &str) -> Result<Vec<String>> {
        // After a failed statement outside a transaction, a new psql takes over.
        if self.running.is_none() && self.ended.is_none() {
            self.spawn()?;
        }
        let head = sql.trim_start().to_ascii_uppercase();
        let lines = self.roundtrip(sql)?;
        if head.starts_with("BEGIN") || head.starts_with("START TRANSACTION") {
            self.in_transaction = true;
        } else if ["COMMIT", "ROLLBACK", "END", "ABORT"].iter().any(|w| head.starts_with(w)) {
            self.in_transaction = false;
        }
        Ok(lines)
    }

    /// Sends one statement and reads its output up to the marker.
    fn roundtrip(&mut self, sql: &str) -> Result<Vec<String>> {
        // A session whose psql died (a terminated backend, a killed psql) stays an error for
        // every later statement, never a panic.
        let (Some(stdin), Some(_)) = (self.stdin.as_mut(), self.stdout.as_ref()) else { return Err(self.died()) };
        let script = format!("{sql};\n\\echo {}\n", self.marker);
        if stdin.write_all(script.as_bytes()).and_then(|_| stdin.flush()).is_err() {
            return Err(self.died());
        }
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = match self.stdout.as_mut() {
                Some(out) => out.read_line(&mut line),
                None => Ok(0),
            };
            match read {
                Ok(0) | Err(_) => return Err(self.died()),
                Ok(_) => {}
            }
            let line = line.trim_end_matches('\n');
            if line == self.marker {
                return Ok(lines);
            }
            lines.push(line.to_string());
        }
    }

    /// Runs a statement for its effect.
    pub fn exec(&mut self, sql: &str) -> Result<()> {
        self.query_lines(sql).map(|_| ())
    }

    /// Runs a query returning one value in one row.
    pub fn query_value(&mut self, sql: &str) -> Result<String> {
        let lines = self.query_lines(sql)?;
        lines.into_iter().next().ok_or_else(|| crate::failed!("query returned no rows: {sql}"))
    }

    /// Runs a query returning one jsonb value and parses it.
    pub fn query_json<T: DeserializeOwned>(&mut self, sql: &str) -> Result<T> {
        let text = self.query_value(sql)?;
        serde_json::from_str(&text).map_err(|e| crate::failed!("unexpected answer from PostgreSQL ({e}): {text:.200}"))
    }

    /// Ends the session cleanly.
    pub fn close(mut self) -> Result<()> {
        self.stdin.take();
        match self.running.take() {
            Some(r) => r.wait(),
            None => Ok(()),
        }
    }

    /// psql exited: its stderr says why. A failed statement outside a transaction leaves the
    /// session usable (the next statement starts a new psql); anything else ends it.
    fn died(&mut self) -> crate::error::Error {
        self.stdin.take();
        self.stdout.take();
        if self.ended.is_none() {
            let ended = match self.running.take() {
                Some(r) => match r.finish() {
                    // ON_ERROR_STOP: a statement failed, and the server said why.
                    Err(t) if t.code == Some(3) => Ended::Statement(strip_prefix(&t.to_string())),
                    // The connection went bad (2), or a signal killed psql: nothing about the data.
                    Err(t) if t.code == Some(2) || t.killed() => Ended::Connection(strip_prefix(&t.to_string())),
                    Err(t) => Ended::Statement(strip_prefix(&t.to_string())),
                    Ok(()) => Ended::Connection("psql ended unexpectedly".to_string()),
                },
                None => Ended::Connection("the session is closed".to_string()),
            };
            self.ended = Some(ended);
        }
        let err = match self.ended.as_ref() {
            Some(Ended::Statement(why)) => crate::failed!("database {:?}: {why}", self.database),
            Some(Ended::Connection(why)) => {
                crate::error::Error::Unreachable(format!("database {:?}: the session with PostgreSQL ended: {why}", self.database))
            }
            None => crate::failed!("database {:?}: the session is closed", self.database),
        };
        if matches!(self.ended, Some(Ended::Statement(_))) && !self.in_transaction {
            self.ended = None;
        }
        err
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin.take();
        if let Some(r) = self.running.take() {
            r.kill();
        }
    }
}

/// Drops the "psql exited with status N: " wrapper, keeping PostgreSQL's own message.
fn strip_prefix(msg: &str) -> String {
    msg.split_once(": ").map(|(_, rest)| rest).unwrap_or(msg).replace("psql:<stdin>:", "").trim().to_string()
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}
