# Big databases: a parallel dump (`backup: {jobs: 2}`, zstd 3) and its restore on a generated
# database of about 11 GB (BENCH_BIG_SCALE=8; each unit about 1.4 GB) on PostgreSQL BENCH_BIG_MAJOR (default 17, with its
# own client tools), against pg_dump -Fd -j 2, pg_dump -Fc, pg_restore -j 2 of pg_dump's own
# folder (then ANALYZE, as pgtier's restore does before the swap), a single-job pg_restore, and
# download + tar -x + pg_restore -j 2 from LocalStack, on loopback and through a link of
# BENCH_LINK_MIB MiB/s (default 25, about 200 Mbit/s: bench/throttle.py); then the same backup and restore on a
# database of about 1 GB (scale 0.75) for how time grows. Runs only when asked: BENCH_ONLY=big bench/run.sh (it takes
# about an hour; the databases are generated once and kept in .state/bench).
if [[ ",$ONLY," == *",big,"* ]]; then
  echo "big:" >&2
  BIG_SCALE=${BENCH_BIG_SCALE:-8}
  BIG_MAJOR=${BENCH_BIG_MAJOR:-17}
  PGM=$ROOT/.state/pgmajors
  BIG_BIN=$PGM/servers/$BIG_MAJOR/bin
  [ -x "$BIG_BIN/initdb" ] || { echo "PostgreSQL $BIG_MAJOR is missing in $BIG_BIN: run scripts/setup --tests" >&2; exit 1; }
  export PGTIER_PG_VERSIONED_ROOT=$PGM/versions
  BIG_PORT=$(PG_BINDIR=$BIG_BIN pg_start "$STATE/pg$BIG_MAJOR")
  BIG_S3_PORT=$(free_port)
  trap '[ -n "${LINK_PID:-}" ] && kill "$LINK_PID" 2>/dev/null; localstack/stop.sh "$BIG_S3_PORT" >/dev/null 2>&1; PG_BINDIR=$BIG_BIN pg_stop "$STATE/pg$BIG_MAJOR"; pg_stop "$STATE/pg"' EXIT
  bsql() { "$BIG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BIG_PORT" -U postgres -d "$1" -c "$2"; }
  big_drop() { bsql postgres "DROP DATABASE IF EXISTS $1" >/dev/null 2>&1; }
  big_fresh() { big_drop "$1"; bsql postgres "CREATE DATABASE $1"; }

  # big_generate DB SCALE: about 1.4 GB per unit of SCALE. Text is made of words drawn at random from a
  # vocabulary (with numbers among them), so it compresses like prose; three large tables with
  # jsonb and indexes, and 300 small ones.
  big_generate() {
    local db=$1 sf=$2
    local ready
    ready=$(bsql postgres "SELECT count(*) FROM pg_database WHERE datname = '$db'")
    [ "$ready" = 1 ] && ready=$(bsql "$db" "SELECT count(*) FROM pg_class WHERE relname = 'bench_ready'")
    [ "$ready" = 1 ] && return 0
    echo "generating $db (scale $sf, once)..." >&2
    big_fresh "$db"
    bsql "$db" "
      CREATE TABLE docs (id bigint, author_id bigint, title text, body text, meta jsonb, created_at timestamptz);
      CREATE TABLE orders (id bigint, customer_id bigint, status text, total numeric(12,2), items jsonb, note text, created_at timestamptz);
      CREATE TABLE events (id bigint, kind text, payload jsonb, at timestamptz);
      DO \$\$ BEGIN FOR k IN 1..300 LOOP
        EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, name text, v jsonb)', k);
        EXECUTE format('INSERT INTO small_%s SELECT i, %L || i, jsonb_build_object(''k'', i) FROM generate_series(1, 100) i', k, 'row ');
      END LOOP; END \$\$;"
    local w="(SELECT ARRAY['invoice','customer','shipment','delayed','priority','berlin','amsterdam','warehouse','returned','payment','pending','approved','analytics','session','mobile','desktop','campaign','newsletter','subscription','renewal','discount','voucher','support','ticket','escalated','resolved','feedback','rating','review','product','category','inventory','the','a','of','and','to','in','for','with','on','by','from','at','order','status','delivery','address','account','refund'] AS a) w"
    # text(SEED, WORDS): that many words drawn by hashing the seed.
    text() { echo "(SELECT string_agg(w.a[1 + abs(hashint8(($1) * 1000 + k)) % 50] || CASE WHEN (($1) + k) % 7 = 0 THEN ' ' || ((($1) * k) % 997) ELSE '' END, ' ') FROM generate_series(1, $2) k)"; }
    # Two sessions at once: one per core.
    bsql "$db" "INSERT INTO docs SELECT i, 1 + (i * 7919) % 100000, $(text i 8), $(text "i + 7" "100 + (i % 80)::int"),
        jsonb_build_object('lang', (ARRAY['en','de','nl','fr'])[1 + i % 4], 'words', 100 + i % 300, 'tags', jsonb_build_array('t' || (i % 97), 't' || (i % 13)), 'rev', i % 17),
        timestamptz '2020-01-01' + (i || ' seconds')::interval
      FROM generate_series(1::bigint, ($sf * 600000)::bigint) i, $w" &
    local docs=$!
    bsql "$db" "INSERT INTO orders SELECT i, 1 + (i * 13) % 600000, (ARRAY['new','paid','shipped','returned'])[1 + i % 4], ((i * 37) % 100000) / 100.0,
        jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 5000), 'qty', 1 + i % 5, 'name', $(text i 3))),
        $(text "i + 3" 12), timestamptz '2021-01-01' + (i || ' seconds')::interval
      FROM generate_series(1::bigint, ($sf * 1000000)::bigint) i, $w;
      INSERT INTO events SELECT i, (ARRAY['click','view','login','logout','purchase'])[1 + i % 5],
        jsonb_build_object('session', md5(i::text), 'path', '/' || $(text i 2), 'ms', i % 3000), timestamptz '2022-01-01' + (i || ' seconds')::interval
      FROM generate_series(1::bigint, ($sf * 1000000)::bigint) i, $w"
    wait "$docs"
    bsql "$db" "ALTER TABLE docs ADD PRIMARY KEY (id); CREATE INDEX ON docs (author_id); CREATE INDEX ON docs (created_at);
      ALTER TABLE orders ADD PRIMARY KEY (id); CREATE INDEX ON orders (customer_id);
      ALTER TABLE events ADD PRIMARY KEY (id); CREATE INDEX ON events (at);
      CREATE TABLE bench_ready ()"
    bsql "$db" "VACUUM ANALYZE"
    bsql "$db" "CHECKPOINT"
  }
  big_generate bigdb10 "$BIG_SCALE"
  big_generate bigdb1 0.75
  BIG_BYTES=$(bsql postgres "SELECT pg_database_size('bigdb10')")
  ONE_BYTES=$(bsql postgres "SELECT pg_database_size('bigdb1')")

  BIG_AWS=$ROOT/.state/awscli/bin/aws
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  BIG_S3=$(localstack/start.sh "$BIG_S3_PORT" --parent $$)
  "$BIG_AWS" --endpoint-url "$BIG_S3" s3api create-bucket --bucket big >/dev/null
  cat > "$WORK/policies/big.yml" <<YML
