#!/usr/bin/env bash
# Installs the pinned LocalStack (localstack-core, S3 only is used) into .state/localstack/venv.
# Needs Python >= 3.13 (localstack-core imports warnings.deprecated). Idempotent: re-runs only
# when requirements.lock changes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCK=$ROOT/localstack/requirements.lock
STAMP=$ROOT/.state/localstack/venv/.installed-$(sha256sum "$LOCK" | cut -c1-16)
[ -f "$STAMP" ] && exit 0

PY=""
for cand in "${PGTIER_PYTHON:-}" python3.13 python3.14 /root/.pyenv/versions/3.13*/bin/python3 /usr/bin/python3 python3; do
  [ -n "$cand" ] || continue
  command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
  if "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then PY=$cand; break; fi
done
[ -n "$PY" ] || { echo "localstack/install.sh: no Python >= 3.13 found (set PGTIER_PYTHON)" >&2; exit 1; }
source "$ROOT/scripts/lib/pinned-venv.sh"
pinned_venv localstack "$LOCK" "$PY"
