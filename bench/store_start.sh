#!/usr/bin/env bash
# A replica's start and a takeover on a long [store] history:
#
#   bench/store_start.sh [ROWS]        (default 1000000; SALVE_BIN=target/release/salve,
#                                       TAKEOVER_AFTER=10s, AUTOVACUUM_WAIT=180 seconds)
#
# Starts Debian's PostgreSQL in a folder of its own on a free loopback port, lets salve
# make its tables, and fills salve_trail with ROWS records as a month of alerts leaves
# them (generated in SQL: per alert of one of 5,000 hosts, its `received`, `evaluated`
# and `decision` records, and the action's `outcome` or an alert no rule matches; four
# records a second back from now). Then it times `salve serve` to /-/ready with no
# checkpoint, waits for the leader's first checkpoint, and times a start from it; starts
# a second replica, kills the leader with SIGKILL, sends the follower an alert its rule
# acts on, and times the follower to leading and to that action. Last, retention: a
# leader with keep_for half the history removes the older half (timed), autovacuum is
# waited for, and as many rows again are written: the table's size at each step shows
# whether it bloats. Prints two Markdown tables; removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
takeover_after=${TAKEOVER_AFTER:-10s}
SALVE_BIN=${SALVE_BIN:-target/release/salve}
[ -x "$SALVE_BIN" ] || { echo "bench: $SALVE_BIN is missing (cargo build --release)" >&2; exit 1; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/postgres" ] || { echo "bench: PostgreSQL is missing (apt-get install postgresql)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
work=$(mktemp -d)
salve_pid=
cleanup() {
  for p in $salve_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "bench: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pg" "$work/rules"
[ "$(id -u)" = 0 ] && { chmod 711 "$work"; chown -R postgres:postgres "$work/pg"; }
pg_port=$(free_port); port=$(free_port); port_b=$(free_port)
as_pg "$pg_bin/initdb" -D "$work/pg/data" -U salve -A trust --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql() { as_pg "$pg_bin/psql" -tA -X -q -h 127.0.0.1 -p "$pg_port" -U salve -d postgres -c "$1"; }
echo "postgres://salve@127.0.0.1:$pg_port/postgres" > "$work/url"
# config NAME PORT: the config of replica NAME, listening on PORT
config() {
  cat > "$work/$1.toml" <<TOML
listen = "127.0.0.1:$2"
data_dir = "$work/data-$1"
rules_dir = "$work/rules"
[store]
postgres_url_file = "$work/url"
statement_timeout = "600s"
takeover_after = "$takeover_after"
keep_for = "${keep_for:-30d}"
[exec.mark]
argv = ["/bin/sh", "-c", "date +%s%N > $work/acted"]
TOML
}
config a "$port"; config b "$port_b"
cat > "$work/rules/down.rhai" <<'RHAI'
const MATCH = `alertname="HostDown"`;
fn plan(event) { if event.status != "firing" { return []; } [restart(docker_container(event.labels.instance))] }
RHAI
cat > "$work/rules/probe.rhai" <<'RHAI'
const MATCH = `alertname="TakeoverProbe"`;
fn plan(event) { [exec("mark", [])] }
RHAI

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# start NAME PORT LOG: starts replica NAME (its output to LOG), sets `ready_ms` to the
# milliseconds it took to answer /-/ready and `pid` to its process
start() {
  local t0; t0=$(ms)
  "$SALVE_BIN" serve --config "$work/$1.toml" >"$work/$3" 2>&1 & pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$2/-/ready"; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: salve exited:" >&2; cat "$work/$3" >&2; exit 1; }
    sleep 0.01
  done
  ready_ms=$(( $(ms) - t0 ))
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
leads() {
  curl -sf "http://127.0.0.1:$1/api/v1/state" \
    | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("leader") is True else 1)'
}

start a "$port" empty.log; salve_pid=$pid; stop "$salve_pid"; salve_pid=
ts() { echo "to_char($1, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"; }
# fill FIRST LAST: records FIRST..LAST of the generated history, the last one now
fill() {
psql "INSERT INTO salve_trail (at, kind, record)
  SELECT t, CASE kind WHEN 'noise' THEN 'received' ELSE kind END, jsonb_strip_nulls(CASE kind
    WHEN 'received' THEN jsonb_build_object('at', $(ts t), 'kind', kind,
      'event', jsonb_build_object('id', 'e' || a, 'source', 'alertmanager', 'status', 'firing',
        'labels', jsonb_build_object('alertname', 'HostDown', 'instance', host, 'job', 'node'),
        'annotations', jsonb_build_object('summary', 'HostDown on ' || host),
        'starts_at', $(ts 'started'), 'fingerprint', fp))
    WHEN 'evaluated' THEN jsonb_build_object('at', $(ts t), 'kind', kind, 'event_id', 'e' || a,
      'fingerprint', fp, 'rules', jsonb_build_array('down'))
    WHEN 'decision' THEN jsonb_build_object('at', $(ts t), 'kind', kind, 'id', 'd' || a,
      'event_id', 'e' || a, 'fingerprint', fp, 'starts_at', $(ts 'started'), 'status', 'firing',
      'rule', 'down', 'action', 'restart', 'target', 'docker:container/' || host,
      'decision', CASE WHEN acted THEN 'execute' ELSE 'suppress' END,
      'reason', CASE WHEN acted THEN NULL ELSE 'dedup' END,
      'detail', CASE WHEN acted THEN NULL ELSE 'already decided for this alert' END)
    WHEN 'outcome' THEN jsonb_build_object('at', $(ts t), 'kind', kind, 'decision_id', 'd' || a,
      'event_id', 'e' || a, 'fingerprint', fp, 'rule', 'down', 'action', 'restart',
      'target', 'docker:container/' || host, 'outcome', 'ok', 'duration_ms', 850)
    ELSE jsonb_build_object('at', $(ts t), 'kind', 'received', 'unmatched', true,
      'event', jsonb_build_object('id', 'n' || a, 'source', 'alertmanager', 'status', 'firing',
        'labels', jsonb_build_object('alertname', 'DiskPressure', 'instance', host, 'job', 'node'),
        'starts_at', $(ts 'started'), 'fingerprint', lpad(to_hex(a % 5000 + 65536), 16, '0'))) END)
  FROM generate_series($1, $2) g,
    LATERAL (SELECT (g - 1) / 4 AS a, (g - 1) % 4 AS phase,
      now() - make_interval(secs => ($2 - g) / 4.0) AS t) alert,
    LATERAL (SELECT 'host-' || (a % 5000) AS host, lpad(to_hex(a % 5000), 16, '0') AS fp,
      t - interval '1 minute' AS started, a % 10 = 0 AS acted,
      CASE phase WHEN 0 THEN 'received' WHEN 1 THEN 'evaluated' WHEN 2 THEN 'decision'
        ELSE CASE WHEN a % 10 = 0 THEN 'outcome' ELSE 'noise' END END AS kind) shape"
}
fill 1 "$rows"
psql "VACUUM ANALYZE salve_trail"
filled=$(psql 'SELECT count(*) FROM salve_trail')
start a "$port" without.log; salve_pid=$pid; without=$ready_ms
# The leader's first checkpoint comes within a minute of its start.
until [ "$(psql 'SELECT count(*) FROM salve_checkpoint')" != "0" ]; do sleep 0.5; done
stop "$salve_pid"; salve_pid=
start a "$port" with.log; salve_pid=$pid; with=$ready_ms
until leads "$port"; do sleep 0.05; done
start b "$port_b" follower.log; follower_pid=$pid; follower=$ready_ms
salve_pid="$salve_pid $follower_pid"

# The takeover: the leader killed, an alert for the follower to act on at once.
leader_pid=${salve_pid%% *}
kill -9 "$leader_pid"; killed=$(ms); wait "$leader_pid" 2>/dev/null || true
curl -sf -o /dev/null -H 'content-type: application/json' \
  -d '{"labels": {"alertname": "TakeoverProbe"}}' "http://127.0.0.1:$port_b/api/v1/events"
until [ -s "$work/acted" ]; do sleep 0.02; done
# When the follower took the lead, by its own log line's time.
took=$(sed 's/\x1b\[[0-9;]*m//g' "$work/follower.log" | grep -m1 'took the lead' | cut -d' ' -f1)
led=$(( $(date -d "$took" +%s%3N) - killed ))
acted=$(( $(head -c 13 "$work/acted") - killed ))
stop "$follower_pid"; salve_pid=

# Retention: with keep_for half the history, a leader removes the older half; the
# table's size before, once autovacuum has been through, and after as many new rows
# again are written (they reuse the space the removed rows left, so it does not grow).
size() { psql "SELECT pg_total_relation_size('salve_trail')"; }
size_before=$(size)
keep_for="$(( rows / 8 ))s"; config a "$port"
start a "$port" retention.log; salve_pid=$pid
removed() { psql 'SELECT removed_through FROM salve_retention'; }
last=-1 deadline=$(( $(date +%s) + 600 ))
until [ "$(removed)" != 0 ] && [ "$(removed)" = "$last" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: retention removed nothing in 10 min" >&2; exit 1; }
  last=$(removed); sleep 3
done
stop "$salve_pid"; salve_pid=
removed_rows=$(sed 's/\x1b\[[0-9;]*m//g' "$work/retention.log" | grep 'removed records older than' \
  | grep -o 'removed=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
deleting_ms=$(sed 's/\x1b\[[0-9;]*m//g' "$work/retention.log" | grep 'removed records older than' \
  | grep -o 'took_ms=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
# autovacuum's default: a table is vacuumed once a fifth of it is dead, checked each minute
vacuumed=no
for _ in $(seq 1 $(( ${AUTOVACUUM_WAIT:-180} / 2 ))); do
  [ "$(psql "SELECT last_autovacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'salve_trail'")" = t ] && { vacuumed=yes; break; }
  sleep 2
done
size_vacuumed=$(size)
fill $(( rows * 4 + 1 )) $(( rows * 4 + removed_rows ))
size_refilled=$(size)
kept=$(psql 'SELECT count(*) FROM salve_trail')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }

count() { grep -o "$1.*" "$work/$2" | grep -o 'took_ms=[0-9]*' | tail -1 | cut -d= -f2; }
unreadable=$(cat "$work"/*.log | grep -c 'skipping unreadable audit record' || true)
[ "$unreadable" = 0 ] || { echo "bench: $unreadable generated records do not read" >&2; exit 1; }
# A leader reading a long history must keep renewing its lease meanwhile.
lost=$(cat "$work"/*.log | grep -c 'does not hold the lease' || true)
[ "$lost" = 0 ] || { echo "bench: a leader lost its lease $lost times while it worked" >&2; exit 1; }
echo "| rows in salve_trail | start to /-/ready, no checkpoint | start to /-/ready, from the checkpoint | a second replica to /-/ready | reading the store (log) | building the checkpoint (log) | takeover_after | leader killed to follower leading | to its first action |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| $filled | $without ms | $with ms | $follower ms | $(count "the store's state read" with.log) ms | $(count 'checkpoint written to the store' without.log) ms | $takeover_after | $led ms | $acted ms |"
echo
echo "| rows | keep_for | rows removed | deleting (log, sum) | rows/s | autovacuum ran (${AUTOVACUUM_WAIT:-180} s) | size before | size after autovacuum | size after as many rows again | rows now |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| $filled | $keep_for | $removed_rows | $deleting_ms ms | $(awk -v n="$removed_rows" -v t="$deleting_ms" 'BEGIN {printf "%.0f", (t>0? 1000*n/t : 0)}') | $vacuumed | $(mib "$size_before") | $(mib "$size_vacuumed") | $(mib "$size_refilled") | $kept |"
