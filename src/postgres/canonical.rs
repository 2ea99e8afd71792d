//! One schema, one text: what pg_dump writes depends on the pg_dump version and on the server
//! that deparses the definitions, not only on the schema. Before archives are compared (a
//! restore against its backup) or fingerprinted, each entry is put in a canonical form that
//! drops exactly those version artefacts, so a backup of PostgreSQL 13 taken with pg_dump 14
//! compares with its restore on 18 dumped by pg_dump 18. Each rule says what it drops and why;
//! everything else an entry says is kept.

use super::entry::TocEntry;

/// The ACL pg_dump 15 and later write for the `public` schema of a server older than 15: the
/// old default (everyone may create there), which pg_dump 14 and older never wrote.
const PUBLIC_PRE_15_ACL: &str = "REVOKE USAGE ON SCHEMA public FROM PUBLIC;\nGRANT ALL ON SCHEMA public TO PUBLIC;";

/// What pg_dump 15 and later write for the `public` schema of a server older than 15 instead
/// of creating it.
const PUBLIC_NOT_CREATED: &str = "-- *not* creating schema, since initdb creates it";

/// Whether an entry states only what an older pg_dump left unsaid: the `public` schema of a
/// server older than 15 with its default grants, as pg_dump 15 and later describe it.
pub fn is_version_artefact(e: &TocEntry) -> bool {
    match (e.desc.as_str(), e.tag.as_str()) {
        ("SCHEMA", "public") => e.defn.trim() == PUBLIC_NOT_CREATED,
        ("ACL", "SCHEMA public") => e.defn.trim() == PUBLIC_PRE_15_ACL,
        _ => false,
    }
}

/// An entry's definition in canonical form:
/// - `CREATE DATABASE`: `LOCALE_PROVIDER = libc` goes (the default; pg_dump 14 does not write
///   it, 15 and later do);
/// - `CREATE TABLE`: `CONSTRAINT name NOT NULL` becomes `NOT NULL` (PostgreSQL 18 names NOT NULL
///   constraints and writes the names it inherits; older servers have none to restore);
/// - views, materialized views and rules: column references lose their `relation.` qualifier
///   (PostgreSQL 16 stopped writing it where it is not needed).
pub fn definition(e: &TocEntry) -> String {
    match e.desc.as_str() {
        "DATABASE" => e.defn.replace(" LOCALE_PROVIDER = libc", ""),
        "TABLE" => unnamed_not_null(&e.defn),
        "VIEW" | "MATERIALIZED VIEW" | "RULE" => unqualified(&e.defn),
        _ => e.defn.clone(),
    }
}

/// `CONSTRAINT name NOT NULL` → `NOT NULL`, outside string literals.
fn unnamed_not_null(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("CONSTRAINT ") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let after_kw = &from["CONSTRAINT ".len()..];
        match ident_len(after_kw) {
            Some(n) if after_kw[n..].starts_with(" NOT NULL") => {
                rest = &after_kw[n + 1..];
            }
            _ => {
                out.push_str("CONSTRAINT ");
                rest = after_kw;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Drops `x.` before an identifier where `x` is an identifier not itself qualified, outside
/// string literals: `orders.id` → `id`, `app.orders` → `orders`, `'a'::app.status` →
/// `'a'::status`. Lossy on purpose, and the same on both sides of a comparison.
fn unqualified(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut qualified = false;
    while i < sql.len() {
        let c = bytes[i];
        if c == b'\'' {
            let end = literal_end(sql, i);
            out.push_str(&sql[i..end]);
            i = end;
            continue;
        }
        let starts_word = qualified || !(i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b'.'));
        qualified = false;
        if starts_word && let Some(n) = ident_len(&sql[i..]) {
            let next = i + n;
            if bytes.get(next) == Some(&b'.') && ident_len(&sql[next + 1..]).is_some() {
                i = next + 1;
                qualified = true;
                continue;
            }
            out.push_str(&sql[i..next]);
            i = next;
            continue;
        }
        let ch = sql[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The length of the identifier at the start of `s` (plain or double-quoted), if there is one.
fn ident_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    match b.first()? {
        b'"' => {
            let mut j = 1;
            while j < b.len() {
                if b[j] == b'"' {
                    if b.get(j + 1) == Some(&b'"') {
                        j += 2;
                        continue;
                    }
                    return Some(j + 1);
                }
                j += 1;
            }
            None
        }
        c if c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80 => {
            let n = s.char_indices().find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_' || *ch == '$')).map_or(s.len(), |(k, _)| k);
            Some(n)
        }
        _ => None,
    }
}

/// Where the string literal starting at `start` ends ('' inside it is an escaped quote).
fn literal_end(sql: &str, start: usize) -> usize {
    let b = sql.as_bytes();
    let mut j = start + 1;
    while j < b.len() {
        if b[j] == b'\'' {
            if b.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    sql.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_artefacts_go_and_the_schema_stays() {
        assert_eq!(
            unnamed_not_null(
                "CREATE TABLE t (\n    id bigint CONSTRAINT events_id_not_null NOT NULL,\n    x int CONSTRAINT pos CHECK (x > 0)\n);"
            ),
            "CREATE TABLE t (\n    id bigint NOT NULL,\n    x int CONSTRAINT pos CHECK (x > 0)\n);"
        );
        assert_eq!(
            unqualified(" SELECT orders.id,\n    orders.qty\n   FROM app.orders\n  WHERE (orders.status = 'paid.x'::app.status);"),
            " SELECT id,\n    qty\n   FROM orders\n  WHERE (status = 'paid.x'::status);"
        );
        assert_eq!(unqualified(" SELECT \"My T\".\"Col\" FROM s.\"My T\";"), " SELECT \"Col\" FROM \"My T\";");
        assert_eq!(unqualified("SELECT 1.5, x.y.z"), "SELECT 1.5, z");
    }
}
