# pinned_venv NAME LOCKFILE [PYTHON]: installs LOCKFILE's pinned packages into .state/NAME/venv
# with PYTHON (default: $PGTIER_PYTHON or python3). Idempotent: re-installs only when the lock
# file changes. Used by the install.sh of LocalStack, moto and aiosmtpd.
pinned_venv() {
  local name=$1 lock=$2 py=${3:-${PGTIER_PYTHON:-python3}}
  local root venv stamp
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  venv=$root/.state/$name/venv
  stamp=$venv/.installed-$(sha256sum "$lock" | cut -c1-16)
  [ -f "$stamp" ] && return 0
  echo "$name: installing the pinned packages of $(basename "$(dirname "$lock")")/$(basename "$lock") into $venv (with $py)" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$lock"
  touch "$stamp"
}
