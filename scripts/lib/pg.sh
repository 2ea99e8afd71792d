# Throwaway PostgreSQL clusters for the quickstart and the benchmark (sourced, not run).
# A cluster lives in a folder of ours; as root its server runs as the `postgres` user.

PG_MAJOR=${PG_MAJOR:-15}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pg_start DIR: initdb (once) and start a cluster in DIR on a free port; prints the port.
pg_start() {
  local dir port
  dir=$(realpath -m "$1")
  [ -x "$PG_BINDIR/initdb" ] || { echo "PostgreSQL $PG_MAJOR server binaries are missing in $PG_BINDIR (run scripts/setup)" >&2; return 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$PG_BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  fi
  port=$(free_port)
  as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c max_wal_size=4GB -c checkpoint_timeout=30min" start >/dev/null
  echo "$port"
}

# pg_stop DIR
pg_stop() {
  set -- "$(realpath -m "$1")"
  [ -f "$1/data/postmaster.pid" ] && as_pg "$PG_BINDIR/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null || true
}

# pg_sql PORT DB SQL...
pg_sql() {
  local port=$1 db=$2; shift 2
  "$PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c "$*"
}
