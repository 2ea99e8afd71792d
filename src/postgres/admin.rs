//! Database-level operations pgtier needs: existence, create, rename, drop, ending connections,
//! and counting rows per table.

use std::collections::BTreeMap;

use super::Session;
use crate::error::Result;
use crate::vocab::DbInfo;

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The identifier at the start of `s` (quoted or not), unquoted.
pub fn first_ident(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                    continue;
                }
                return Some(out);
            }
            out.push(c);
        }
        None
    } else {
        let end = s.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(s.len());
        (end > 0).then(|| s[..end].to_string())
    }
}

/// Quotes a string literal for SQL (standard_conforming_strings is on since PostgreSQL 9.1).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Row counts of every user table, keyed `schema.table` (quoted where needed), counted in the
/// session's snapshot. Tables owned by extensions are left out, as pg_dump leaves their data out.
pub fn count_rows_sql() -> &'static str {
    r#"SELECT coalesce(jsonb_object_agg(format('%I.%I', n.nspname, c.relname),
        (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint), '{}'::jsonb)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"#
}

impl Session {
    /// Whether a role exists.
    pub fn role_exists(&mut self, role: &str) -> Result<bool> {
        Ok(self.query_value(&format!("SELECT count(*) FROM pg_roles WHERE rolname = {}", quote_literal(role)))?.trim() == "1")
    }

    /// Row counts of every user table in the session's database.
    pub fn count_rows(&mut self) -> Result<BTreeMap<String, u64>> {
        self.query_json(count_rows_sql())
    }

    /// Owner, encoding and locale of `db`, if it exists.
    pub fn database_info(&mut self, db: &str) -> Result<Option<DbInfo>> {
        let sql = format!(
            "SELECT coalesce((SELECT jsonb_build_object('owner', pg_get_userbyid(datdba), 'encoding', pg_encoding_to_char(encoding), 'collate', datcollate, 'ctype', datctype) FROM pg_database WHERE datname = {}), 'null'::jsonb)",
            quote_literal(db)
        );
        self.query_json(&sql)
    }

    /// Creates `db` from template0, copying owner, encoding and locale from `like` when given.
    pub fn create_database(&mut self, db: &str, like: Option<&DbInfo>) -> Result<()> {
        let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(db));
        if let Some(i) = like {
            sql += &format!(
                " OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
                quote_ident(&i.owner),
                quote_literal(&i.encoding),
                quote_literal(&i.collate),
                quote_literal(&i.ctype)
            );
        }
        self.exec(&sql)
    }

    /// Renames `from` to `to`.
    pub fn rename_database(&mut self, from: &str, to: &str) -> Result<()> {
        self.exec(&format!("ALTER DATABASE {} RENAME TO {}", quote_ident(from), quote_ident(to)))
    }

    /// Drops `db` if it exists, ending its connections.
    pub fn drop_database(&mut self, db: &str) -> Result<()> {
        self.exec(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(db)))
    }

    /// Ends every other session connected to `db`; returns how many were ended.
    pub fn terminate_connections(&mut self, db: &str) -> Result<u64> {
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
            quote_literal(db)
        );
        Ok(self.query_value(&sql)?.trim().parse().unwrap_or(0))
    }

    /// Databases whose names start with `prefix` (temporary databases pgtier made).
    pub fn databases_like(&mut self, prefix: &str) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT coalesce(jsonb_agg(datname ORDER BY datname), '[]'::jsonb) FROM pg_database WHERE starts_with(datname, {})",
            quote_literal(prefix)
        );
        self.query_json(&sql)
    }
}
