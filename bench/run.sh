#!/usr/bin/env bash
# pgtier's benchmark: every figure the issues ask for, measured in ONE run against the baseline
# command it is compared with, on a generated database (>= 400 MB: text + jsonb in several
# tables). Writes bench/results.md and prints it. Not a test: it asserts nothing.
#
#   bench/run.sh              # full run (generates the database once, kept in .state/bench)
#   BENCH_ONLY=backup bench/run.sh   # one section: backup, restore, crypto, retention, s3, verify, scale, big, fleet
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source scripts/lib/pg.sh
STATE=$ROOT/.state/bench
mkdir -p "$STATE"
ONLY=${BENCH_ONLY:-all}
want() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }

# The benchmark needs bc and gpg besides what the quickstart needs.
scripts/setup --tests
cargo build --release -q
PGTIER=$ROOT/target/release/pgtier

PORT=$(pg_start "$STATE/pg")
trap 'pg_stop "$STATE/pg"' EXIT
DB=benchdb
ready=$(pg_sql "$PORT" postgres "SELECT count(*) FROM pg_database WHERE datname = '$DB'")
[ "$ready" = 1 ] && ready=$(pg_sql "$PORT" "$DB" "SELECT count(*) FROM pg_class WHERE relname = 'bench_ready'")
# The fleet section reads a generated bucket and the retention section plans on paper: neither
# needs the database.
if [ "$ready" != 1 ] && [ "$ONLY" != fleet ] && [ "$ONLY" != retention ]; then
  echo "generating the benchmark database (once, a few minutes)..." >&2
  pg_sql "$PORT" postgres "DROP DATABASE IF EXISTS $DB" >/dev/null
  pg_sql "$PORT" postgres "CREATE DATABASE $DB"
  pg_sql "$PORT" "$DB" "
    CREATE FUNCTION sentence(seed bigint, n int) RETURNS text LANGUAGE plpgsql IMMUTABLE AS \$\$
    DECLARE
      w CONSTANT text[] := ARRAY['invoice','customer','shipment','delayed','priority','berlin','amsterdam','warehouse','returned','payment','pending','approved','analytics','session','mobile','desktop','campaign','newsletter','subscription','renewal','discount','voucher','support','ticket','escalated','resolved','feedback','rating','review','product','category','inventory','the','a','of','and','to','in','for','with','on','by','from','at','order','status','delivery','address','account','refund'];
      out text := '';
    BEGIN
      FOR k IN 1..n LOOP
        out := out || w[1 + abs(hashint8(seed * 31 + k)) % 50] || CASE WHEN (seed + k) % 7 = 0 THEN ' ' || ((seed * k) % 997)::text ELSE '' END || ' ';
      END LOOP;
      RETURN rtrim(out);
    END \$\$;
    CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, address text, created_at timestamptz, profile jsonb);
    INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com', sentence(i, 6) || ', ' || (i % 9999) || ' Main Street',
      timestamptz '2020-01-01' + (i || ' minutes')::interval,
      jsonb_build_object('tier', (ARRAY['free','pro','enterprise'])[1 + i % 3], 'tags', jsonb_build_array(sentence(i + 1, 2), sentence(i + 2, 1)), 'score', (i * 7919) % 1000, 'bio', sentence(i + 3, 12))
    FROM generate_series(1::bigint, 600000) i;
    CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, status text, total numeric(12,2), items jsonb, note text, created_at timestamptz);
    INSERT INTO orders SELECT i, 1 + (i * 13) % 600000, (ARRAY['new','paid','shipped','returned'])[1 + i % 4], ((i * 37) % 100000) / 100.0,
      jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 5000), 'qty', 1 + i % 5, 'name', sentence(i, 3)), jsonb_build_object('sku', 'SKU-' || (i % 777), 'qty', 1, 'name', sentence(i + 9, 2))),
      sentence(i + 5, 10), timestamptz '2021-01-01' + (i || ' seconds')::interval
    FROM generate_series(1::bigint, 1500000) i;
    CREATE TABLE events (id bigserial PRIMARY KEY, kind text, payload jsonb, at timestamptz);
    INSERT INTO events (kind, payload, at) SELECT (ARRAY['click','view','login','logout','purchase'])[1 + i % 5],
      jsonb_build_object('session', md5(i::text), 'path', '/' || sentence(i, 2), 'ms', i % 3000), timestamptz '2022-01-01' + (i || ' seconds')::interval
    FROM generate_series(1::bigint, 1500000) i;
    CREATE TABLE bench_ready ();
    ANALYZE;"
