//! Restoring one table whole, in one transaction, or refusing before anything changes.
//!
//! The table is found in the archive's table of contents, with its partitions. Where the table
//! exists, its rows are replaced in place: the structure (indexes, constraints, triggers,
//! policies, grants, comments, partitions) stays as it is, no trigger fires and no cascade runs,
//! its owned sequences take the backup's values, and every foreign key into or out of it is
//! checked before the transaction commits. Where it does not exist (or the database is new),
//! it is created with everything that belongs to it, and in a new database with what it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use crate::error::Result;
use crate::postgres::archive::{Toc, TocEntry, closure_up, entry_key};
use crate::postgres::{Pg, Session, quote_ident, quote_literal};
use crate::records::manifest::Manifest;

/// A table as schema and name, unquoted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", quote_ident_min(&self.schema), quote_ident_min(&self.name))
    }
}

impl TableName {
    /// The table a TOC entry describes.
    pub fn of(e: &TocEntry) -> TableName {
        TableName { schema: e.namespace.clone(), name: e.tag.clone() }
    }

    /// `"schema"."name"`, always quoted, for SQL.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Quotes an identifier only where SQL needs it (as the manifest prints names).
fn quote_ident_min(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_string() } else { quote_ident(s) }
}

/// Splits `schema.table`, `"my schema"."Mixed"` or `"a.b"` into its unquoted parts.
pub fn split_qualified(spec: &str) -> std::result::Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = spec.chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted_part = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("{spec:?}: a quote is not closed")),
                    }
                }
            }
            '.' => {
                if cur.is_empty() && !quoted_part {
                    return Err(format!("{spec:?}: an empty name"));
                }
                parts.push(std::mem::take(&mut cur));
                quoted_part = false;
            }
            c => cur.push(c),
        }
    }
    if cur.is_empty() && !quoted_part {
        return Err(format!("{spec:?}: an empty name"));
    }
    parts.push(cur);
    if parts.len() > 2 {
        return Err(format!("{spec:?}: expected table or schema.table (quote names that contain dots)"));
    }
    Ok(parts)
}

