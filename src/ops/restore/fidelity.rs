//! Giving back the database that was dumped: it is created as the archive's own `DATABASE`
//! entry says (encoding, locale provider, locales, tablespace, owner), its properties (settings,
//! role-in-database settings, grants, comment, connection limit) are applied from the archive,
//! and afterwards its schema and large objects are compared with the archive's, naming every
//! difference.

use std::io::Read;
use std::process::Stdio;

use super::Load;
use crate::error::Result;
use crate::postgres::archive::{self, CompareOptions, Toc};
use crate::postgres::{Pg, Session, quote_ident, quote_literal};

/// How the database a restore fills was created.
#[derive(Debug, Default)]
pub struct Created {
    /// What could not be recreated as it was, for the report.
    pub warnings: Vec<String>,
    /// Leave the `DATABASE` entry out of the comparison (a tablespace or locale this server
    /// lacks was replaced, and said so).
    pub creation_differs: bool,
}

/// Creates `db` as the archive's `DATABASE` entry describes it. `owned`: give it the archive's
/// owner (when that role exists here).
pub fn create_like_archive(admin: &mut Session, db: &str, toc: &Toc, owned: bool) -> Result<Created> {
    let mut out = Created::default();
    let Some(entry) = toc.database_entry() else {
        admin.exec(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(db)))?;
        out.warnings.push("the archive does not describe its database (a partial pg_dump): created with this server's defaults".into());
        out.creation_differs = true;
        return Ok(out);
    };
    let mut sql = archive::rename_database(entry.defn.trim().trim_end_matches(';'), &toc.database, db);
    // pg_dump 15 and later name the default provider; servers before 15 have only that one and
    // do not know the word.
    if admin.server_version().major < 15 {
        sql = sql.replace(" LOCALE_PROVIDER = libc", "");
    }
    if let Some((clause, space)) = tablespace_clause(&sql) {
        let exists = admin.query_value(&format!("SELECT count(*) FROM pg_tablespace WHERE spcname = {}", quote_literal(&space)))?;
        if exists.trim() != "1" {
            sql = sql.replacen(&clause, "", 1);
            out.warnings.push(format!(
                "the database lived in tablespace {space:?}, which does not exist on this server: it is restored into the default tablespace"
            ));
            out.creation_differs = true;
        }
    }
    let owner = (owned && !entry.owner.is_empty()).then_some(entry.owner.as_str());
    let owner_clause = match owner {
        Some(o) if admin.role_exists(o)? => format!(" OWNER = {}", quote_ident(o)),
        Some(o) => {
            out.warnings.push(format!(
                "role {o:?}, which owned the database, does not exist here: run `pgtier restore-globals` first to keep owners"
            ));
            String::new()
        }
        None => String::new(),
    };
    if let Err(e) = admin.exec(&format!("{sql}{owner_clause}")) {
        // The old server's locale may not exist here: keep the encoding, take this server's locale.
        let encoding = option_value(&sql, "ENCODING").unwrap_or_else(|| "UTF8".into());
        admin
            .exec(&format!("CREATE DATABASE {} TEMPLATE template0 ENCODING = {}{owner_clause}", quote_ident(db), quote_literal(&encoding)))
            .map_err(|e2| e2.context(format!("creating database {db:?} (as the backup's failed too: {e})")))?;
        out.warnings.push(format!(
            "could not recreate the database's locale here ({e}); it uses this server's default locale, so sort order may differ"
        ));
        out.creation_differs = true;
    }
    Ok(out)
}

/// The ` TABLESPACE = name` clause of a CREATE DATABASE statement and the tablespace's name.
fn tablespace_clause(sql: &str) -> Option<(String, String)> {
    let start = sql.find(" TABLESPACE = ")?;
    let rest = &sql[start + " TABLESPACE = ".len()..];
    let (name, len) = if let Some(q) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = q.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|(_, c)| *c) == Some('"') {
                    chars.next();
                    name.push('"');
                    continue;
                }
                end = Some(i + 2);
                break;
            }
            name.push(c);
        }
        (name, end?)
    } else {
        let end = rest.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(rest.len());
        (rest[..end].to_string(), end)
    };
    Some((sql[start..start + " TABLESPACE = ".len() + len].to_string(), name))
}

/// The value of `KEY = 'value'` in a CREATE DATABASE statement.
fn option_value(sql: &str, key: &str) -> Option<String> {
    let at = sql.find(&format!(" {key} = '"))? + key.len() + 5;
    let end = sql[at..].find('\'')?;
    Some(sql[at..at + end].to_string())
}

/// Applies the archive's database properties (settings, role-in-database settings, grants,
/// comment, connection limit) to `db`.
pub fn apply_properties(admin: &mut Session, db: &str, toc: &Toc, opts: CompareOptions) -> Result<()> {
    for stmt in archive::database_statements(toc, db, opts) {
        admin.exec(stmt.trim().trim_end_matches(';')).map_err(|e| e.context("restoring the database's settings, grants and comment"))?;
    }
    Ok(())
}

/// The schema of `db` as pg_dump sees it.
pub fn schema_of(pg: &Pg, db: &str) -> Result<Toc> {
    let args = vec!["--schema-only".to_string(), "--format=custom".into(), "--no-password".into()];
    let mut dump = pg.spawn("pg_dump", Some(db), &args, Stdio::null())?;
    let mut bytes = Vec::new();
    let read = dump.child.stdout.take().expect("piped stdout").read_to_end(&mut bytes);
    dump.wait().map_err(|e| e.context(format!("reading back the schema of {db:?}")))?;
    read.map_err(|e| crate::failed!("reading pg_dump's output: {e}"))?;
    archive::parse(&bytes).map(|(toc, _)| toc).map_err(|e| crate::failed!("pg_dump's schema of {db:?} does not parse: {e:?}"))
}

