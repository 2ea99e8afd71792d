#!/usr/bin/env bash
# Starts LocalStack's S3 (host mode, no Docker) on 127.0.0.1:PORT and waits until it is ready;
# prints the endpoint URL. With --parent PID, a watchdog stops it when PID exits (tests pass
# their own pid so nothing outlives them).
#   localstack/start.sh PORT [--parent PID]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${1:?usage: localstack/start.sh PORT [--parent PID]}
PARENT=""
[ "${2:-}" = --parent ] && PARENT=${3:?--parent needs a pid}
"$ROOT/localstack/install.sh"
VENV=$ROOT/.state/localstack/venv
DATA=$ROOT/.state/localstack/run-$PORT
rm -rf "$DATA"; mkdir -p "$DATA"
# GATEWAY_SERVER=hypercorn: otherwise it listens on 0.0.0.0 whatever GATEWAY_LISTEN says.
# OVERRIDE_IN_DOCKER=0 + FILESYSTEM_ROOT: otherwise it writes under /var/lib/localstack.
GATEWAY_LISTEN=127.0.0.1:$PORT GATEWAY_SERVER=hypercorn SERVICES=s3,sts EAGER_SERVICE_LOADING=1 \
  DISABLE_EVENTS=1 DNS_ADDRESS=0 OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$DATA/fs" \
  LOCALSTACK_CLI=0 SKIP_SSL_CERT_DOWNLOAD=1 \
  setsid bash -c "cd \"$DATA\" && exec \"$VENV/bin/python\" -m localstack.runtime.main" >"$DATA/log" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$DATA/pid"
deadline=$((SECONDS + 90))
until curl -fsS "http://127.0.0.1:$PORT/_localstack/health" 2>/dev/null | grep -Eq '"s3": *"(running|available)"'; do
  if ! kill -0 "$PID" 2>/dev/null; then echo "LocalStack exited while starting; its log:" >&2; tail -30 "$DATA/log" >&2; exit 1; fi
  if [ $SECONDS -ge $deadline ]; then echo "LocalStack did not become ready in 90 s; its log:" >&2; tail -30 "$DATA/log" >&2; kill "$PID"; exit 1; fi
  sleep 0.3
done
if [ -n "$PARENT" ]; then
  setsid -f bash -c "while kill -0 $PARENT 2>/dev/null && kill -0 $PID 2>/dev/null; do sleep 1; done; '$ROOT/localstack/stop.sh' $PORT" >/dev/null 2>&1 < /dev/null
fi
echo "http://127.0.0.1:$PORT"
