#!/usr/bin/env bash
# Installs the pinned moto (server mode: a second S3 implementation for the store tests) into
# .state/moto/venv. Idempotent: re-runs only when requirements.lock changes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib/pinned-venv.sh"
pinned_venv moto "$ROOT/motoserver/requirements.lock"
