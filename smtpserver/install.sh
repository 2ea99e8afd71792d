#!/usr/bin/env bash
# Installs the pinned aiosmtpd (a real SMTP server for the notification tests) into
# .state/smtpd/venv. Idempotent: re-runs only when requirements.lock changes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib/pinned-venv.sh"
pinned_venv smtpd "$ROOT/smtpserver/requirements.lock"
