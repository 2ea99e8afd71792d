# Scale: prune and run over long catalogs (10,000 and 50,000 backups, all but a week due for
# deletion), list over 500 manifests of a 20,000-table database, and a 5,000-table database
# backed up with the default lock settings, with the table scans each backup costs the server
# (sourced by bench/run.sh).
if want scale; then
  echo "scale:" >&2
  SCALE=$WORK/scale
  rm -rf "$SCALE"; mkdir -p "$SCALE/policies"
  echo 'tiers: {daily: {keep_days: 7}}' > "$SCALE/policies/default.yml"
  fresh_db scale_small
  pg_sql "$PORT" scale_small "CREATE TABLE t AS SELECT generate_series(1, 100) AS x" >/dev/null
  cat > "$SCALE/projects.yml" <<YML
scale:
  database: {type: postgresql, host: 127.0.0.1, port: $PORT, user: postgres, databases: {p10k: scale_small, p50k: scale_small, list: scale_small, many: scale_many}}
YML
  printf 'projects: projects.yml\npolicies: policies\nbackup_root: backups\n' > "$SCALE/pgtier.yml"
  # fake_catalog ENV COUNT TABLES: COUNT hourly backups (tiny files, real manifests) ending
  # 2025-06-01, each manifest with TABLES row counts.
  fake_catalog() {
    python3 - "$SCALE/backups/scale/$1/database" "$2" "$3" "$1" <<'PY'
import datetime, hashlib, json, os, sys
d, n, tables, env = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(d, mode=0o700, exist_ok=True)
end = datetime.datetime(2025, 6, 1, 2, tzinfo=datetime.timezone.utc)
counts = {f"public.table_{i:05d}": i for i in range(tables)} if tables else None
for i in range(n):
    t = end - datetime.timedelta(hours=n - 1 - i)
    stem = t.strftime("db_%Y%m%d_%H%M%S")
    body = stem.encode()
    with open(f"{d}/{stem}.dump.gz", "wb") as f: f.write(body)
    m = {"format_version": 1, "kind": "database", "project": "scale", "env": env, "database": "scale_small",
         "created_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "file": f"{stem}.dump.gz", "format": "custom",
         "compression": "gzip", "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "tiers": ["daily"]}
    if counts: m["tables"] = counts
    with open(f"{d}/{stem}.json", "w") as f: json.dump(m, f)
PY
  }
  for n in 10000 50000; do
    env=p$((n / 1000))k
    fake_catalog "$env" "$n" 0
    BEFORE_EACH="rm -rf '$SCALE/backups/scale/$env'; fake_catalog $env $n 0" measure "prune_$env" env PGTIER_CONFIG="$SCALE/pgtier.yml" "$PGTIER" -q prune scale "$env" --now 2025-06-01T03:00:00Z
    BEFORE_EACH="rm -rf '$SCALE/backups/scale/$env'; fake_catalog $env $n 0" measure "run_$env" env PGTIER_CONFIG="$SCALE/pgtier.yml" "$PGTIER" -q run scale "$env" --now 2025-06-01T03:00:00Z
  done
  row "\`prune\` of 10,000 / 50,000 backups (all but a week due)" "${WALL[prune_p10k]} s / ${WALL[prune_p50k]} s ($(ratio "${WALL[prune_p50k]}" "${WALL[prune_p10k]}")× for 5× the backups)" "peak RSS ${RSS[prune_p10k]} / ${RSS[prune_p50k]} KiB" "linear; was 27 s / 371 s"
  row "\`run\` (backup + prune) with 10,000 / 50,000 backups due" "${WALL[run_p10k]} s / ${WALL[run_p50k]} s" "peak RSS ${RSS[run_p10k]} / ${RSS[run_p50k]} KiB" "50,000 well under a minute"
  fake_catalog list 500 20000
  measure list_500x20k env PGTIER_CONFIG="$SCALE/pgtier.yml" "$PGTIER" list scale list
  # audit exits 1 here (the week-old backups are due for deletion): that is its finding, not a failure.
  measure audit_500x20k bash -c "PGTIER_CONFIG='$SCALE/pgtier.yml' '$PGTIER' -q audit scale list --now 2025-06-01T03:00:00Z >/dev/null || true"
  # Once: the first run deletes what is due.
  BENCH_RUNS=1 measure run_500x20k env PGTIER_CONFIG="$SCALE/pgtier.yml" "$PGTIER" -q run scale list --now 2025-06-01T03:00:00Z
  row "\`list\` / \`audit\` / \`run\` over 500 manifests of a 20,000-table database" "${WALL[list_500x20k]} s / ${WALL[audit_500x20k]} s / ${WALL[run_500x20k]} s" "peak RSS ${RSS[list_500x20k]} / ${RSS[audit_500x20k]} / ${RSS[run_500x20k]} KiB" "memory bounded; was 5.4 s and 948 MiB (list), 13.4 s and 1.9 GiB (audit)"

  # 5,000 tables with a primary key each; this cluster has max_connections 100 and the default
  # max_locks_per_transaction 64: 6,400 lock slots. pg_dump needs 5,000.
  if [ "$(pg_sql "$PORT" postgres "SELECT count(*) FROM pg_database WHERE datname = 'scale_many'")" != 1 ]; then
    pg_sql "$PORT" postgres "CREATE DATABASE scale_many" >/dev/null
    for b in $(seq 0 9); do
      pg_sql "$PORT" scale_many "DO \$\$ BEGIN FOR i IN $((b * 500 + 1))..$((b * 500 + 500)) LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); EXECUTE format('INSERT INTO t%s SELECT g, md5(g::text) FROM generate_series(1, 20) g', i); END LOOP; END \$\$" >/dev/null
    done
  fi
  LOCKS=$(pg_sql "$PORT" postgres "SHOW max_locks_per_transaction")
  scans() { pg_sql "$PORT" scale_many "SELECT pg_stat_clear_snapshot(); SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_user_tables" | tail -1; }
  measure many_pgdump "$PG_BINDIR/pg_dump" -Fc -h 127.0.0.1 -p "$PORT" -U postgres -d scale_many -f "$SCALE/many.dump"
  sleep 1; S0=$(scans)
  "$PG_BINDIR/pg_dump" -Fc -h 127.0.0.1 -p "$PORT" -U postgres -d scale_many -f "$SCALE/many2.dump"
  sleep 1; S1=$(scans)
  measure many_pgtier env PGTIER_CONFIG="$SCALE/pgtier.yml" "$PGTIER" backup scale many
  sleep 1; S2=$(scans)
  "$PGTIER" --config "$SCALE/pgtier.yml" backup scale many >/dev/null 2>&1
  sleep 1; S3=$(scans)
  row "\`pgtier backup\` of a 5,000-table database (max_locks_per_transaction $LOCKS) vs \`pg_dump -Fc\`" "$(ratio "${WALL[many_pgtier]}" "${WALL[many_pgdump]}")× wall (${WALL[many_pgtier]} s vs ${WALL[many_pgdump]} s)" "table scans per backup: $((S3 - S2)) (pg_dump alone: $((S1 - S0)))" "backs up wherever pg_dump does"
  drop_db scale_small
fi