/// Finds the table `spec` names among the archive's tables; an unknown name is a usage error
/// listing the nearest names the backup holds.
pub fn resolve<'t>(toc: &'t Toc, spec: &str) -> Result<&'t TocEntry> {
    let parts = split_qualified(spec).map_err(|m| crate::usage!("table {spec:?}: {m}"))?;
    let tables: Vec<&TocEntry> = toc.entries.iter().filter(|e| e.desc == "TABLE").collect();
    let matches =
        |want: &dyn Fn(&TocEntry) -> bool| -> Vec<&'t TocEntry> { toc.entries.iter().filter(|e| e.desc == "TABLE" && want(e)).collect() };
    let found = match parts.as_slice() {
        [name] => {
            let exact = matches(&|e| e.tag == *name);
            if exact.is_empty() { matches(&|e| e.tag.eq_ignore_ascii_case(name)) } else { exact }
        }
        [schema, name] => {
            let exact = matches(&|e| e.namespace == *schema && e.tag == *name);
            let exact = if exact.is_empty() {
                matches(&|e| e.namespace.eq_ignore_ascii_case(schema) && e.tag.eq_ignore_ascii_case(name))
            } else {
                exact
            };
            // An unquoted a.b may also be a table literally named "a.b".
            if exact.is_empty() && !spec.contains('"') { matches(&|e| e.tag == spec) } else { exact }
        }
        _ => unreachable!("split_qualified returns one or two parts"),
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut near: Vec<(usize, String)> = tables
                .iter()
                .map(|e| {
                    let n = TableName::of(e).to_string();
                    (
                        distance(&n.to_lowercase(), &spec.to_lowercase())
                            .min(distance(&e.tag.to_lowercase(), &parts[parts.len() - 1].to_lowercase())),
                        n,
                    )
                })
                .collect();
            near.sort();
            let names: Vec<String> = near.into_iter().take(5).map(|(_, n)| n).collect();
            Err(crate::usage!(
                "table {spec}: the backup has no such table{}",
                if names.is_empty() { String::new() } else { format!("; nearest: {}", names.join(", ")) }
            ))
        }
        many => Err(crate::usage!(
            "table {spec}: several tables have that name: {}; name the schema",
            many.iter().map(|e| TableName::of(e).to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Edit distance, for suggesting names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The table and, for a partitioned one, every partition below it (TABLE entry ids).
pub fn partition_tree(toc: &Toc, root: i64) -> BTreeSet<i64> {
    let by_id = toc.by_id();
    let mut set = BTreeSet::from([root]);
    loop {
        let before = set.len();
        // A TABLE ATTACH entry is tagged with the partition's name and depends on both tables.
        for e in toc.entries.iter().filter(|e| e.desc == "TABLE ATTACH") {
            let tables: Vec<&TocEntry> = e.deps.iter().filter_map(|d| by_id.get(d).copied()).filter(|t| t.desc == "TABLE").collect();
            let child = tables.iter().find(|t| t.tag == e.tag && t.namespace == e.namespace);
            let parent = tables.iter().find(|t| !(t.tag == e.tag && t.namespace == e.namespace));
            if let (Some(child), Some(parent)) = (child, parent)
                && set.contains(&parent.dump_id)
            {
                set.insert(child.dump_id);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// The partitioned tables `root` is a partition of, up to the top: a partition's own definition
/// stands alone (pg_dump writes `CREATE TABLE` and a separate `ATTACH PARTITION`), so restoring
/// one partition needs none of them.
fn partition_ancestors(toc: &Toc, root: i64) -> BTreeSet<i64> {
    let by_id = toc.by_id();
    let mut out = BTreeSet::new();
    let mut child = root;
    'up: loop {
        for e in toc.entries.iter().filter(|e| e.desc == "TABLE ATTACH") {
            let tables: Vec<&TocEntry> = e.deps.iter().filter_map(|d| by_id.get(d).copied()).filter(|t| t.desc == "TABLE").collect();
            let is_child = |t: &&&TocEntry| t.tag == e.tag && t.namespace == e.namespace;
            if tables.iter().find(is_child).is_some_and(|t| t.dump_id == child)
                && let Some(parent) = tables.iter().find(|t| !is_child(t))
                && out.insert(parent.dump_id)
            {
                child = parent.dump_id;
                continue 'up;
            }
        }
        return out;
    }
}

/// Where one table is restored to.
pub enum Destination {
    /// The table exists in the database: replace its rows in place.
    Replace,
    /// The database exists but lacks the table: create it with what belongs to it.
    CreateIn,
    /// A new, empty database: create the table with what belongs to it and what it needs.
    CreateNew,
}

/// What a one-table restore did.
#[derive(Debug, Default)]
pub struct TableOutcome {
    pub tables: usize,
    pub rows: Option<u64>,
    pub notes: Vec<String>,
}

/// Restores the table `root` (and its partitions) from `input` (the whole archive, from its
/// first byte, or its unpacked folder) into `db`, in one transaction.
#[allow(clippy::too_many_arguments)]
pub fn restore_table(
    pg: &Pg,
    db: &str,
    toc: &Toc,
    root: &TocEntry,
    dest: Destination,
    input: super::ArchiveInput,
    manifest: Option<&Manifest>,
    no_owner: bool,
    source: &str,
) -> Result<TableOutcome> {
    let set = partition_tree(toc, root.dump_id);
    let by_id = toc.by_id();
    let names: BTreeMap<i64, TableName> = set.iter().filter_map(|id| by_id.get(id)).map(|e| (e.dump_id, TableName::of(e))).collect();
    let data: Vec<&TocEntry> = toc.entries.iter().filter(|e| e.desc == "TABLE DATA" && e.deps.iter().any(|d| set.contains(d))).collect();
    let leaves: Vec<TableName> = data.iter().map(|e| TableName::of(e)).collect();
    let mut out = TableOutcome { tables: names.len(), ..Default::default() };

    let mut s = pg.session(db)?;
    s.exec("SET search_path = ''")?;
    let (selected, prefix) = match dest {
        Destination::Replace => {
            check_same_tree(&mut s, &names.values().cloned().collect(), &TableName::of(root))?;
            let mut ids: BTreeSet<i64> = data.iter().map(|e| e.dump_id).collect();
            ids.extend(owned_sequence_values(toc, &set));
            let mut p = String::from("SET session_replication_role = replica;\n");
            p += &format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE;\n", TableName::of(root).sql());
            for leaf in &leaves {
                p += &format!("DELETE FROM ONLY {};\n", leaf.sql());
            }
            (ids, p)
        }
        Destination::CreateIn | Destination::CreateNew => {
            let live = if matches!(dest, Destination::CreateIn) { live_relations(&mut s)? } else { BTreeSet::new() };
            let ancestors = partition_ancestors(toc, root.dump_id);
            let (ids, skipped) = belonging(toc, &set, &ancestors, matches!(dest, Destination::CreateNew), &live);
            out.notes.extend(skipped.into_iter().map(|k| format!("not restored: {k}")));
            (ids, String::new())
        }
    };
    // Checked in the same transaction: every foreign key into or out of the table.
    let mut suffix = String::new();
    if !matches!(dest, Destination::CreateNew) {
        for fk in foreign_keys(&mut s, &TableName::of(root).sql(), matches!(dest, Destination::Replace))? {
            suffix += &fk;
        }
    }
    s.close()?;
    if let Some(m) = manifest
        && let Some(counts) = &m.tables
    {
        let by_name: BTreeMap<TableName, u64> = counts
            .iter()
            .filter_map(|(k, n)| match split_qualified(k).ok()?.as_slice() {
                [schema, name] => Some((TableName { schema: schema.clone(), name: name.clone() }, *n)),
                _ => None,
            })
            .collect();
        let mut total = 0;
        for leaf in &leaves {
            let Some(n) = by_name.get(leaf) else { continue };
            total += n;
            suffix += &format!(
                "DO $pgtier$ BEGIN IF (SELECT count(*) FROM ONLY {sql}) <> {n} THEN RAISE EXCEPTION 'pgtier: %', {msg}; END IF; END $pgtier$;\n",
                sql = leaf.sql(),
                msg = quote_literal(&format!("{leaf} does not hold the backup's {n} rows"))
            );
        }
        out.rows = Some(total);
    }
    run_script(pg, db, toc, &selected, &prefix, &suffix, input, no_owner, source)?;
    Ok(out)
}

/// The live table's partitions must be the backup's: the rows of a partition the backup lacks
/// would otherwise stay, and a partition only the backup has would have nowhere to go.
fn check_same_tree(s: &mut Session, backup: &BTreeSet<TableName>, root: &TableName) -> Result<()> {
    let live: Vec<(String, String)> = s.query_json(&format!(
        "SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname)), '[]') FROM (SELECT relid FROM pg_partition_tree({r}::regclass) UNION SELECT {r}::regclass) t JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace",
        r = quote_literal(&root.sql())
    ))?;
    let live: BTreeSet<TableName> = live.into_iter().map(|(schema, name)| TableName { schema, name }).collect();
    let only_live: Vec<String> = live.difference(backup).map(|t| t.to_string()).collect();
    let only_backup: Vec<String> = backup.difference(&live).map(|t| t.to_string()).collect();
    if only_live.is_empty() && only_backup.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !only_live.is_empty() {
        why.push(format!("partitions here but not in the backup: {}", only_live.join(", ")));
    }
    if !only_backup.is_empty() {
        why.push(format!("partitions in the backup but not here: {}", only_backup.join(", ")));
    }
    Err(crate::failed!("refusing to restore {root}: its partitions differ from the backup's ({}); nothing was changed", why.join("; "))
        .remedy(crate::error::Remedy::OtherDatabase))
}

/// SEQUENCE SET entries of sequences that belong to the tables (serial and identity columns).
fn owned_sequence_values(toc: &Toc, set: &BTreeSet<i64>) -> Vec<i64> {
    let by_id = toc.by_id();
    let mut seqs: BTreeSet<i64> =
        toc.entries.iter().filter(|e| e.desc == "SEQUENCE" && e.deps.iter().any(|d| set.contains(d))).map(|e| e.dump_id).collect();
    for e in toc.entries.iter().filter(|e| e.desc == "SEQUENCE OWNED BY" && e.deps.iter().any(|d| set.contains(d))) {
        seqs.extend(e.deps.iter().copied().filter(|d| by_id.get(d).is_some_and(|x| x.desc == "SEQUENCE")));
    }
    toc.entries.iter().filter(|e| e.desc == "SEQUENCE SET" && e.deps.iter().any(|d| seqs.contains(d))).map(|e| e.dump_id).collect()
}

/// Relations that exist in the session's database, as schema and name.
fn live_relations(s: &mut Session) -> Result<BTreeSet<TableName>> {
    let rows: Vec<(String, String)> = s.query_json(
        "SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname)), '[]') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')",
    )?;
    Ok(rows.into_iter().map(|(schema, name)| TableName { schema, name }).collect())
}

fn is_relation(e: &TocEntry) -> bool {
    matches!(e.desc.as_str(), "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE")
}

/// Entries a table restore never creates: they belong to the database, not the table.
fn never(e: &TocEntry) -> bool {
    crate::postgres::archive::is_database_entry(e)
        || matches!(
            e.desc.as_str(),
            "PUBLICATION"
                | "PUBLICATION TABLE"
                | "PUBLICATION TABLES IN SCHEMA"
                | "SUBSCRIPTION"
                | "EVENT TRIGGER"
                | "MATERIALIZED VIEW DATA"
        )
}

/// The entries that make up the tables `set` (definition, data, indexes, constraints, triggers,
/// policies, grants, comments, owned sequences, partitions) and, with `prereqs`, what they need
/// (schemas, types, functions, extensions). Entries that need a relation outside the set that
/// is not in `live` are left out and named.
fn belonging(
    toc: &Toc,
    set: &BTreeSet<i64>,
    ancestors: &BTreeSet<i64>,
    prereqs: bool,
    live: &BTreeSet<TableName>,
) -> (BTreeSet<i64>, Vec<String>) {
    let by_id = toc.by_id();
    let outside = |e: &TocEntry| is_relation(e) && !set.contains(&e.dump_id) && !live.contains(&TableName::of(e));
    // The partitioned tables above a partition, and what belongs to them (their indexes and
    // constraints): a partition's own definitions stand alone and do not need them; only the
    // ATTACH statements that make it their partition do.
    let parented: BTreeSet<i64> = if ancestors.is_empty() {
        BTreeSet::new()
    } else {
        toc.entries
            .iter()
            .filter(|e| !set.contains(&e.dump_id))
            .filter(|e| {
                ancestors.contains(&e.dump_id) || closure_up(toc, &BTreeSet::from([e.dump_id])).iter().any(|d| ancestors.contains(d))
            })
            .map(|e| e.dump_id)
            .collect()
    };
    let attaches = |id: i64| by_id.get(&id).is_some_and(|e| matches!(e.desc.as_str(), "TABLE ATTACH" | "INDEX ATTACH"));
    let needs_outside = |id: i64| -> Option<&TocEntry> {
        let mut needs = closure_up(toc, &BTreeSet::from([id]));
        if !attaches(id) {
            needs.retain(|d| !parented.contains(d));
        }
        needs.iter().filter_map(|d| by_id.get(d).copied()).find(|x| outside(x) || (attaches(id) && parented.contains(&x.dump_id)))
    };
    let mut core: BTreeSet<i64> = set.clone();
    let mut rejected: BTreeMap<i64, String> = BTreeMap::new();
    loop {
        let mut changed = false;
        for e in &toc.entries {
            if core.contains(&e.dump_id) || rejected.contains_key(&e.dump_id) || never(e) || !e.deps.iter().any(|d| core.contains(d)) {
                continue;
            }
            if is_relation(e) && !set.contains(&e.dump_id) {
                rejected.insert(
                    e.dump_id,
                    format!("{} (it depends on the table; restore it by hand or restore the whole database)", entry_key(e)),
                );
                continue;
            }
            if let Some(other) = needs_outside(e.dump_id) {
                rejected.insert(e.dump_id, format!("{} (it needs {}, which is not restored)", entry_key(e), entry_key(other)));
                continue;
            }
            core.insert(e.dump_id);
            changed = true;
        }
        if !changed {
            break;
        }
    }
    let mut selected = core.clone();
    if prereqs {
        let own: BTreeSet<i64> = core.iter().filter(|id| !attaches(**id)).copied().collect();
        for id in closure_up(toc, &own) {
            if by_id.get(&id).is_some_and(|e| !never(e) && !outside(e)) && !parented.contains(&id) {
                selected.insert(id);
            }
        }
        // A sequence the table needs keeps the backup's value too.
        let values: Vec<i64> = toc
            .entries
            .iter()
            .filter(|e| e.desc == "SEQUENCE SET" && e.deps.iter().all(|d| selected.contains(d)))
            .map(|e| e.dump_id)
            .collect();
        selected.extend(values);
    }
    (selected, rejected.into_values().collect())
}

/// A foreign key: its name, the referencing and referenced tables and their columns (quoted).
type ForeignKey = (String, String, String, Vec<String>, Vec<String>);

/// Checks, as SQL that raises an error, that every foreign key into or out of the table (and
/// its partitions) still holds. With `replacing`, also the keys of other tables that point at it.
fn foreign_keys(s: &mut Session, root_sql: &str, replacing: bool) -> Result<Vec<String>> {
    let exists: String = s.query_value(&format!("SELECT to_regclass({}) IS NOT NULL", quote_literal(root_sql)))?;
    if exists.trim() != "t" {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH rels AS (SELECT relid FROM pg_partition_tree({root}::regclass) UNION SELECT {root}::regclass)
         SELECT coalesce(jsonb_agg(jsonb_build_array(c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
            (SELECT jsonb_agg(quote_ident(a.attname) ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
            (SELECT jsonb_agg(quote_ident(a.attname) ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum))), '[]')
         FROM pg_constraint c WHERE c.contype = 'f' AND c.conparentid = 0
           AND (c.conrelid IN (SELECT relid FROM rels) OR ({replacing} AND c.confrelid IN (SELECT relid FROM rels)))",
        root = quote_literal(root_sql),
    );
    let fks: Vec<ForeignKey> = s.query_json(&sql)?;
    Ok(fks
        .into_iter()
        .map(|(name, child, parent, ccols, pcols)| {
            let not_null = ccols.iter().map(|c| format!("r.{c} IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
            let join = ccols.iter().zip(&pcols).map(|(c, p)| format!("x.{p} = r.{c}")).collect::<Vec<_>>().join(" AND ");
            let msg = quote_literal(&format!(
                "rows of {child} would reference rows of {parent} that the backup lacks (foreign key {name}); nothing was changed"
            ));
            format!(
                "DO $pgtier$ BEGIN IF EXISTS (SELECT 1 FROM {child} r WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {parent} x WHERE {join})) THEN RAISE EXCEPTION 'pgtier: %', {msg}; END IF; END $pgtier$;\n"
            )
        })
        .collect())
}

/// Runs `prefix`, then pg_restore's script for the `selected` entries (read from `reader`), then
/// `suffix`, through one psql in one transaction: an error anywhere rolls everything back.
#[allow(clippy::too_many_arguments)]
fn run_script(
    pg: &Pg,
    db: &str,
    toc: &Toc,
    selected: &BTreeSet<i64>,
    prefix: &str,
    suffix: &str,
    input: super::ArchiveInput,
    no_owner: bool,
    source: &str,
) -> Result<()> {
    let list = write_list(toc, |e| selected.contains(&e.dump_id))?;
    let mut args = vec![format!("--use-list={}", list.path().display())];
    if no_owner {
        args.push("--no-owner".into());
    }
    let (reader, _folder) = input.into_stdin(&mut args)?;
    let script = super::script::Script { prefix, suffix, single_transaction: true };
    super::script::through_psql(pg, db, &args, reader, &script, source).map_err(|e| match e {
        super::script::Failure::Refused(r) => crate::failed!("refusing the restore: {r}"),
        super::script::Failure::Other(e) => e,
    })
}

/// A pg_restore list file (`--use-list`) of the entries `keep` accepts, in archive order, so
/// a streamed archive is read front to back.
pub(super) fn write_list(toc: &Toc, keep: impl Fn(&TocEntry) -> bool) -> Result<tempfile::NamedTempFile> {
    write_list_of(&toc.entries.iter().filter(|e| keep(e)).collect::<Vec<_>>())
}

/// A pg_restore list (`--use-list`) of `entries`, in their order.
pub(super) fn write_list_of(entries: &[&TocEntry]) -> Result<tempfile::NamedTempFile> {
    let mut list = crate::scratch::tempfile("list")?;
    for e in entries {
        writeln!(list, "{}; {}", e.dump_id, e.desc).map_err(|e| crate::failed!("writing the restore list: {e}"))?;
    }
    list.flush().map_err(|e| crate::failed!("writing the restore list: {e}"))?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_specs() {
        assert_eq!(split_qualified("orders").unwrap(), vec!["orders"]);
        assert_eq!(split_qualified("app.orders").unwrap(), vec!["app", "orders"]);
        assert_eq!(split_qualified("\"my schema\".\"MixedCase\"").unwrap(), vec!["my schema", "MixedCase"]);
        assert_eq!(split_qualified("\"my schema\".\"a.b\"").unwrap(), vec!["my schema", "a.b"]);
        assert_eq!(split_qualified("\"say \"\"hi\"\"\"").unwrap(), vec!["say \"hi\""]);
        assert!(split_qualified("a.b.c").is_err());
        assert!(split_qualified("a.").is_err());
        assert!(split_qualified("\"open").is_err());
    }

    #[test]
    fn names_print_as_the_manifest_prints_them() {
        let t = TableName { schema: "my schema".into(), name: "MixedCase".into() };
        assert_eq!(t.to_string(), "\"my schema\".\"MixedCase\"");
        assert_eq!(TableName { schema: "app".into(), name: "orders".into() }.to_string(), "app.orders");
        assert_eq!(distance("orders", "ordres"), 2);
    }
}