compression: zstd
compression_level: 3
backup_jobs: 2
tiers: {daily: {keep: 3, locations: [local, remote], storage_class: STANDARD}}
YML
  cat > "$WORK/big-projects.yml" <<YML
big:
  database: {type: postgresql, host: 127.0.0.1, port: $BIG_PORT, user: postgres, policy: big, databases: {ten: bigdb10, one: bigdb1}}
YML
  printf 'projects: big-projects.yml\npolicies: policies\nbackup_root: backups-big\nremote:\n  url: s3://big/p\n  endpoint_url: %s\n  region: us-east-1\n  force_path_style: true\n' "$BIG_S3" > "$WORK/big.yml"
  BIGCFG=(env PGTIER_CONFIG="$WORK/big.yml")
  rm -rf "$WORK/backups-big"
  # The most the scratch folder held during a command: sampled every half second.
  peak_scratch() {
    local max=0 now
    while sleep 0.5; do
      now=$(du -sb "$WORK/backups-big/.tmp" 2>/dev/null | cut -f1); now=${now:-0}
      [ "$now" -gt "$max" ] && max=$now && echo "$max" > "$WORK/scratch.peak"
    done
  }

  # Backups.
  BEFORE_EACH="rm -rf '$WORK/fd'" measure big_base_fd "$BIG_BIN/pg_dump" -Fd -j 2 -h 127.0.0.1 -p "$BIG_PORT" -U postgres -d bigdb10 -f "$WORK/fd"
  FD_SIZE=$(du -sb "$WORK/fd" | cut -f1)
  measure big_base_fc "$BIG_BIN/pg_dump" -Fc -h 127.0.0.1 -p "$BIG_PORT" -U postgres -d bigdb10 -f "$WORK/big.dump"
  FC_SIZE=$(stat -c %s "$WORK/big.dump")
  BEFORE_EACH="rm -rf '$WORK/backups-big/big/ten'" measure big_pgtier_backup "${BIGCFG[@]}" "$PGTIER" backup big ten
  BIG_FILE=$(cat "$WORK/big_pgtier_backup.out"); BIG_SIZE=$(stat -c %s "$BIG_FILE")
  row "\`pgtier backup\` with \`jobs: 2\` (zstd 3) of $(mib "$BIG_BYTES") MiB on PostgreSQL $BIG_MAJOR vs \`pg_dump -Fd -j 2\` (its gzip)" "$(ratio "${WALL[big_pgtier_backup]}" "${WALL[big_base_fd]}")× wall (${WALL[big_pgtier_backup]} s vs ${WALL[big_base_fd]} s)" "$(ratio "$BIG_SIZE" "$FD_SIZE")× size ($(mib "$BIG_SIZE") vs $(mib "$FD_SIZE") MiB); peak RSS ${RSS[big_pgtier_backup]} KiB" "≤ 0.6×, ≤ 256 MiB"
  row "the same vs \`pg_dump -Fc\`" "$(ratio "${WALL[big_pgtier_backup]}" "${WALL[big_base_fc]}")× wall (vs ${WALL[big_base_fc]} s)" "$(ratio "$BIG_SIZE" "$FC_SIZE")× size (vs $(mib "$FC_SIZE") MiB)" "≤ 0.4×"

  # Restores: pgtier's includes the checksum, unpacking, pg_restore -j 2, the row-count and
  # schema checks and ANALYZE; the baseline gets ANALYZE too (vacuumdb -Z -j 2), shown apart.
  BEFORE_EACH="big_fresh bigr_base" measure big_base_restore_j2 "$BIG_BIN/pg_restore" -j 2 -h 127.0.0.1 -p "$BIG_PORT" -U postgres -d bigr_base "$WORK/fd"
  measure big_base_analyze "$BIG_BIN/vacuumdb" -Z -j 2 -q -h 127.0.0.1 -p "$BIG_PORT" -U postgres -d bigr_base
  big_drop bigr_base
  BEFORE_EACH="big_fresh bigr_one" measure big_base_restore_1 "$BIG_BIN/pg_restore" -h 127.0.0.1 -p "$BIG_PORT" -U postgres -d bigr_one "$WORK/big.dump"
  big_drop bigr_one
  peak_scratch & SAMPLER=$!
  BEFORE_EACH="big_drop bigr_pgtier" measure big_pgtier_restore "${BIGCFG[@]}" "$PGTIER" restore big ten --jobs 2 --target-db bigr_pgtier
  kill "$SAMPLER" 2>/dev/null || true
  SCRATCH_PEAK=$(cat "$WORK/scratch.peak" 2>/dev/null || echo 0); rm -f "$WORK/scratch.peak"
  big_drop bigr_pgtier
  base_an=$(echo "${WALL[big_base_restore_j2]} + ${WALL[big_base_analyze]}" | bc)
  row "\`pgtier restore --jobs 2\` (checksum, unpack, restore, counts, schema, ANALYZE) vs \`pg_restore -j 2\` of pg_dump's folder + ANALYZE" "$(ratio "${WALL[big_pgtier_restore]}" "$base_an")× wall (${WALL[big_pgtier_restore]} s vs ${WALL[big_base_restore_j2]} + ${WALL[big_base_analyze]} s)" "without the baseline's ANALYZE: $(ratio "${WALL[big_pgtier_restore]}" "${WALL[big_base_restore_j2]}")×; peak RSS ${RSS[big_pgtier_restore]} KiB; scratch used at most $(mib "$SCRATCH_PEAK") MiB (stored $(mib "$BIG_SIZE") MiB)" "≤ 1.05×, disk ≤ stored size"
  row "the same vs a single-job \`pg_restore\` of \`pg_dump -Fc\`" "$(ratio "${WALL[big_pgtier_restore]}" "${WALL[big_base_restore_1]}")× wall (vs ${WALL[big_base_restore_1]} s)" "" "≤ 0.8×"

  # From S3 after the local copy is gone, against download + tar -x + pg_restore -j 2.
  measure big_sync "${BIGCFG[@]}" "$PGTIER" sync big ten
  KEY=$("$BIG_AWS" --endpoint-url "$BIG_S3" s3api list-objects-v2 --bucket big --prefix p/big/ten/daily/ --query 'Contents[].Key' --output text | tr '\t' '\n' | grep '\.tar$')
  BEFORE_EACH="rm -rf '$WORK/dl' && mkdir -p '$WORK/dl'" measure big_download "$BIG_AWS" --endpoint-url "$BIG_S3" s3 cp --quiet "s3://big/$KEY" "$WORK/dl/big.tar"
  BEFORE_EACH="rm -rf '$WORK/dl/x' && mkdir -p '$WORK/dl/x'" measure big_untar tar -xf "$WORK/dl/big.tar" -C "$WORK/dl/x"
  rm -rf "$WORK/dl"
  rm -rf "$WORK/backups-big/big/ten"
  BEFORE_EACH="big_drop bigr_remote" measure big_pgtier_remote "${BIGCFG[@]}" "$PGTIER" restore big ten --from remote --jobs 2 --target-db bigr_remote
  big_drop bigr_remote
  base_s3=$(echo "${WALL[big_download]} + ${WALL[big_untar]} + ${WALL[big_base_restore_j2]} + ${WALL[big_base_analyze]}" | bc)
  row "\`pgtier restore --from remote --jobs 2\` vs download + \`tar -x\` + \`pg_restore -j 2\` + ANALYZE (LocalStack, loopback)" "$(ratio "${WALL[big_pgtier_remote]}" "$base_s3")× wall (${WALL[big_pgtier_remote]} s vs ${WALL[big_download]} + ${WALL[big_untar]} + ${WALL[big_base_restore_j2]} + ${WALL[big_base_analyze]} s)" "peak RSS ${RSS[big_pgtier_remote]} KiB; sync up: ${WALL[big_sync]} s" "≤ 0.7×"

  # The same through a link of LINK_MIB MiB/s shared by every connection, as from a bucket in
  # another network: the download then takes about as long as the load.
  LINK_MIB=${BENCH_LINK_MIB:-25}
  LINK_PORT=$(free_port)
  python3 bench/throttle.py "$LINK_PORT" "$BIG_S3_PORT" "$LINK_MIB" > "$WORK/link.out" &
  LINK_PID=$!
  for _ in $(seq 100); do grep -q ready "$WORK/link.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$WORK/link.out" || { echo "bench/throttle.py did not start" >&2; exit 1; }
  LINK_S3=http://127.0.0.1:$LINK_PORT
  sed "s#endpoint_url: .*#endpoint_url: $LINK_S3#" "$WORK/big.yml" > "$WORK/big-link.yml"
  BEFORE_EACH="rm -rf '$WORK/dl' && mkdir -p '$WORK/dl'" measure big_link_download "$BIG_AWS" --endpoint-url "$LINK_S3" s3 cp --quiet "s3://big/$KEY" "$WORK/dl/big.tar"
  rm -rf "$WORK/dl"
  BEFORE_EACH="big_drop bigr_link" measure big_link_remote env PGTIER_CONFIG="$WORK/big-link.yml" "$PGTIER" restore big ten --from remote --jobs 2 --target-db bigr_link
  big_drop bigr_link
  kill "$LINK_PID"; LINK_PID=
  base_link=$(echo "${WALL[big_link_download]} + ${WALL[big_untar]} + ${WALL[big_base_restore_j2]} + ${WALL[big_base_analyze]}" | bc)
  row "the same through a $LINK_MIB MiB/s link (about $((LINK_MIB * 8)) Mbit/s)" "$(ratio "${WALL[big_link_remote]}" "$base_link")× wall (${WALL[big_link_remote]} s vs ${WALL[big_link_download]} + ${WALL[big_untar]} + ${WALL[big_base_restore_j2]} + ${WALL[big_base_analyze]} s)" "peak RSS ${RSS[big_link_remote]} KiB" "≤ 0.7×"

  # Growth: the same backup and restore of a 1 GB database.
  BEFORE_EACH="rm -rf '$WORK/backups-big/big/one'" measure one_pgtier_backup "${BIGCFG[@]}" "$PGTIER" backup big one
  BEFORE_EACH="big_drop bigr_one_pgtier" measure one_pgtier_restore "${BIGCFG[@]}" "$PGTIER" restore big one --jobs 2 --target-db bigr_one_pgtier
  big_drop bigr_one_pgtier
  per() { printf '%.1f' "$(echo "scale=4; $1 / ($2 / 1073741824)" | bc)"; }
  row "growth from $(mib "$ONE_BYTES") MiB to $(mib "$BIG_BYTES") MiB ($(ratio "$BIG_BYTES" "$ONE_BYTES")× the data)" "backup $(ratio "${WALL[big_pgtier_backup]}" "${WALL[one_pgtier_backup]}")× the time (${WALL[one_pgtier_backup]} → ${WALL[big_pgtier_backup]} s), restore $(ratio "${WALL[big_pgtier_restore]}" "${WALL[one_pgtier_restore]}")× (${WALL[one_pgtier_restore]} → ${WALL[big_pgtier_restore]} s)" "s per GiB: backup $(per "${WALL[one_pgtier_backup]}" "$ONE_BYTES") → $(per "${WALL[big_pgtier_backup]}" "$BIG_BYTES"), restore $(per "${WALL[one_pgtier_restore]}" "$ONE_BYTES") → $(per "${WALL[big_pgtier_restore]}" "$BIG_BYTES")" "linear or better"
  rm -rf "$WORK/fd" "$WORK/big.dump"
fi
