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

/// The user tables whose rows a backup records: ordinary and partition tables, not temporary,
/// outside the system schemas, not owned by an extension (pg_dump leaves their data out).
macro_rules! user_tables {
    () => {
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"
    };
}

/// Row counts of every user table, keyed `schema.table` (quoted where needed), counted in the
/// session's snapshot.
pub fn count_rows_sql() -> &'static str {
    concat!(
        "SELECT coalesce(jsonb_object_agg(format('%I.%I', n.nspname, c.relname),
        (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint), '{}'::jsonb)",
        user_tables!()
    )
}

/// The user tables with their sizes in bytes, largest first.
const TABLE_SIZES_SQL: &str = concat!(
    "SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname, pg_relation_size(c.oid)) ORDER BY pg_relation_size(c.oid) DESC), '[]'::jsonb)",
    user_tables!()
);

/// Below this much table data, one session counts everything.
const PARALLEL_COUNT_FROM: u64 = 64 << 20;

impl super::Pg {
    /// Row counts of every user table of `db`, as `Session::count_rows` gives them, counted by
    /// up to `jobs` sessions at once, the largest tables spread first. Each session has its own
    /// snapshot: for a database nothing else writes (a restore's or a drill's, before it is put
    /// in place).
    pub fn count_rows_parallel(&self, db: &str, jobs: usize) -> Result<BTreeMap<String, u64>> {
        let mut s = self.session(db)?;
        let tables: Vec<(String, String, u64)> = s.query_json(TABLE_SIZES_SQL)?;
        let total: u64 = tables.iter().map(|t| t.2).sum();
        if jobs <= 1 || tables.len() < 2 || total < PARALLEL_COUNT_FROM {
            let counts = s.count_rows()?;
            s.close()?;
            return Ok(counts);
        }
        s.close()?;
        // Largest first, each to the least loaded session.
        let mut groups: Vec<(u64, Vec<serde_json::Value>)> = vec![(0, Vec::new()); jobs.min(tables.len())];
        for (schema, name, size) in tables {
            let g = groups.iter_mut().min_by_key(|g| g.0).expect("at least one group");
            g.0 += size;
            g.1.push(serde_json::json!({"n": schema, "r": name}));
        }
        let counted: Vec<Result<BTreeMap<String, u64>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|(_, list)| {
                    scope.spawn(move || {
                        let sql = format!(
                            "SELECT coalesce(jsonb_object_agg(format('%I.%I', x.n, x.r), (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', x.n, x.r), false, true, '')))[1]::text::bigint), '{{}}'::jsonb) FROM jsonb_to_recordset({}::jsonb) AS x(n text, r text)",
                            quote_literal(&serde_json::Value::Array(list).to_string())
                        );
                        let mut s = self.session(db)?;
                        let counts = s.query_json(&sql)?;
                        s.close()?;
                        Ok(counts)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(crate::failed!("a row-counting thread panicked")))).collect()
        });
        let mut all = BTreeMap::new();
        for c in counted {
            all.extend(c?);
        }
        Ok(all)
    }
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

    /// Every non-template database that accepts connections and that the session's role may
    /// connect to, by name.
    pub fn connectable_databases(&mut self) -> Result<Vec<String>> {
        self.query_json(
            "SELECT coalesce(jsonb_agg(datname ORDER BY datname), '[]'::jsonb) FROM pg_database WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT')",
        )
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
