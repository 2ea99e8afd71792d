# Encryption: `pgtier backup` with age and with gpg against the same backup without encryption,
# measured in the same run (sourced by bench/run.sh; uses its helpers).
if want crypto; then
  echo "crypto:" >&2
  age-keygen -o "$WORK/age.key" 2>"$WORK/age.pub.err"
  AGE_PUB=$(sed -n 's/^Public key: //p' "$WORK/age.pub.err")
  printf 'bench passphrase\n' > "$WORK/gpg.pass"; chmod 600 "$WORK/gpg.pass"
  cat >> "$WORK/projects.yml" <<YML
benchage:
  database: {type: postgresql, host: 127.0.0.1, port: $PORT, user: postgres, databases: {age: $DB}}
benchgpg:
  database: {type: postgresql, host: 127.0.0.1, port: $PORT, user: postgres, databases: {gpg: $DB}}
YML
  cat >> "$WORK/pgtier.yml" <<YML
project_encryption:
  benchage: {type: age, recipients: [$AGE_PUB]}
  benchgpg: {type: gpg, passphrase_file: gpg.pass}
YML
  CRYPTO_RUNS=${BENCH_RUNS_CRYPTO:-3}
  BENCH_RUNS=$CRYPTO_RUNS measure crypto_plain "$PGTIER" backup bench gzip
  BENCH_RUNS=$CRYPTO_RUNS measure crypto_age "$PGTIER" backup benchage age
  BENCH_RUNS=$CRYPTO_RUNS measure crypto_gpg "$PGTIER" backup benchgpg gpg
  row "\`pgtier backup\` with age vs without encryption" "$(ratio "${WALL[crypto_age]}" "${WALL[crypto_plain]}")× wall (${WALL[crypto_age]} s vs ${WALL[crypto_plain]} s, best of $CRYPTO_RUNS)" "peak RSS ${RSS[crypto_age]} KiB" "≤ 1.05×"
  row "\`pgtier backup\` with gpg (AES-256) vs without encryption" "$(ratio "${WALL[crypto_gpg]}" "${WALL[crypto_plain]}")× wall (${WALL[crypto_gpg]} s, best of $CRYPTO_RUNS)" "peak RSS ${RSS[crypto_gpg]} KiB" "≤ 1.05×"
fi
