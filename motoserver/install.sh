#!/usr/bin/env bash
# Installs the pinned moto (server mode: a second S3 implementation for the store tests) into
# .state/moto/venv. Idempotent: re-runs only when requirements.lock changes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.state/moto/venv
LOCK=$ROOT/motoserver/requirements.lock
STAMP=$VENV/.installed-$(sha256sum "$LOCK" | cut -c1-16)
[ -f "$STAMP" ] && exit 0
PY=${PGTIER_PYTHON:-python3}
echo "moto: installing the pinned moto[server] into $VENV" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$LOCK"
touch "$STAMP"
