#!/usr/bin/env bash
# Installs the pinned aiosmtpd (a real SMTP server for the notification tests) into
# .state/smtpd/venv. Idempotent: re-runs only when requirements.lock changes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.state/smtpd/venv
LOCK=$ROOT/smtpserver/requirements.lock
STAMP=$VENV/.installed-$(sha256sum "$LOCK" | cut -c1-16)
[ -f "$STAMP" ] && exit 0
PY=${PGTIER_PYTHON:-python3}
echo "smtpd: installing the pinned aiosmtpd into $VENV" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$LOCK"
touch "$STAMP"
