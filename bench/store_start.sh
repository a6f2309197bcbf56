#!/usr/bin/env bash
# A replica's start on a long [store] history, before and after the store's checkpoint:
#
#   bench/store_start.sh [ROWS]        (default 1000000; SALVE_BIN=target/release/salve)
#
# Starts Debian's PostgreSQL in a folder of its own on a free loopback port, lets salve
# make its tables, fills salve_trail with ROWS `received` records (generated in SQL:
# alerts of 5,000 hosts, one a second back from now), then times `salve serve` to
# /-/ready with no checkpoint, waits for the leader's first checkpoint, and times a
# start from it. Prints a Markdown table; removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
SALVE_BIN=${SALVE_BIN:-target/release/salve}
[ -x "$SALVE_BIN" ] || { echo "bench: $SALVE_BIN is missing (cargo build --release)" >&2; exit 1; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/postgres" ] || { echo "bench: PostgreSQL is missing (apt-get install postgresql)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
work=$(mktemp -d)
salve_pid=
cleanup() {
  [ -n "$salve_pid" ] && { kill "$salve_pid" 2>/dev/null || true; wait "$salve_pid" 2>/dev/null || true; }
  as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "bench: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pg" "$work/rules"
[ "$(id -u)" = 0 ] && { chmod 711 "$work"; chown -R postgres:postgres "$work/pg"; }
pg_port=$(free_port); port=$(free_port)
as_pg "$pg_bin/initdb" -D "$work/pg/data" -U salve -A trust --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql() { as_pg "$pg_bin/psql" -tA -X -q -h 127.0.0.1 -p "$pg_port" -U salve -d postgres -c "$1"; }
echo "postgres://salve@127.0.0.1:$pg_port/postgres" > "$work/url"
cat > "$work/salve.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
rules_dir = "$work/rules"
[store]
postgres_url_file = "$work/url"
statement_timeout = "600s"
TOML
cat > "$work/rules/down.rhai" <<'RHAI'
const MATCH = `alertname="HostDown"`;
fn plan(event) { if event.status != "firing" { return []; } [restart(docker_container(event.labels.instance))] }
RHAI

# start LOG: starts salve (its output to LOG), sets `ready_ms` to the milliseconds it
# took to answer /-/ready
start() {
  local t0; t0=$(date +%s%N)
  "$SALVE_BIN" serve --config "$work/salve.toml" >"$work/$1" 2>&1 & salve_pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready"; do
    kill -0 "$salve_pid" 2>/dev/null || { echo "bench: salve exited:" >&2; cat "$work/$1" >&2; exit 1; }
    sleep 0.01
  done
  ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}
stop() { kill "$salve_pid"; wait "$salve_pid" 2>/dev/null || true; salve_pid=; }

start empty.log; stop
psql "INSERT INTO salve_trail (at, kind, record)
  SELECT t, 'received', jsonb_build_object('at', to_char(t, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'kind', 'received',
    'event', jsonb_build_object('id', 'e' || g, 'source', 'alertmanager', 'status', 'firing',
      'labels', jsonb_build_object('alertname', 'HostDown', 'instance', 'host-' || (g % 5000)),
      'starts_at', to_char(t, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'fingerprint', lpad(to_hex(g % 5000), 16, '0')),
    'unmatched', true)
  FROM generate_series(1, $rows) g, LATERAL (SELECT now() - make_interval(secs => $rows - g) AS t) at_time"
start without.log; without=$ready_ms
# The leader's first checkpoint comes within a minute of its start.
until [ "$(psql 'SELECT count(*) FROM salve_checkpoint')" != "0" ]; do sleep 0.5; done
stop
start with.log; with=$ready_ms
stop
built=$(grep -o 'checkpoint written to the store.*' "$work/without.log" | grep -o 'took_ms=[0-9]*' | tail -1)
read=$(grep -o "the store's state read.*" "$work/with.log" | grep -o 'took_ms=[0-9]*' | tail -1)
echo "| rows in salve_trail | start to /-/ready, no checkpoint | start to /-/ready, from the checkpoint | reading the store (log) | building the checkpoint (log) |"
echo "| --- | --- | --- | --- | --- |"
echo "| $(psql 'SELECT count(*) FROM salve_trail') | $without ms | $with ms | ${read#took_ms=} ms | ${built#took_ms=} ms |"