/// What comparing a restored database with its archive found.
pub struct Compared {
    /// The differences, one line each, naming the object, the property and both values.
    pub diffs: Vec<String>,
    /// The restored database's schema fingerprint, in the canonical form the manifest's is in
    /// (None where owners or grants were left out: it could not be the backup's).
    pub fingerprint: Option<String>,
}

/// Compares the restored `db` with the archive: every schema object and database property, and
/// the number of large objects.
pub fn compare(pg: &Pg, db: &str, toc: &Toc, load: &Load, creation_differs: bool) -> Result<Compared> {
    let restored = schema_of(pg, db)?;
    let fingerprint = (!load.no_owner && !load.no_privileges && load.skip.is_empty() && !creation_differs).then(|| restored.fingerprint());
    let by_id = toc.by_id();
    let skipped: Vec<String> = load.skip.iter().filter_map(|id| by_id.get(id)).map(|e| archive::entry_key(e)).collect();
    let mut diffs: Vec<String> = archive::differences(toc, &restored, load.compare())
        .into_iter()
        .filter(|d| !(creation_differs && d.starts_with("DATABASE (database)")))
        .filter(|d| !skipped.iter().any(|k| d.strip_prefix(k.as_str()).is_some_and(|rest| rest == " is missing")))
        .collect();
    let mut s = pg.session(db)?;
    let los: u64 = s.query_value("SELECT count(*) FROM pg_largeobject_metadata")?.trim().parse().unwrap_or(0);
    if los != toc.large_objects() {
        diffs.push(format!("{los} large objects, the backup holds {}", toc.large_objects()));
    }
    for (seq, value, called) in archive::sequence_values(toc) {
        let got = s.query_value(&format!("SELECT last_value::text || ' ' || is_called::text FROM {seq}"))?;
        if got.trim() != format!("{value} {}", if called { "true" } else { "false" }) {
            diffs.push(format!("sequence {seq} is at {}, the backup's is at {value}", got.trim()));
        }
    }
    s.close()?;
    Ok(Compared { diffs, fingerprint })
}

/// The roles a policy applies to (`CREATE POLICY … TO a, "B" USING …`), unquoted.
fn policy_roles(defn: &str) -> Vec<String> {
    let Some(to) = defn.split(" TO ").nth(1) else { return Vec::new() };
    let to = to.split(" USING").next().unwrap_or(to).split(" WITH CHECK").next().unwrap_or(to);
    to.split(',')
        .map(|r| r.trim().trim_end_matches(';').trim())
        .map(|r| r.strip_prefix('"').and_then(|r| r.strip_suffix('"')).map(|r| r.replace("\"\"", "\"")).unwrap_or_else(|| r.to_string()))
        .filter(|r| !r.is_empty() && r != "public")
        .collect()
}

/// Policies that name one of `roles`, which cannot be created where those roles do not exist.
pub fn policies_naming(toc: &Toc, roles: &[String]) -> Vec<i64> {
    toc.entries
        .iter()
        .filter(|e| e.desc == "POLICY" && policy_roles(&e.defn).iter().any(|r| roles.contains(r)))
        .map(|e| e.dump_id)
        .collect()
}

/// Roles the archive needs (owners, roles named by policies) that do not exist on this server.
pub fn missing_roles(admin: &mut Session, toc: &Toc) -> Result<Vec<String>> {
    let mut roles: std::collections::BTreeSet<String> = toc.entries.iter().map(|e| e.owner.clone()).filter(|o| !o.is_empty()).collect();
    roles.extend(toc.entries.iter().filter(|e| e.desc == "POLICY").flat_map(|e| policy_roles(&e.defn)));
    let mut missing = Vec::new();
    for r in roles {
        if !admin.role_exists(&r)? {
            missing.push(r);
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_a_policy_names() {
        assert_eq!(policy_roles("CREATE POLICY p ON t FOR SELECT TO fx_reader USING (true);\n"), vec!["fx_reader"]);
        assert_eq!(policy_roles("CREATE POLICY p ON t TO a, \"Odd \"\"One\" USING (x) WITH CHECK (y);"), vec!["a", "Odd \"One"]);
        assert!(policy_roles("CREATE POLICY p ON t USING (owner_name = current_user);").is_empty());
    }

    #[test]
    fn the_tablespace_and_encoding_of_a_create_database() {
        let sql = "CREATE DATABASE \"x\" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = icu LOCALE = 'C' ICU_LOCALE = 'en-US' TABLESPACE = \"fast \"\"ssd\"";
        let (clause, name) = tablespace_clause(sql).unwrap();
        assert_eq!(name, "fast \"ssd");
        assert_eq!(
            sql.replacen(&clause, "", 1),
            "CREATE DATABASE \"x\" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = icu LOCALE = 'C' ICU_LOCALE = 'en-US'"
        );
        assert_eq!(tablespace_clause("CREATE DATABASE a WITH TABLESPACE = ts LOCALE = 'C'").unwrap().1, "ts");
        assert_eq!(option_value(sql, "ENCODING").as_deref(), Some("UTF8"));
        assert!(tablespace_clause("CREATE DATABASE a").is_none());
    }
}