fi
DB_BYTES=$(pg_sql "$PORT" postgres "SELECT pg_database_size('$DB')" 2>/dev/null || echo 0)

WORK=$STATE/work
rm -rf "$WORK"; mkdir -p "$WORK/policies"
cat > "$WORK/policies/default.yml" <<YML
compression: gzip
compression_level: 6
tiers: {daily: {keep_days: 30}}
YML
cat > "$WORK/policies/hourly.yml" <<YML
tiers: {hourly: {keep: 48}, daily: {keep_days: 30}, weekly: {keep: 12}, monthly: {keep: 12}}
YML
cat > "$WORK/policies/zstd.yml" <<YML
compression: zstd
compression_level: 3
tiers: {daily: {keep_days: 30}}
YML
cat > "$WORK/projects.yml" <<YML
bench:
  database: {type: postgresql, host: 127.0.0.1, port: $PORT, user: postgres, databases: {gzip: $DB}}
benchzstd:
  database: {type: postgresql, host: 127.0.0.1, port: $PORT, user: postgres, policy: zstd, databases: {zstd: $DB}}
YML
printf 'projects: projects.yml\npolicies: policies\nbackup_root: backups\n' > "$WORK/pgtier.yml"
export PGTIER_CONFIG=$WORK/pgtier.yml PGTIER_REPORT_PEAK_RSS=1 PGTIER_LOG=pgtier=warn

