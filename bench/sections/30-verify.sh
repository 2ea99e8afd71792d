# Verification: `pgtier verify` (checksum, restore into a temporary database, every table's
# row count compared, amcheck of btree indexes, drop) against a plain restore of the same backup
# plus the same row counting, in the same run (sourced by bench/run.sh).
if want verify; then
  echo "verify:" >&2
  V_FILE=$("$PGTIER" list bench gzip --latest 2>/dev/null || true)
  [ -n "$V_FILE" ] || V_FILE=$("$PGTIER" backup bench gzip 2>/dev/null)
  COUNT_SQL="SELECT (SELECT count(*) FROM ONLY public.customers), (SELECT count(*) FROM ONLY public.orders), (SELECT count(*) FROM ONLY public.events)"
  BEFORE_EACH="fresh_db bench_verify_base" measure verify_base bash -o pipefail -c \
    "gunzip -c '$V_FILE' | '$PG_BINDIR/pg_restore' -h 127.0.0.1 -p $PORT -U postgres -d bench_verify_base && '$PG_BINDIR/psql' -X -q -h 127.0.0.1 -p $PORT -U postgres -d bench_verify_base -c \"$COUNT_SQL\" >/dev/null"
  measure verify_pgtier "$PGTIER" verify bench gzip
  row "\`pgtier verify\` vs \`gunzip \| pg_restore\` + counting every table's rows" "$(ratio "${WALL[verify_pgtier]}" "${WALL[verify_base]}")× wall (${WALL[verify_pgtier]} s vs ${WALL[verify_base]} s; pgtier also checks the SHA-256 and every btree index)" "peak RSS ${RSS[verify_pgtier]} KiB" "≤ 1.1×"
  drop_db bench_verify_base
fi
