//! A psql process driven over pipes: each statement is followed by an `\echo` of a marker, so
//! the caller knows where its output ends. psql flushes after every result, and a transaction
//! (for an exported snapshot) stays open for as long as the session does.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};

use serde::de::DeserializeOwned;

use super::{Pg, Running};
use crate::error::Result;

/// Turns off every timeout a database or role may set that could cancel or end a pgtier session.
const GUARDS_OFF: &str = "SELECT count(set_config(name, '0', false)) FROM pg_settings WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout', 'transaction_timeout', 'idle_session_timeout', 'lock_timeout')";

/// An open psql session on one database.
pub struct Session {
    running: Option<Running>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    marker: String,
    database: String,
    /// Why psql ended, once it did: every later statement fails with the same cause.
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
        let args: Vec<String> = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "--no-password"].iter().map(|s| s.to_string()).collect();
        let mut running = pg.spawn("psql", Some(database), &args, Stdio::piped())?;
        let stdin = running.child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(running.child.stdout.take().expect("piped stdout"));
        let marker = format!("--pgtier-end-{}-{}--", std::process::id(), rand_suffix());
        let mut s = Session { running: Some(running), stdin: Some(stdin), stdout, marker, database: database.to_string(), ended: None };
        if let Err(e) = s.query_lines("SELECT 1") {
            let why = match &s.ended {
                Some(Ended::Statement(w) | Ended::Connection(w)) => w.clone(),
                None => e.to_string(),
            };
            return Err(crate::error::Error::Unreachable(format!("cannot connect to database {database:?}: {why}")));
        }
        // The startup options lift these too; this covers servers that have more of them.
        s.exec(GUARDS_OFF)?;
        Ok(s)
    }

    /// Runs one statement and returns its output lines (unaligned, tuples only).
    pub fn query_lines(&mut self, sql: &str) -> Result<Vec<String>> {
        // A session whose psql died (a terminated backend, a killed psql) stays an error for
        // every later statement, never a panic.
        let Some(stdin) = self.stdin.as_mut() else { return Err(self.died()) };
        let script = format!("{sql};\n\\echo {}\n", self.marker);
        if stdin.write_all(script.as_bytes()).and_then(|_| stdin.flush()).is_err() {
            return Err(self.died());
        }
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
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

    /// psql exited: its stderr says why.
    fn died(&mut self) -> crate::error::Error {
        self.stdin.take();
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
        match self.ended.as_ref().expect("set above") {
            Ended::Statement(why) => crate::failed!("database {:?}: {why}", self.database),
            Ended::Connection(why) => {
                crate::error::Error::Unreachable(format!("database {:?}: the session with PostgreSQL ended: {why}", self.database))
            }
        }
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