# measure NAME CMD...: wall seconds (best of BENCH_RUNS, default 1) and pgtier's own peak RSS
# (the largest seen) when it reports one. BEFORE_EACH, if set, runs before every repetition.
declare -A WALL RSS
measure() {
  local name=$1; shift
  local runs=${BENCH_RUNS:-1} i start end wall rss
  WALL[$name]=""; RSS[$name]=""
  for ((i = 0; i < runs; i++)); do
    [ -n "${BEFORE_EACH:-}" ] && eval "$BEFORE_EACH"
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    start=$(date +%s.%N)
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || { echo "benchmark step $name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
    end=$(date +%s.%N)
    wall=$(secs "$(echo "$end - $start" | bc)")
    rss=$(sed -n 's/^pgtier-peak-rss-kib: //p' "$WORK/$name.err" | tail -1)
    if [ -z "${WALL[$name]}" ] || [ "$(echo "$wall < ${WALL[$name]}" | bc)" = 1 ]; then WALL[$name]=$wall; fi
    if [ -n "$rss" ] && { [ -z "${RSS[$name]}" ] || [ "$rss" -gt "${RSS[$name]}" ]; }; then RSS[$name]=$rss; fi
  done
  echo "  $name: ${WALL[$name]} s${RSS[$name]:+, pgtier peak RSS ${RSS[$name]} KiB}" >&2
}
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
mib() { printf '%.1f' "$(echo "scale=2; $1 / 1048576" | bc)"; }
secs() { printf '%.2f' "$1"; }
drop_db() { pg_sql "$PORT" postgres "DROP DATABASE IF EXISTS $1" 2>/dev/null >/dev/null; }
fresh_db() { drop_db "$1"; pg_sql "$PORT" postgres "CREATE DATABASE $1"; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }

if want backup || want restore || want crypto; then
  echo "backup:" >&2
  measure base_dump "$PG_BINDIR/pg_dump" -Fc -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" -f "$WORK/base.dump"
  BASE_SIZE=$(stat -c %s "$WORK/base.dump")
  measure pgtier_gzip "$PGTIER" backup bench gzip
  GZ_FILE=$(cat "$WORK/pgtier_gzip.out"); GZ_SIZE=$(stat -c %s "$GZ_FILE")
  measure pgtier_zstd "$PGTIER" backup benchzstd zstd
  ZS_FILE=$(cat "$WORK/pgtier_zstd.out"); ZS_SIZE=$(stat -c %s "$ZS_FILE")
  row "\`pgtier backup\` (gzip 6) vs \`pg_dump -Fc -f\`" "$(ratio "${WALL[pgtier_gzip]}" "${WALL[base_dump]}")× wall (${WALL[pgtier_gzip]} s vs ${WALL[base_dump]} s)" "$(ratio "$GZ_SIZE" "$BASE_SIZE")× size ($(mib "$GZ_SIZE") vs $(mib "$BASE_SIZE") MiB)" "≤ 1.0× wall, ≤ 1.05× size"
  row "\`pgtier backup\` (zstd 3) vs \`pg_dump -Fc -f\`" "$(ratio "${WALL[pgtier_zstd]}" "${WALL[base_dump]}")× wall (${WALL[pgtier_zstd]} s)" "$(ratio "$ZS_SIZE" "$BASE_SIZE")× size" "≤ 0.5× wall"
  row "pgtier's own peak RSS during backup" "${RSS[pgtier_gzip]} KiB (gzip), ${RSS[pgtier_zstd]} KiB (zstd)" "DB $(mib "$DB_BYTES") MiB" "≤ 64 MiB"
fi

if want restore; then
  echo "restore:" >&2
  BEFORE_EACH="fresh_db bench_base_restore" measure base_restore "$PG_BINDIR/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres -d bench_base_restore "$WORK/base.dump"
  BEFORE_EACH="drop_db bench_pgtier_restore" measure pgtier_restore "$PGTIER" restore bench gzip --target-db bench_pgtier_restore --no-analyze
  row "\`pgtier restore --no-analyze\` (checksum + restore + row-count check) vs \`pg_restore -d\`" "$(ratio "${WALL[pgtier_restore]}" "${WALL[base_restore]}")× wall (${WALL[pgtier_restore]} s vs ${WALL[base_restore]} s)" "peak RSS ${RSS[pgtier_restore]} KiB" "≤ 1.1×"
  # The default restore also gathers planner statistics (ANALYZE) before the database is used.
  BEFORE_EACH="drop_db bench_pgtier_restore" measure pgtier_restore_analyzed "$PGTIER" --json restore bench gzip --target-db bench_pgtier_restore
  ANALYZE_S=$(sed -n 's/.*"analyze_seconds": *\([0-9.]*\).*/\1/p' "$WORK/pgtier_restore_analyzed.out" | head -1)
  row "ANALYZE of the restored database before it is put in place (the default; \`--no-analyze\` skips it)" "${ANALYZE_S} s" "the whole restore with it: ${WALL[pgtier_restore_analyzed]} s ($(ratio "${WALL[pgtier_restore_analyzed]}" "${WALL[base_restore]}")× \`pg_restore -d\`, which leaves the database without statistics)" "shown"
  drop_db bench_base_restore; drop_db bench_pgtier_restore
fi

# In name order: verify runs before the s3 section adds a remote to the config.
for extra in bench/sections/*.sh; do
  [ -f "$extra" ] && source "$extra"
done

{
  echo "# Benchmark results"
  echo
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) by \`bench/run.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "database $(mib "$DB_BYTES") MiB (text + jsonb, 3.6 M rows in 3 tables). Each ratio compares two"
  echo "commands measured in the same run (best of BENCH_RUNS=${BENCH_RUNS:-1} unless noted), page cache dropped"
  echo "before each; pgtier's peak RSS is its own (VmHWM), not its children's (pg_dump, pg_restore)."
  echo
  echo "| measure | result | also | goal |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} > bench/results.md
cat bench/results.md
