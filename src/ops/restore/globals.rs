//! Applying a saved `pg_dumpall --globals-only` to a server: roles and tablespaces that already
//! exist are skipped (their CREATE, ALTER and COMMENT statements), everything else is applied,
//! so a restore onto a new server has the roles that own and are granted the objects.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;

use serde::Serialize;

use crate::context::EnvContext;
use crate::crypto::Keys;
use crate::error::Result;
use crate::names::Kind;
use crate::ops::restore::{Source, open_source};
use crate::pipeline::{self, Layer};
use crate::postgres::Pg;
use crate::ui::Ui;

/// What `restore-globals` did.
#[derive(Debug, Serialize)]
pub struct GlobalsReport {
    pub source: String,
    pub from: crate::ops::restore::Origin,
    pub created_roles: Vec<String>,
    pub skipped_roles: Vec<String>,
    pub skipped_tablespaces: Vec<String>,
}

/// Restores the newest (or named) globals dump of a project/env onto its server.
pub fn restore_globals(e: &mut EnvContext, source: &Source, keys: &Keys, ui: &Ui) -> Result<GlobalsReport> {
    let (cfg, project, env) = (e.cfg, e.project, e.env.clone());
    let env = env.as_str();
    let database = project.database(env)?;
    let opened = open_source(e, source, Kind::Globals, ui)?;
    let (reader, check) = opened.split();
    let (mut sql_reader, decoded) = pipeline::decoder(reader, keys, &check.source)?;
    if decoded.payload() != Layer::Sql {
        return Err(crate::failed!("{}: holds {}, not the SQL of pg_dumpall --globals-only", check.source, decoded.payload().name()));
    }
    let mut sql = String::new();
    sql_reader.by_ref().take(64 << 20).read_to_string(&mut sql).map_err(|e| crate::failed!("{}: {e}", check.source))?;
    std::io::copy(&mut sql_reader, &mut std::io::sink()).map_err(|e| crate::failed!("{}: {e}", check.source))?;
    check.check_digest()?;

    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)
        .or_else(|_| Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), "postgres"))?;
    let mut admin = pg.admin_session()?;
    let roles: BTreeSet<String> =
        admin.query_json::<Vec<String>>("SELECT coalesce(jsonb_agg(rolname), '[]') FROM pg_roles")?.into_iter().collect();
    let spaces: BTreeSet<String> =
        admin.query_json::<Vec<String>>("SELECT coalesce(jsonb_agg(spcname), '[]') FROM pg_tablespace")?.into_iter().collect();
    admin.close()?;
    let filtered = filter(&sql, &roles, &spaces);

    let args: Vec<String> =
        ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-o", "/dev/null"].iter().map(|s| s.to_string()).collect();
    let mut psql = pg.spawn("psql", Some("postgres"), &args, Stdio::piped())?;
    {
        use std::io::Write;
        let mut stdin = psql.child.stdin.take().expect("piped stdin");
        stdin.write_all(filtered.sql.as_bytes()).map_err(|e| crate::failed!("psql: {e}"))?;
    }
    psql.wait().map_err(|e| e.context("applying the globals"))?;
    Ok(GlobalsReport {
        source: check.source,
        from: check.from,
        created_roles: filtered.created,
        skipped_roles: filtered.skipped_roles,
        skipped_tablespaces: filtered.skipped_spaces,
    })
}

/// The globals SQL without the statements about roles and tablespaces that already exist.
pub struct Filtered {
    pub sql: String,
    pub created: Vec<String>,
    pub skipped_roles: Vec<String>,
    pub skipped_spaces: Vec<String>,
}

/// Drops `CREATE ROLE`, `ALTER ROLE` and `COMMENT ON ROLE` lines of existing roles, and
/// `CREATE TABLESPACE` lines of existing tablespaces.
pub fn filter(sql: &str, roles: &BTreeSet<String>, spaces: &BTreeSet<String>) -> Filtered {
    let mut out =
        Filtered { sql: String::with_capacity(sql.len()), created: Vec::new(), skipped_roles: Vec::new(), skipped_spaces: Vec::new() };
    for line in sql.split_inclusive('\n') {
        let t = line.trim_start();
        let role = ["CREATE ROLE ", "ALTER ROLE ", "COMMENT ON ROLE "]
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .and_then(crate::postgres::first_ident);
        if let Some(r) = role {
            if roles.contains(&r) {
                if t.starts_with("CREATE ROLE ") {
                    out.skipped_roles.push(r);
                }
                continue;
            }
            if t.starts_with("CREATE ROLE ") {
                out.created.push(r);
            }
        }
        if let Some(s) = t.strip_prefix("CREATE TABLESPACE ").and_then(crate::postgres::first_ident)
            && spaces.contains(&s)
        {
            out.skipped_spaces.push(s);
            continue;
        }
        out.sql.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_roles_are_skipped_and_others_kept() {
        let sql = "SET client_encoding = 'UTF8';\nCREATE ROLE app_owner;\nALTER ROLE app_owner WITH NOSUPERUSER LOGIN;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\nCREATE ROLE \"Odd \"\"Name\";\nALTER ROLE \"Odd \"\"Name\" WITH LOGIN;\nCOMMENT ON ROLE postgres IS 'x';\nCREATE TABLESPACE fast OWNER postgres LOCATION '/x';\nGRANT app_owner TO \"Odd \"\"Name\" GRANTED BY postgres;\n";
        let f = filter(sql, &BTreeSet::from(["postgres".to_string()]), &BTreeSet::from(["fast".to_string()]));
        assert_eq!(f.created, vec!["app_owner", "Odd \"Name"]);
        assert_eq!(f.skipped_roles, vec!["postgres"]);
        assert_eq!(f.skipped_spaces, vec!["fast"]);
        assert!(!f.sql.contains("ROLE postgres") && !f.sql.contains("TABLESPACE"));
        assert!(f.sql.contains("ALTER ROLE app_owner") && f.sql.contains("GRANT app_owner"));
    }
}
