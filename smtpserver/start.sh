#!/usr/bin/env bash
# Starts aiosmtpd on 127.0.0.1:PORT, delivering every message into the Maildir MAILDIR, and
# waits until it answers. With --parent PID, a watchdog stops it when PID exits.
#   smtpserver/start.sh PORT MAILDIR [--parent PID]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${1:?usage: smtpserver/start.sh PORT MAILDIR [--parent PID]}
MAILDIR=${2:?usage: smtpserver/start.sh PORT MAILDIR [--parent PID]}
PARENT=""
[ "${3:-}" = --parent ] && PARENT=${4:?--parent needs a pid}
"$ROOT/smtpserver/install.sh"
VENV=$ROOT/.state/smtpd/venv
mkdir -p "$MAILDIR/cur" "$MAILDIR/new" "$MAILDIR/tmp"
setsid "$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$PORT" -c aiosmtpd.handlers.Mailbox "$MAILDIR" >"$MAILDIR.log" 2>&1 < /dev/null &
PID=$!
deadline=$((SECONDS + 30))
until "$VENV/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 1).close()" 2>/dev/null; do
  if ! kill -0 "$PID" 2>/dev/null; then echo "aiosmtpd exited while starting; its log:" >&2; tail -30 "$MAILDIR.log" >&2; exit 1; fi
  if [ $SECONDS -ge $deadline ]; then echo "aiosmtpd did not listen within 30 s" >&2; kill "$PID"; exit 1; fi
  sleep 0.2
done
if [ -n "$PARENT" ]; then
  setsid -f bash -c "while kill -0 $PARENT 2>/dev/null && kill -0 $PID 2>/dev/null; do sleep 1; done; kill $PID 2>/dev/null" >/dev/null 2>&1 < /dev/null
fi
echo "$PID"
