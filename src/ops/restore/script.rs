//! pg_restore's script through psql: for one table (in one transaction, between checks pgtier
//! writes), and for a pg_restore newer than the target server (17 and later open their session
//! with `SET transaction_timeout`, which servers up to 16 refuse: that line is left out, and the
//! rest runs as pg_restore would run it).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use crate::error::{Error, Result};
use crate::pipeline;
use crate::postgres::Pg;
use crate::ui::Progress;

/// What surrounds pg_restore's script.
pub(super) struct Script<'a> {
    /// SQL run before it (in the same session).
    pub prefix: &'a str,
    /// SQL run after it.
    pub suffix: &'a str,
    /// All of it in one transaction (psql --single-transaction).
    pub single_transaction: bool,
}

/// How the script run failed.
pub(super) enum Failure {
    /// A check of pgtier's own (`RAISE EXCEPTION 'pgtier: …'`) refused it: the reason.
    Refused(String),
    Other(Error),
}

/// The session settings servers up to 16 do not know, which pg_restore 17 and later set.
const NEWER_SETTINGS: [&str; 1] = ["SET transaction_timeout = 0;"];

/// Runs `pg_restore --file=- args` over `reader` into psql on `db`, with `script` around it.
pub(super) fn through_psql(
    pg: &Pg,
    db: &str,
    args: &[String],
    mut reader: Box<dyn Read + Send>,
    script: &Script,
    source: &str,
) -> std::result::Result<(), Failure> {
    let mut args = args.to_vec();
    args.insert(0, "--file=-".into());
    let mut restore = pg.spawn("pg_restore", None, &args, Stdio::piped()).map_err(Failure::Other)?;
    let mut psql_args: Vec<String> =
        ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-o", "/dev/null"].iter().map(|s| s.to_string()).collect();
    if script.single_transaction {
        psql_args.push("--single-transaction".into());
    }
    let mut psql = match pg.spawn("psql", Some(db), &psql_args, Stdio::piped()) {
        Ok(p) => p,
        Err(e) => {
            restore.kill();
            return Err(Failure::Other(e));
        }
    };
    let (Some(mut restore_in), Some(out), Some(mut psql_in), Some(mut psql_out)) =
        (restore.child.stdin.take(), restore.child.stdout.take(), psql.child.stdin.take(), psql.child.stdout.take())
    else {
        restore.kill();
        psql.kill();
        return Err(Failure::Other(crate::failed!("pg_restore or psql was started without its pipes")));
    };
    let strip = pg.server_version().major < 17;
    let drain = std::thread::spawn(move || std::io::copy(&mut psql_out, &mut std::io::sink()));
    let fed = std::thread::spawn(move || -> std::io::Result<u64> {
        let n = pipeline::copy_counted(&mut reader, &mut restore_in, &Progress::hidden());
        drop(restore_in);
        match n {
            // pg_restore stops reading once it has what it was asked for: read on, so the
            // stream's checksum is still checked to the end.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::io::copy(&mut reader, &mut std::io::sink()),
            other => other,
        }
    });
    let (prefix, suffix) = (script.prefix.to_string(), script.suffix.to_string());
    let piped = std::thread::spawn(move || -> std::io::Result<()> {
        psql_in.write_all(prefix.as_bytes())?;
        let mut lines = BufReader::with_capacity(1 << 20, out);
        let mut line = Vec::new();
        loop {
            line.clear();
            if lines.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if strip && NEWER_SETTINGS.iter().any(|s| line.trim_ascii_end() == s.as_bytes()) {
                continue;
            }
            psql_in.write_all(&line)?;
        }
        psql_in.write_all(suffix.as_bytes())
    });
    let restored = restore.finish();
    let piped = piped.join().map_err(|_| Failure::Other(crate::failed!("restore pipe panicked")))?;
    let applied = psql.wait();
    let fed = fed.join().map_err(|_| Failure::Other(crate::failed!("restore feeder panicked")))?;
    let _ = drain.join();
    if let Err(e) = fed {
        return Err(Failure::Other(super::unreadable(source, &e, "; nothing was changed")));
    }
    // psql first: when it stops at an error, pg_restore dies writing to it (SIGPIPE), and the
    // server's message is the one that says why.
    if let Err(e) = applied {
        let text = e.to_string();
        if let Some(r) = text.split("pgtier: ").nth(1) {
            return Err(Failure::Refused(r.lines().next().unwrap_or(r).trim().to_string()));
        }
        return Err(Failure::Other(e.context(if script.single_transaction {
            "the restore failed and was rolled back; nothing was changed"
        } else {
            "the restore failed"
        })));
    }
    restored.map_err(|t| Failure::Other(t.into()))?;
    piped.map_err(|e| Failure::Other(crate::failed!("passing the restore script to psql: {e}")))?;
    Ok(())
}

/// `through_psql` for a whole archive (or the entries of `args`' list), not in one transaction,
/// as pg_restore itself would run it.
pub(super) fn whole(pg: &Pg, db: &str, args: &[String], reader: Box<dyn Read + Send>, source: &str) -> Result<()> {
    let script = Script { prefix: "", suffix: "", single_transaction: false };
    through_psql(pg, db, args, reader, &script, source).map_err(|f| match f {
        Failure::Refused(r) => crate::failed!("refusing the restore: {r}"),
        Failure::Other(e) => e,
    })
}
