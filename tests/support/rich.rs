//! A database like real ones (tests/fixtures/rich.sql plus database-level properties) and a
//! snapshot of everything a restore must give back, to compare an original with its restore.

use std::collections::BTreeMap;

use super::Cluster;

/// The fixture's SQL.
pub fn fixture_sql() -> String {
    std::fs::read_to_string(super::repo().join("tests/fixtures/rich.sql")).expect("tests/fixtures/rich.sql")
}

impl Cluster {
    /// Creates the roles the fixture uses, once per cluster.
    pub fn create_fixture_roles(&self) {
        self.psql(
            "postgres",
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fx_owner') THEN CREATE ROLE fx_owner; END IF;
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fx_reader') THEN CREATE ROLE fx_reader; END IF;
             END $$",
        );
    }

    /// Creates `db` with ICU, the fixture's objects and data, and database-level settings,
    /// role-in-database settings, grants, a comment and a connection limit.
    pub fn create_rich_db(&self, db: &str) {
        self.create_fixture_roles();
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\" LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0"));
        let out = std::process::Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-f"])
            .arg(super::repo().join("tests/fixtures/rich.sql"))
            .output()
            .expect("run psql");
        assert!(out.status.success(), "loading the fixture failed: {}", String::from_utf8_lossy(&out.stderr));
        self.psql(
            "postgres",
            &format!(
                "ALTER DATABASE \"{db}\" SET search_path = app, public;
                 ALTER ROLE fx_reader IN DATABASE \"{db}\" SET work_mem = '8MB';
                 REVOKE CONNECT, TEMPORARY ON DATABASE \"{db}\" FROM PUBLIC;
                 GRANT CONNECT ON DATABASE \"{db}\" TO fx_reader;
                 COMMENT ON DATABASE \"{db}\" IS 'rich fixture';
                 ALTER DATABASE \"{db}\" CONNECTION LIMIT 50;"
            ),
        );
    }

    /// Everything a restore must give back, in comparable form.
    pub fn snapshot(&self, db: &str) -> Snapshot {
        Snapshot {
            schema: self.schema_dump(db),
            tables: self.table_hashes(db),
            sequences: self.psql(
                db,
                "SELECT coalesce(string_agg(format('%I.%I=%s', schemaname, sequencename, last_value), ' ' ORDER BY schemaname, sequencename), '') FROM pg_sequences",
            ),
            large_objects: self.psql(
                db,
                "SELECT coalesce(string_agg(format('%s:%s:%s:%s:%s', m.oid, pg_get_userbyid(m.lomowner), m.lomacl, obj_description(m.oid, 'pg_largeobject'), md5(lo_get(m.oid))), ' ' ORDER BY m.oid), '') FROM pg_largeobject_metadata m",
            ),
            database: self.database_properties(db),
        }
    }

    /// `pg_dump --schema-only`, without pg_dump's random restrict key.
    pub fn schema_dump(&self, db: &str) -> String {
        let out = std::process::Command::new(self.bindir.join("pg_dump"))
            .args(["-s", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(db)
            .output()
            .expect("run pg_dump");
        assert!(out.status.success(), "pg_dump -s {db}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every table's (and populated materialized view's) row count and content hash.
    pub fn table_hashes(&self, db: &str) -> BTreeMap<String, String> {
        let list = self.psql(
            db,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'm') AND (c.relkind <> 'm' OR c.relispopulated) AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') ORDER BY 1",
        );
        list.lines()
            .filter(|t| !t.is_empty())
            .map(|t| {
                let h = self.psql(
                    db,
                    &format!("SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM ONLY {t} x"),
                );
                (t.to_string(), h)
            })
            .collect()
    }

    /// The database's own properties, with the name left out.
    pub fn database_properties(&self, db: &str) -> String {
        let lit = db.replace('\'', "''");
        let props = self.psql(
            "postgres",
            &format!(
                "SELECT concat_ws(' | ', pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datlocprovider, daticulocale, datcollate, datctype,
                    datconnlimit, replace(datacl::text, '{lit}', 'DB'), shobj_description(d.oid, 'pg_database'), t.spcname)
                 FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE datname = '{lit}'"
            ),
        );
        let settings = self.psql(
            "postgres",
            &format!(
                "SELECT coalesce(string_agg(coalesce(r.rolname, '-') || '=' || s.setconfig::text, ' ' ORDER BY r.rolname NULLS FIRST), '') FROM pg_db_role_setting s
                 JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = '{lit}'"
            ),
        );
        format!("{props} || {settings}")
    }
}

/// What a restore must give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub schema: String,
    pub tables: BTreeMap<String, String>,
    pub sequences: String,
    pub large_objects: String,
    pub database: String,
}

impl Snapshot {
    /// Asserts `other` equals `self`, naming what differs.
    pub fn assert_same(&self, other: &Snapshot, what: &str) {
        assert_eq!(self.database, other.database, "{what}: database properties differ");
        if self.schema != other.schema {
            let diff: Vec<String> = self
                .schema
                .lines()
                .zip(other.schema.lines())
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(a, b)| format!("- {a}\n+ {b}"))
                .collect();
            panic!("{what}: schema dumps differ:\n{}", diff.join("\n"));
        }
        for (t, h) in &self.tables {
            assert_eq!(Some(h), other.tables.get(t), "{what}: table {t} differs");
        }
        assert_eq!(self.tables.len(), other.tables.len(), "{what}: tables differ: {:?} vs {:?}", self.tables.keys(), other.tables.keys());
        assert_eq!(self.sequences, other.sequences, "{what}: sequences differ");
        assert_eq!(self.large_objects, other.large_objects, "{what}: large objects differ");
    }
}
