# Off-site: `pgtier sync` of a 1 GiB backup against `aws s3 cp` of the same file, and
# `pgtier restore --from remote` against (download time + `pg_restore` of the local file), both
# against LocalStack on loopback, in the same run (sourced by bench/run.sh).
if want s3; then
  echo "s3:" >&2
  AWS=$ROOT/.state/awscli/bin/aws
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  S3_PORT=$(free_port)
  S3=$(localstack/start.sh "$S3_PORT" --parent $$)
  trap 'localstack/stop.sh "$S3_PORT" >/dev/null 2>&1; pg_stop "$STATE/pg"' EXIT
  "$AWS" --endpoint-url "$S3" s3api create-bucket --bucket bench >/dev/null
  # 512 MiB of random bytea, which COPY writes as hex: a 1 GiB dump that no compression shrinks.
  drop_db bench1g
  if [ "$(pg_sql "$PORT" postgres "SELECT count(*) FROM pg_database WHERE datname = 'bench1gib'")" = 0 ]; then
    echo "generating the 1 GiB backup's data (once)..." >&2
    pg_sql "$PORT" postgres "CREATE DATABASE bench1gib"
    pg_sql "$PORT" bench1gib "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || ':' || j::text), ''), 'hex') AS b FROM generate_series(1, 512) i, generate_series(1, 65536) j GROUP BY i"
  fi
  cat > "$WORK/policies/raw.yml" <<YML
compression: none
tiers: {daily: {keep: 3, locations: [local, remote], storage_class: STANDARD}}
YML
  cat >> "$WORK/projects.yml" <<YML
bench1g:
  database: {type: postgresql, host: 127.0.0.1, port: $PORT, user: postgres, policy: raw, databases: {raw: bench1gib}}
YML
  printf 'remote:\n  url: s3://bench/p\n  endpoint_url: %s\n  region: us-east-1\n  force_path_style: true\n' "$S3" >> "$WORK/pgtier.yml"
  RAW_FILE=$("$PGTIER" backup bench1g raw 2>/dev/null)
  RAW_SIZE=$(stat -c %s "$RAW_FILE")
  BEFORE_EACH="\"$AWS\" --endpoint-url \"$S3\" s3 rm --recursive --quiet s3://bench/p/ >/dev/null" \
    measure s3_aws_cp "$AWS" --endpoint-url "$S3" s3 cp --quiet "$RAW_FILE" s3://bench/baseline/raw.dump
  BEFORE_EACH="\"$AWS\" --endpoint-url \"$S3\" s3 rm --recursive --quiet s3://bench/p/ >/dev/null" \
    measure s3_pgtier_sync "$PGTIER" sync bench1g raw
  row "\`pgtier sync\` of a $(mib "$RAW_SIZE") MiB backup vs \`aws s3 cp\` (LocalStack, loopback)" "$(ratio "${WALL[s3_pgtier_sync]}" "${WALL[s3_aws_cp]}")× wall (${WALL[s3_pgtier_sync]} s vs ${WALL[s3_aws_cp]} s)" "peak RSS ${RSS[s3_pgtier_sync]} KiB" "≤ 1.0× wall, ≤ 128 MiB"
  # Two destinations (this S3 and a folder) from one dump: the local file is read from disk once.
  printf 'projects: projects.yml\npolicies: policies\nbackup_root: backups\nremotes:\n  - name: s3\n    url: s3://bench/p\n    endpoint_url: %s\n    region: us-east-1\n    force_path_style: true\n  - name: nas\n    url: file://%s\n' "$S3" "$WORK/nas" > "$WORK/two.yml"
  BEFORE_EACH="\"$AWS\" --endpoint-url \"$S3\" s3 rm --recursive --quiet s3://bench/p/ >/dev/null; rm -rf '$WORK/nas'" \
    measure s3_pgtier_sync_two env PGTIER_CONFIG="$WORK/two.yml" "$PGTIER" sync bench1g raw
  io_of() { sed -n 's/^pgtier-io: //p' "$WORK/$1.err" | tail -1; }
  mib_field() { mib "$(io_of "$1" | tr ' ' '\n' | sed -n "s/^$2=//p")"; }
  row "\`pgtier sync\` of the same backup to two destinations (this S3 + a \`file://\` folder) vs one" "$(ratio "${WALL[s3_pgtier_sync_two]}" "${WALL[s3_pgtier_sync]}")× wall (${WALL[s3_pgtier_sync_two]} s vs ${WALL[s3_pgtier_sync]} s)" "one dump; read from disk: $(mib_field s3_pgtier_sync_two read_bytes) MiB for two vs $(mib_field s3_pgtier_sync read_bytes) MiB for one (through read(): $(mib_field s3_pgtier_sync_two rchar) vs $(mib_field s3_pgtier_sync rchar) MiB, the second pass from the page cache); peak RSS ${RSS[s3_pgtier_sync_two]} KiB" "the dump read once"
  BEFORE_EACH="rm -f '$WORK/dl.dump'" measure s3_aws_download "$AWS" --endpoint-url "$S3" s3 cp --quiet s3://bench/baseline/raw.dump "$WORK/dl.dump"
  BEFORE_EACH="fresh_db bench_dl_restore" measure s3_local_pg_restore "$PG_BINDIR/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres -d bench_dl_restore "$WORK/dl.dump"
  BEFORE_EACH="drop_db bench_remote_restore" measure s3_pgtier_remote_restore "$PGTIER" restore bench1g raw --from remote --target-db bench_remote_restore --no-analyze
  base=$(echo "${WALL[s3_aws_download]} + ${WALL[s3_local_pg_restore]}" | bc)
  row "\`pgtier restore --from remote --no-analyze\` vs download + \`pg_restore\` of the local file" "$(ratio "${WALL[s3_pgtier_remote_restore]}" "$base")× wall (${WALL[s3_pgtier_remote_restore]} s vs ${WALL[s3_aws_download]} + ${WALL[s3_local_pg_restore]} s)" "peak RSS ${RSS[s3_pgtier_remote_restore]} KiB" "≤ 1.15×, ≤ 128 MiB"
  drop_db bench_dl_restore; drop_db bench_remote_restore; rm -f "$WORK/dl.dump"
fi
