#!/usr/bin/env bash
# Starts moto's S3 server on 127.0.0.1:PORT and waits until it answers; prints the endpoint URL.
# With --parent PID, a watchdog stops it when PID exits (tests pass their own pid).
#   motoserver/start.sh PORT [--parent PID]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${1:?usage: motoserver/start.sh PORT [--parent PID]}
PARENT=""
[ "${2:-}" = --parent ] && PARENT=${3:?--parent needs a pid}
"$ROOT/motoserver/install.sh"
VENV=$ROOT/.state/moto/venv
DATA=$ROOT/.state/moto/run-$PORT
rm -rf "$DATA"; mkdir -p "$DATA"
setsid bash -c "cd \"$DATA\" && exec \"$VENV/bin/moto_server\" -H 127.0.0.1 -p $PORT" >"$DATA/log" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$DATA/pid"
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/moto-api/" 2>/dev/null; do
  if ! kill -0 "$PID" 2>/dev/null; then echo "moto exited while starting; its log:" >&2; tail -30 "$DATA/log" >&2; exit 1; fi
  if [ $SECONDS -ge $deadline ]; then echo "moto did not become ready in 60 s; its log:" >&2; tail -30 "$DATA/log" >&2; kill "$PID"; exit 1; fi
  sleep 0.2
done
if [ -n "$PARENT" ]; then
  setsid -f bash -c "while kill -0 $PARENT 2>/dev/null && kill -0 $PID 2>/dev/null; do sleep 1; done; kill $PID 2>/dev/null; rm -rf '$DATA'" >/dev/null 2>&1 < /dev/null
fi
echo "http://127.0.0.1:$PORT"
