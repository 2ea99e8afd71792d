#!/usr/bin/env bash
# Stops the LocalStack started by localstack/start.sh on PORT (SIGTERM, then SIGKILL after 15 s).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=$ROOT/.state/localstack/run-${1:?usage: localstack/stop.sh PORT}
[ -f "$DATA/pid" ] || exit 0
PID=$(cat "$DATA/pid")
kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID" 2>/dev/null || exit 0
for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null || true
rm -rf "$DATA"
