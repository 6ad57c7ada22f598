#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster: installs Debian's postgresql if the
# machine lacks it, starts a cluster on a private socket and port, sets DATABASE_URL, and
# removes everything afterwards.
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  echo "PostgreSQL not found; installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(pg_bin)

DATA=$(mktemp -d /tmp/tollgate-pg.XXXXXX)
# PostgreSQL refuses to run as root; run the server as the packaged 'postgres' user.
AS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$DATA"
  AS=(runuser -u postgres --)
fi
cleanup() {
  "${AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT

"${AS[@]}" "$BIN/initdb" -D "$DATA/db" -U tollgate --auth=trust -E UTF8 >/dev/null
# A random free-looking port; another process may take it first, so try a few.
for attempt in 1 2 3 4 5; do
  PORT=${TOLLGATE_PG_PORT:-$((20000 + RANDOM % 20000))}
  if "${AS[@]}" "$BIN/pg_ctl" -D "$DATA/db" -l "$DATA/log" -w \
      -o "-k $DATA -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null; then
    break
  fi
  [ "$attempt" = 5 ] && { cat "$DATA/log" >&2; exit 1; }
done

export DATABASE_URL="postgres://tollgate@127.0.0.1:$PORT/tollgate"
echo "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on port $PORT" >&2
"$@"
