//! The version matrix's fixture (`tests/fixtures/matrix.sql`) on a cluster of any major, and
//! what a restore must give back, in a form every major can produce.

use std::collections::BTreeMap;

use super::Cluster;

/// The application's own role: owns the database, may create databases, is not a superuser
/// (the old scripts' set-up).
pub const OWNER: &str = "mx_owner";

impl Cluster {
    /// Creates `db` owned by `OWNER` with the matrix fixture loaded as that role, its database
    /// properties (a setting, a comment, a connection limit) and `los` large objects. Returns
    /// nothing; `matrix_snapshot` says what it holds.
    pub fn create_matrix_db(&self, db: &str, los: u32) {
        let exists = self.psql("postgres", &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{OWNER}'"));
        if exists != "1" {
            self.psql("postgres", &format!("CREATE ROLE {OWNER} LOGIN CREATEDB"));
        }
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\" OWNER {OWNER} TEMPLATE template0"));
        let out = std::process::Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", OWNER, "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-f"])
            .arg(super::repo().join("tests/fixtures/matrix.sql"))
            .output()
            .expect("run psql");
        assert!(out.status.success(), "loading the matrix fixture on {} failed: {}", self.major, String::from_utf8_lossy(&out.stderr));
        let out = std::process::Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", OWNER, "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-c"])
            .arg(format!("SELECT count(lo_from_bytea(0, convert_to('large object ' || i, 'UTF8'))) FROM generate_series(1, {los}) i"))
            .output()
            .expect("run psql");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.psql(
            "postgres",
            &format!(
                "ALTER DATABASE \"{db}\" SET search_path = app, public;
                 COMMENT ON DATABASE \"{db}\" IS 'matrix fixture';
                 ALTER DATABASE \"{db}\" CONNECTION LIMIT 40;"
            ),
        );
    }

    /// Everything a restore must give back, as every major reports it: each table's rows and
    /// content hash, sequences, large objects (owner, content), the database's properties.
    pub fn matrix_snapshot(&self, db: &str) -> MatrixSnapshot {
        let lit = db.replace('\'', "''");
        MatrixSnapshot {
            tables: self.table_hashes(db),
            sequences: self.psql(
                db,
                "SELECT coalesce(string_agg(format('%I.%I=%s', schemaname, sequencename, last_value), ' ' ORDER BY schemaname, sequencename), '') FROM pg_sequences",
            ),
            large_objects: self.psql(
                db,
                "SELECT count(*) || ':' || coalesce(md5(string_agg(pg_get_userbyid(m.lomowner) || md5(lo_get(m.oid)), ',' ORDER BY m.oid)), '') FROM pg_largeobject_metadata m",
            ),
            database: self.psql(
                "postgres",
                &format!(
                    "SELECT concat_ws(' | ', pg_get_userbyid(datdba), pg_encoding_to_char(encoding), coalesce(to_jsonb(d) ->> 'datlocprovider', 'c'), datcollate, datctype,
                        datconnlimit, shobj_description(d.oid, 'pg_database'),
                        (SELECT string_agg(s.setconfig::text, ' ') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid))
                     FROM pg_database d WHERE datname = '{lit}'"
                ),
            ),
        }
    }

    /// The canonical schema objects of `db` (what pgtier compares), dumped by this cluster's
    /// own pg_dump: key → definition.
    pub fn canonical_schema(&self, db: &str) -> BTreeMap<String, String> {
        let out = std::process::Command::new(self.bindir.join("pg_dump"))
            .args(["-Fc", "-s", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(db)
            .output()
            .expect("run pg_dump");
        assert!(out.status.success(), "pg_dump -s {db}: {}", String::from_utf8_lossy(&out.stderr));
        let (toc, _) = pgtier::postgres::archive::parse(&out.stdout).expect("pg_dump's archive parses");
        toc.objects(Default::default())
    }
}

/// What a restore must give back (see `Cluster::matrix_snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixSnapshot {
    pub tables: BTreeMap<String, String>,
    pub sequences: String,
    pub large_objects: String,
    pub database: String,
}

impl MatrixSnapshot {
    /// Asserts `other` equals `self`, naming what differs.
    pub fn assert_same(&self, other: &MatrixSnapshot, what: &str) {
        assert_eq!(self.database, other.database, "{what}: database properties differ");
        assert_eq!(self.tables, other.tables, "{what}: tables differ");
        assert_eq!(self.sequences, other.sequences, "{what}: sequences differ");
        assert_eq!(self.large_objects, other.large_objects, "{what}: large objects differ");
    }
}
