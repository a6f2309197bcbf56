#!/usr/bin/env bash
# salve's benchmark: alerts/s and latency of POST /api/v1/alertmanager with the durable
# audit on, against a bare axum endpoint on the same machine; peak RSS and start-up time
# by rule count; the fsync cost of acknowledgement; an alert storm (every alert distinct,
# bench/storm.lua) with its flatness over time, memory, audit size and the start-up on
# the trail it leaves. Loopback only; every run is bounded.
#
#   bench/run.sh            full matrix, results as Markdown on stdout (for BENCHMARKS.md)
#   bench/run.sh --smoke    one short cell of each part, to prove the harness still works
#
# Needs: wrk (Debian package). SALVE_BIN / BARE_BIN override the binaries (default: a
# release build made here). BENCH_SECONDS: seconds per fixture cell (10); BENCH_RULES
# ("10 100 1000 10000") and BENCH_CONNECTIONS ("1 16 64"): the fixture cells. The storm:
# STORM_RULES ("10 100 10000"), STORM_CONNECTIONS ("16 64"), STORM_SLICES (6),
# STORM_SECONDS (10 per slice), STORM_ALERTS (1 per request), STORM_ALLOW_NON2XX=1 to
# report non-2xx answers instead of failing on them. The overload cell: OVERLOAD_SECONDS
# (20), OVERLOAD_CONNECTIONS (64), OVERLOAD_ALERTS (20 per request), OVERLOAD_WORK (loop
# turns per alert of its rule, 2000); OVERLOAD_BIN overrides its client. BENCH_PARTS picks
# the parts to run ("fixture storm groups overload probes replay store docker", the default,
# or any). The groups cell: GROUPS_CELLS ("SIZE:matched|unmatched:SENDS ...", default
# "50:matched:1 50:unmatched:1 200:matched:1 200:unmatched:1 50:matched:3"),
# GROUPS_CONNECTIONS (16), GROUPS_SECONDS (10).
# The replay cell: REPLAY_LOAD_SECONDS (10) of storm recorded, then replayed.
# The store cell: STORE_SECONDS (10) of storm at 16 connections across two replicas on
# one PostgreSQL (Debian's postgresql; started here in its own data dir), beside one
# salve on its file trail at 16 connections, in the same run.
# The probes cell: PROBES_COUNT (1000 probes at 1 s), PROBES_SECONDS (20).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

if [ -z "${SALVE_BIN:-}" ] || [ -z "${BARE_BIN:-}" ]; then
  cargo build --release --quiet --bin salve --example bare --example overload
  SALVE_BIN=${SALVE_BIN:-target/release/salve}
  BARE_BIN=${BARE_BIN:-target/release/examples/bare}
fi
OVERLOAD_BIN=${OVERLOAD_BIN:-target/release/examples/overload}

if $smoke; then
  rule_counts="10"; connections="1 4"; duration=1
else
  rule_counts=${BENCH_RULES:-"10 100 1000 10000"}; connections=${BENCH_CONNECTIONS:-"1 16 64"}; duration=${BENCH_SECONDS:-10}
fi
body=tests/fixtures/alertmanager/firing-group.json
work=$(mktemp -d)
pids=()
# A salve writes its last checkpoint as it stops: wait for it before removing its data.
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# part NAME: whether this run includes the part NAME (BENCH_PARTS, default all four)
part() { [[ " ${BENCH_PARTS:-fixture storm groups overload probes replay docker} " == *" $1 "* ]]; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # url, seconds
  local deadline=$(( $(date +%s) + $2 ))
  until curl -sf -o /dev/null "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: $1 never became ready" >&2; return 1; }
    sleep 0.01
  done
}

# rules N DIR: N generated rules, of which 3 match the posted PodCrashLooping alerts.
make_rules() {
  local n=$1 dir=$2
  mkdir -p "$dir"
  python3 - "$n" "$dir" <<'PY'
import sys, os
n, d = int(sys.argv[1]), sys.argv[2]
for i in range(n - 3):
    open(os.path.join(d, f"gen{i:05}.rhai"), "w").write(
        f'const MATCH = `alertname="Generated{i}", severity="critical"`;\nfn plan(event) {{ [notify("ops", "x")] }}\n')
for i in range(3):
    open(os.path.join(d, f"match{i}.rhai"), "w").write(
        'const MATCH = `alertname="PodCrashLooping", namespace="prod"`;\n'
        'fn plan(event) { if event.status != "firing" { return []; } [restart(k8s_deployment(event.labels.namespace, event.labels.deployment))] }\n')
PY
}

# load URL CONNECTIONS -> "rps p50 p99"
load() {
  local out
  out=$(BODY_FILE=$body wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${duration}s" --latency -s bench/post.lua "$1")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -z "$non2xx" ] || { echo "bench: $non2xx non-2xx answers from $1" >&2; exit 1; }
  echo "$rps $p50 $p99"
}

echo "## Run"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "- machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); load generator and server share it"
echo "- each cell: wrk, ${duration}s, posting tests/fixtures/alertmanager/firing-group.json (3 alerts per request)"
echo

bare_port=$(free_port)
"$BARE_BIN" "127.0.0.1:$bare_port" & pids+=($!)
for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/127.0.0.1/$bare_port") 2>/dev/null && break; sleep 0.01; done
if part fixture; then
declare -A bare
echo "### Bare axum endpoint (the ceiling)"
echo
echo "| connections | requests/s | p50 | p99 |"
echo "| --- | --- | --- | --- |"
for c in $connections; do
  out=$(load "http://127.0.0.1:$bare_port/api/v1/alertmanager" "$c") # fails the run on non-2xx
  read -r rps p50 p99 <<<"$out"
  bare[$c]=$rps
  echo "| $c | $rps | $p50 | $p99 |"
done
echo

echo "### salve, durable audit on"
echo
echo "| rules | connections | requests/s | alerts/s | % of bare | p50 | p99 | fsyncs | appends per fsync | mean fsync |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
declare -A rss startup
for n in $rule_counts; do
  for c in $connections; do
    dir="$work/r$n-c$c"
    make_rules "$n" "$dir/rules"
    printf '[docker]\nevents = false\n\n[notify.ops]\ntype = "log"\n' > "$dir/salve.toml"
    port=$(free_port)
    t0=$(date +%s%N)
    "$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
      --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
    wait_ready "http://127.0.0.1:$port/-/ready" 120
    startup[$n]=$(( ($(date +%s%N) - t0) / 1000000 ))
    out=$(load "http://127.0.0.1:$port/api/v1/alertmanager" "$c")
    read -r rps p50 p99 <<<"$out"
    metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
    fsyncs=$(awk '/^salve_audit_fsync_seconds_count/ {print $2}' <<<"$metrics")
    fsum=$(awk '/^salve_audit_fsync_seconds_sum/ {print $2}' <<<"$metrics")
    per=$(awk '/^salve_audit_requests_per_fsync_sum/ {s=$2} /^salve_audit_requests_per_fsync_count/ {c=$2} END {printf "%.1f", (c>0? s/c : 0)}' <<<"$metrics")
    mean=$(awk -v s="$fsum" -v c="$fsyncs" 'BEGIN {printf "%.2f ms", (c>0? 1000*s/c : 0)}')
    rss[$n]=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    alerts=$(awk -v r="$rps" 'BEGIN {printf "%.0f", 3*r}')
    pct=$(awk -v r="$rps" -v b="${bare[$c]}" 'BEGIN {printf "%.0f%%", (b>0? 100*r/b : 0)}')
    echo "| $n | $c | $rps | $alerts | $pct | $p50 | $p99 | $fsyncs | $per | $mean |"
  done
done
echo
echo "### Memory and start-up by rule count"
echo
echo "| rules | peak RSS (MiB) | start to /-/ready |"
echo "| --- | --- | --- |"
for n in $rule_counts; do
  echo "| $n | ${rss[$n]} | ${startup[$n]} ms |"
done
echo

fi
# The storm: every alert distinct (bench/storm.lua), so nothing is a dedup shortcut.
# Per cell one fresh salve (durable audit on), six consecutive wrk runs ("slices"), with
# STORM_OFFSET advanced each time so no alert repeats; then a stop and a start on the
# full trail. The bare endpoint gets the same script as the ceiling.
if $smoke; then
  storm_rules="10"; storm_conns="16"; storm_slices=2; storm_seconds=1
else
  storm_rules=${STORM_RULES:-"10 100 10000"}; storm_conns=${STORM_CONNECTIONS:-"16 64"}
  storm_slices=${STORM_SLICES:-6}; storm_seconds=${STORM_SECONDS:-10}
fi
storm_alerts=${STORM_ALERTS:-1}
true_bin=$(command -v true)

# storm_config FILE [TOML]: the config the storm rules need (their three commands, the
# ops channel, no Docker), with TOML (printf escapes) added.
storm_config() {
  {
    printf '[docker]\nevents = false\n\n[notify.ops]\ntype = "log"\n'
    [ -n "${2:-}" ] && printf "\n$2"
    for i in 0 1 2; do printf '\n[exec.storm-%s]\nargv = ["%s"]\ntimeout = "5s"\n' "$i" "$true_bin"; done
  } > "$1"
}

# make_storm_rules N DIR: N rules; N-3 never match (as make_rules), 3 match job="node"
# (half the storm's requests) and each asks to run its own named command.
make_storm_rules() {
  local n=$1 dir=$2
  mkdir -p "$dir"
  python3 - "$n" "$dir" <<'PY'
import sys, os
n, d = int(sys.argv[1]), sys.argv[2]
for i in range(n - 3):
    open(os.path.join(d, f"gen{i:05}.rhai"), "w").write(
        f'const MATCH = `alertname="Generated{i}", severity="critical"`;\nfn plan(event) {{ [notify("ops", "x")] }}\n')
for i in range(3):
    open(os.path.join(d, f"storm{i}.rhai"), "w").write(
        'const MATCH = `job="node", instance=~".+"`;\n'
        f'fn plan(event) {{ if event.status != "firing" {{ return []; }} [exec("storm-{i}", [event.labels.instance])] }}\n')
PY
}

# kib PID FIELD: a /proc/PID/status field (VmRSS, VmHWM) in KiB
kib() { awk -v f="$2:" '$1==f {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

# alive PID: the process runs (exists and is not a zombie)
alive() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]; }

forget_pid() { local keep=() p; for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }

# stop_salve PID: SIGTERM, wait (at most 120 s) for the exit; sets stop_ms and stop_status.
stop_salve() {
  local pid=$1 t0 deadline
  t0=$(date +%s%N); deadline=$(( $(date +%s) + 120 ))
  kill -TERM "$pid"
  while alive "$pid"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "bench: salve (pid $pid) did not exit within 120 s of SIGTERM" >&2; exit 1
    fi
    sleep 0.01
  done
  stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  stop_status=0; wait "$pid" || stop_status=$?
  forget_pid "$pid"
}

# storm_load URL CONNECTIONS OFFSET SECONDS: one wrk run of bench/storm.lua. Sets
# s_requests s_rps s_p50 s_p99 s_non2xx s_errors. Any non-2xx answer fails the run
# (STORM_ALLOW_NON2XX=1 reports it instead, for a salve that sheds load with 503).
storm_load() {
  local out
  out=$(STORM_OFFSET=$3 STORM_ALERTS=$storm_alerts wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "$4s" \
    --timeout 10s --latency -s bench/storm.lua "$1")
  s_requests=$(awk '/ requests in / {print $1}' <<<"$out")
  s_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  s_p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  s_p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  s_non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); s_non2xx=${s_non2xx:-0}
  s_errors=$(awk '/Socket errors/ {gsub(/,/, ""); print $4+$6+$8+$10}' <<<"$out"); s_errors=${s_errors:-0}
  if [ "$s_non2xx" != 0 ] && [ "${STORM_ALLOW_NON2XX:-0}" != 1 ]; then
    echo "bench: $s_non2xx non-2xx answers of $s_requests requests from $1 (storm, offset $3)" >&2; exit 1
  fi
}

# sets REGEX: the metric lines matching REGEX (one label each, as salve_state_entries{set="dedup"} 12)
# as "dedup 12, firing 40", sorted by label; empty if there are none.
sets() { { grep -E "$1" || true; } | sort | awk -F'[{}"= ]+' '{printf "%s%s %s", sep, $3, $NF; sep=", "}'; }

# field NAME: a number from salve's log line in $replayed ("name=12", or "\"name\":12" as JSON)
field() { grep -oE "\"?$1\"?[=:] *[0-9]+" <<<"$replayed" | grep -oE '[0-9]+$' || echo '?'; }

# p99 in ms from wrk's "3.08ms" / "820.00us" / "1.20s"
ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) ; else if (v ~ /m$/) n*=60000; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }

if part storm; then
echo "### Storm: every alert distinct"
echo
echo "- posted: \`bench/storm.lua\`, $storm_alerts alert(s) per request, to \`POST /api/v1/alertmanager\`; Alertmanager's webhook shape (version 4), and every alert"
echo "  distinct: \`instance=\"host-<N>:9100\"\` with N never repeated in a cell, alertname one of 20 (\`HighLatency3\`...), job, severity, namespace, service,"
echo "  region, summary and description naming the instance, a unique fingerprint, one fixed \`startsAt\`; job=\"node\" on every other request"
echo "- rules: N-3 that match nothing, 3 that match \`job=\"node\"\` and each return \`exec(\"storm-i\", [instance])\` (the command is \`true\`), so half the alerts"
echo "  make 3 intents that are decided; the global exec budget (10 per 1m) executes a few, the rest are suppressed (rate_limit)"
echo "- each salve cell: a fresh process and data dir, durable audit on, $storm_slices consecutive wrk runs of ${storm_seconds}s (2 threads, 10 s timeout) = one"
echo "  $(( storm_slices * storm_seconds )) s storm, then SIGTERM and a start on the full trail; the bare endpoint gets one ${storm_seconds}s run of the same script"
echo

declare -A sbare sdurable
# The durable ceiling: the bare endpoint that also appends each body to a file and answers
# once an fdatasync covers it (group commit), as any receiver that acknowledges only what
# is on disk must; with C connections in flight at most C bodies share one fdatasync.
durable_port=$(free_port)
"$BARE_BIN" "127.0.0.1:$durable_port" --durable "$work/durable.log" & durable_pid=$!; pids+=($durable_pid)
for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/127.0.0.1/$durable_port") 2>/dev/null && break; sleep 0.01; done
echo "### Storm: bare axum endpoint (parses the JSON), and the same acknowledging after an fdatasync"
echo
echo "| connections | endpoint | requests/s | alerts/s | p50 | p99 |"
echo "| --- | --- | --- | --- | --- | --- |"
for c in $storm_conns; do
  storm_load "http://127.0.0.1:$bare_port/api/v1/alertmanager" "$c" 0 "$storm_seconds"
  sbare[$c]=$(awk -v r="$s_rps" -v a="$storm_alerts" 'BEGIN {printf "%.0f", r*a}')
  echo "| $c | bare | $s_rps | ${sbare[$c]} | $s_p50 | $s_p99 |"
  storm_load "http://127.0.0.1:$durable_port/api/v1/alertmanager" "$c" 0 "$storm_seconds"
  sdurable[$c]=$(awk -v r="$s_rps" -v a="$storm_alerts" 'BEGIN {printf "%.0f", r*a}')
  echo "| $c | bare, durable | $s_rps | ${sdurable[$c]} | $s_p50 | $s_p99 |"
done
kill "$durable_pid" 2>/dev/null || true; rm -f "$work/durable.log"
echo

slice_rows=() summary_rows=() memory_rows=() restart_rows=()
for n in $storm_rules; do
  for c in $storm_conns; do
    dir="$work/storm-r$n-c$c"
    make_storm_rules "$n" "$dir/rules"
    {
      printf '[docker]\nevents = false\n\n[notify.ops]\ntype = "log"\n\n'
      printf '# rotate as by default, but keep every file: the whole storm stays on disk\n'
      printf '[audit]\nmax_file_bytes = 67108864\nkeep_files = 1000\n'
      for i in 0 1 2; do printf '\n[exec.storm-%s]\nargv = ["%s"]\ntimeout = "5s"\n' "$i" "$true_bin"; done
    } > "$dir/salve.toml"
    port=$(free_port)
    "$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
      --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
    wait_ready "http://127.0.0.1:$port/-/ready" 120
    url="http://127.0.0.1:$port/api/v1/alertmanager"
    sent=0 first_rps="" first_p99="" rps_sum=0 non2xx=0 errors=0
    for s in $(seq 1 "$storm_slices"); do
      storm_load "$url" "$c" "$(( s * 10000000000 ))" "$storm_seconds"
      alive "$pid" || { echo "bench: salve died in the storm ($n rules, $c connections, slice $s):" >&2; tail -20 "$dir/log" >&2; exit 1; }
      rss_now=$(kib "$pid" VmRSS)
      alerts_rps=$(awk -v r="$s_rps" -v a="$storm_alerts" 'BEGIN {printf "%.0f", r*a}')
      sent=$(( sent + s_requests * storm_alerts ))
      rps_sum=$(awk -v a="$rps_sum" -v b="$alerts_rps" 'BEGIN {print a+b}')
      non2xx=$(( non2xx + s_non2xx )); errors=$(( errors + s_errors ))
      if [ "$s" = 1 ]; then
        first_rps=$alerts_rps; first_p99=$s_p99; rss_warm=$rss_now; sent_warm=$sent
      fi
      slice_rows+=("| $c | $n | $s | $s_rps | $alerts_rps | $s_p50 | $s_p99 | $(mib "$rss_now") | $s_non2xx | $s_errors |")
    done
    metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
    decided=$(awk '/^salve_decisions_total\{/ {s+=$2} END {printf "%.0f", s}' <<<"$metrics")
    executed=$(awk '/^salve_decisions_total\{/ && /decision="execute"/ {s+=$2} END {printf "%.0f", s}' <<<"$metrics")
    # the policy's remembered sets and their evictions, where this salve exports them
    remembered=$(sets '^salve_state_entries\{' <<<"$metrics")
    evicted=$(sets '^salve_state_evicted(_total)?\{' <<<"$metrics")
    rss_end=$(kib "$pid" VmRSS); hwm=$(kib "$pid" VmHWM)
    mean=$(awk -v s="$rps_sum" -v k="$storm_slices" 'BEGIN {printf "%.0f", s/k}')
    pct=$(awk -v r="$mean" -v b="${sbare[$c]}" 'BEGIN {printf "%.0f%%", (b>0? 100*r/b : 0)}')
    pct_durable=$(awk -v r="$mean" -v b="${sdurable[$c]}" 'BEGIN {printf "%.0f%%", (b>0? 100*r/b : 0)}')
    flat_rps=$(awk -v a="$alerts_rps" -v b="$first_rps" 'BEGIN {printf "%.2f", (b>0? a/b : 0)}')
    flat_p99=$(awk -v a="$(ms "$s_p99")" -v b="$(ms "$first_p99")" 'BEGIN {printf "%.2f", (b>0? a/b : 0)}')
    summary_rows+=("| $c | $n | $mean | $pct | $pct_durable | $first_rps → $alerts_rps | $flat_rps | $first_p99 → $s_p99 | $flat_p99 | $decided | $executed | $non2xx | $errors |")

    per_alert=$(awk -v e="$rss_end" -v w="$rss_warm" -v a="$(( sent - sent_warm ))" 'BEGIN {printf "%.0f", (a>0? 1024*(e-w)/a : 0)}')
    audit_bytes=$(find "$dir/data" -maxdepth 1 -name 'audit.jsonl*' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
    audit_files=$(find "$dir/data" -maxdepth 1 -name 'audit.jsonl*' | wc -l)
    # anything else salve keeps there (a checkpoint of the state, say), in all
    other_bytes=$(find "$dir/data" -type f ! -name 'audit.jsonl*' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
    [ "$audit_files" -lt 1000 ] || echo "bench: the audit kept 1000 files: older ones may have been deleted" >&2
    audit_per=$(awk -v b="$audit_bytes" -v a="$sent" 'BEGIN {printf "%.0f", (a>0? b/a : 0)}')
    memory_rows+=("| $c | $n | $sent | $(mib "$hwm") | $(mib "$rss_warm") | $(mib "$rss_end") | $per_alert | ${remembered:-–} | ${evicted:-–} | $(mib $(( audit_bytes / 1024 ))) | $audit_files | $audit_per | $(mib $(( other_bytes / 1024 ))) |")

    rss_before=$(kib "$pid" VmRSS)
    stop_salve "$pid"; storm_stop_ms=$stop_ms
    [ "$stop_status" = 0 ] || echo "bench: salve exited with status $stop_status after SIGTERM (storm, $n rules, $c connections)" >&2
    t0=$(date +%s%N)
    "$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
      --listen "127.0.0.1:$port" 2>>"$dir/log" & pid=$!; pids+=($pid)
    wait_ready "http://127.0.0.1:$port/-/ready" 600
    ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    sleep 2
    rss_after=$(kib "$pid" VmRSS)
    stop_salve "$pid"
    # salve's own account of the replay (its last start): how long, and what the stop left
    replayed=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/log" | grep 'audit trail replayed' | tail -1)
    restart_rows+=("| $c | $n | $(mib $(( audit_bytes / 1024 ))) | $storm_stop_ms ms | $ready_ms ms | $(field took_ms) ms | $(field undecided) | $(field interrupted) | $(mib "$rss_before") | $(mib "$rss_after") |")
    problems=$(grep -c -E '\b(WARN|ERROR)\b|"level":"(WARN|ERROR)"' "$dir/log" || true)
    if [ "$problems" != 0 ]; then
      echo "bench: salve logged $problems warnings or errors (storm, $n rules, $c connections); the first:" >&2
      grep -m 5 -E '\b(WARN|ERROR)\b|"level":"(WARN|ERROR)"' "$dir/log" >&2
    fi
    rm -rf "$dir"
  done
done

echo "### Storm: salve, durable audit on, $(( storm_slices * storm_seconds )) s"
echo
echo "| connections | rules | alerts/s (mean of slices) | % of bare | % of bare, durable | alerts/s first → last slice | last / first | p99 first → last slice | last / first | intents decided | executed | non-2xx | socket errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${summary_rows[@]}"
echo
echo "### Storm: each ${storm_seconds} s slice"
echo
echo "| connections | rules | slice | requests/s | alerts/s | p50 | p99 | RSS after (MiB) | non-2xx | socket errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${slice_rows[@]}"
echo
echo "### Storm: memory and audit"
echo
echo "RSS per alert remembered: (RSS at the end − RSS after the first slice) / alerts sent after the first slice. Audit: \`audit.jsonl\` and its"
echo "rotated files (64 MiB each, up to 1,000 kept, so none was deleted) over all alerts sent."
echo
echo "| connections | rules | alerts sent | peak RSS (MiB) | RSS after slice 1 (MiB) | RSS at the end (MiB) | RSS per alert remembered (bytes) | entries remembered at the end | evicted | audit (MiB) | audit files | audit bytes per alert | other files in the data dir (MiB) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${memory_rows[@]}"
echo
echo "### Storm: start-up after a stop with the full trail"
echo
echo "| connections | rules | trail (MiB) | SIGTERM to exit | exec to /-/ready | replay (salve's log) | events left undecided by the stop | actions interrupted | RSS before the stop (MiB) | RSS 2 s after ready (MiB) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${restart_rows[@]}"
echo

fi
# Groups: Alertmanager's real shape. Notifications of GROUP alerts each (every alert
# distinct), matched by a rule that acts (dry-run) or by none, and a group resent as
# Alertmanager resends it with some alerts resolved; each beside the durable ceiling
# posting the same bodies, in the same run.
if part groups; then
if $smoke; then
  groups_seconds=1; groups_cells=${GROUPS_CELLS:-"50:matched:1 50:unmatched:3"}
else
  groups_seconds=${GROUPS_SECONDS:-10}
  groups_cells=${GROUPS_CELLS:-"50:matched:1 50:unmatched:1 200:matched:1 200:unmatched:1 50:matched:3"}
fi
groups_conns=${GROUPS_CONNECTIONS:-16}
echo "### Groups: Alertmanager's notifications of many alerts"
echo
echo "- posted: \`bench/storm.lua\` with STORM_ALERTS distinct alerts a notification (one group), $groups_conns connections, ${groups_seconds}s a cell;"
echo "  sends 3: each group is posted three times, as Alertmanager resends it, a third of its alerts resolved on the second and two thirds on the third"
echo "- rules: 100; matched: one of them matches every alert (\`instance=~\".+\"\`) and restarts its container, in dry-run; unmatched: none matches"
echo "- the ceiling: \`bench/bare.rs --durable\` on the same bodies, just before salve; salve's alerts/s: those of the notifications it answered 200"
echo "  (past what it can decide it answers 503 with Retry-After, and Alertmanager sends those again); RSS: salve's at the end of the cell, from a fresh start"
echo
echo "| alerts a notification | rules | sends | ceiling alerts/s | salve alerts/s acknowledged | % of the ceiling | ceiling p99 | salve p99 | salve 503s | salve RSS (MiB) | decisions |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
groups_offset=0
for cell in $groups_cells; do
  IFS=: read -r size matching sends <<<"$cell"
  storm_alerts=$size
  groups_offset=$(( groups_offset + 10000000000 ))
  dir="$work/groups-$size-$matching-$sends"
  mkdir -p "$dir/rules"
  python3 - "$dir/rules" "$matching" <<'PY'
import sys, os
d, matching = sys.argv[1], sys.argv[2]
for i in range(99):
    open(os.path.join(d, f"gen{i:05}.rhai"), "w").write(
        f'const MATCH = `alertname="Generated{i}", severity="critical"`;\nfn plan(event) {{ [notify("ops", "x")] }}\n')
match = 'instance=~".+"' if matching == "matched" else 'alertname="NeverFires"'
open(os.path.join(d, "restart.rhai"), "w").write(
    f'const MATCH = `{match}`;\n'
    'fn plan(event) { if event.status != "firing" { return []; } [restart(docker_container(event.labels.instance))] }\n')
PY
  printf 'dry_run = true\n\n[docker]\nevents = false\n\n[notify.ops]\ntype = "log"\n' > "$dir/salve.toml"
  durable_port=$(free_port)
  "$BARE_BIN" "127.0.0.1:$durable_port" --durable "$dir/durable.log" & durable_pid=$!; pids+=($durable_pid)
  for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/127.0.0.1/$durable_port") 2>/dev/null && break; sleep 0.01; done
  STORM_SENDS=$sends storm_load "http://127.0.0.1:$durable_port/api/v1/alertmanager" "$groups_conns" "$groups_offset" "$groups_seconds"
  ceiling=$(awk -v r="$s_rps" -v a="$size" 'BEGIN {printf "%.0f", r*a}'); ceiling_p99=$s_p99
  kill "$durable_pid" 2>/dev/null || true; wait "$durable_pid" 2>/dev/null || true; forget_pid "$durable_pid"
  rm -f "$dir/durable.log"
  port=$(free_port)
  "$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
    --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
  wait_ready "http://127.0.0.1:$port/-/ready" 120
  # Past what it can decide, salve refuses with 503 (Alertmanager sends those again):
  # only what it acknowledged counts.
  STORM_ALLOW_NON2XX=1 STORM_SENDS=$sends storm_load "http://127.0.0.1:$port/api/v1/alertmanager" "$groups_conns" "$groups_offset" "$groups_seconds"
  alive "$pid" || { echo "bench: salve died in the groups cell $cell:" >&2; tail -20 "$dir/log" >&2; exit 1; }
  got=$(awk -v r="$s_requests" -v n="$s_non2xx" -v a="$size" -v t="$groups_seconds" 'BEGIN {printf "%.0f", (r-n)*a/t}')
  decided=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^salve_decisions_total\{/ {s+=$2} END {printf "%.0f", s}')
  rss=$(kib "$pid" VmRSS)
  stop_salve "$pid"
  echo "| $size | $matching | $sends | $ceiling | $got | $(awk -v a="$got" -v b="$ceiling" 'BEGIN {printf "%.0f%%", (b>0? 100*a/b : 0)}') | $ceiling_p99 | $s_p99 | $s_non2xx | $(mib "$rss") | $decided |"
  rm -rf "$dir"
done
storm_alerts=${STORM_ALERTS:-1}
echo
fi
# Overload: more than salve can take. One salve on the default max_backlog, one rule
# that costs about OVERLOAD_WORK loop turns per alert it matches (every alert), and
# bench/overload.rs keeping OVERLOAD_CONNECTIONS requests of OVERLOAD_ALERTS distinct
# alerts in flight: what is accepted, what is refused with 503 and how fast, and how
# long the backlog takes to drain once the load stops.
if part overload; then
overload_conns=${OVERLOAD_CONNECTIONS:-64}; overload_alerts=${OVERLOAD_ALERTS:-20}
if $smoke; then
  # a small backlog, so even a short run is refused some
  overload_seconds=2; overload_work=200; overload_backlog=500
else
  overload_seconds=${OVERLOAD_SECONDS:-20}; overload_work=${OVERLOAD_WORK:-2000}; overload_backlog=20000
fi
dir="$work/overload"; mkdir -p "$dir/rules"
printf '[docker]\nevents = false\n\n[engine]\nmax_backlog = %s\n' "$overload_backlog" > "$dir/salve.toml"
cat > "$dir/rules/costly.rhai" <<RHAI
const MATCH = \`job="node"\`;
fn plan(event) { let i = 0; while i < $overload_work { i += 1; } [] }
RHAI
port=$(free_port)
"$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
  --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
wait_ready "http://127.0.0.1:$port/-/ready" 60
out=$("$OVERLOAD_BIN" "http://127.0.0.1:$port/api/v1/alertmanager" "$overload_conns" "$overload_seconds" "$overload_alerts")
alive "$pid" || { echo "bench: salve died under overload:" >&2; tail -20 "$dir/log" >&2; exit 1; }
# o NAME: a field of the overload client's line
o() { grep -oE "(^| )$1=[^ ]+" <<<"$out" | cut -d= -f2; }
backlog_metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk '/^salve_backlog_events / {print $2}'; }
peak_backlog=$(backlog_metric)
t0=$(date +%s%N)
until [ "$(backlog_metric)" = 0 ]; do
  [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 300 ] || { echo "bench: the backlog never drained" >&2; exit 1; }
  sleep 0.05
done
drain_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rejected=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^salve_intake_rejected_total\{reason="backlog"\}/ {print $2}')
stop_salve "$pid"
rate() { awk -v n="$1" -v s="$overload_seconds" 'BEGIN {printf "%.0f", n/s}'; }
echo "### Overload: offered load above capacity"
echo
echo "- one salve, \`[engine] max_backlog = $overload_backlog\` (the default is 20000), durable audit on; one rule matching every alert that turns a loop $overload_work times"
echo "- \`bench/overload.rs\`: $overload_conns requests in flight for ${overload_seconds} s, each an Alertmanager body of $overload_alerts distinct alerts; latencies per answer"
echo "- backlog at the end of the load: ${peak_backlog:-?} events; 503s counted by salve: ${rejected:-0}; drained ${drain_ms} ms after the load stopped"
echo
echo "| offered requests/s | accepted (200)/s | refused (503)/s | other | socket errors | accepted p50 | accepted p99 | refused p99 | Retry-After |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| $(rate "$(o sent)") | $(rate "$(o accepted)") | $(rate "$(o refused)") | $(o other) | $(o errors) | $(o accepted_p50_ms) ms | $(o accepted_p99_ms) ms | $(o refused_p99_ms) ms | $(o retry_after_s) s |"
echo
rm -rf "$dir"

fi
if part probes; then
# Probes: PROBES_COUNT (1000) probes at a 1 s interval, half HTTP (a POST of "{}" to the
# bare endpoint) and half TCP (a connect to it), for PROBES_SECONDS (20) after a 5 s
# warm-up: checks each probe made (from salve_probe_duration_seconds_count; 1 a second
# is on time) and salve's CPU over the same window.
if $smoke; then probes_count=20; probes_seconds=3; else probes_count=${PROBES_COUNT:-1000}; probes_seconds=${PROBES_SECONDS:-20}; fi
dir="$work/probes"; mkdir -p "$dir/rules"
{
  printf '[docker]\nevents = false\n'
  for i in $(seq 1 "$probes_count"); do
    if [ $(( i % 2 )) = 0 ]; then
      printf '\n[[probe]]\nname = "p-%s"\nhttp = "http://127.0.0.1:%s/api/v1/alertmanager"\nmethod = "POST"\nbody = "{}"\ninterval = "1s"\ntimeout = "500ms"\n' "$i" "$bare_port"
    else
      printf '\n[[probe]]\nname = "p-%s"\ntcp = "127.0.0.1:%s"\ninterval = "1s"\ntimeout = "500ms"\n' "$i" "$bare_port"
    fi
  done
} > "$dir/salve.toml"
port=$(free_port)
"$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
  --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
wait_ready "http://127.0.0.1:$port/-/ready" 60
sleep 5
# counts: probe name -> checks so far; ticks: utime+stime of salve
counts() { curl -sf "http://127.0.0.1:$port/metrics" | awk -F'[{}"= ]+' '/^salve_probe_duration_seconds_count\{/ {print $3, $NF}' | sort; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
c0=$(counts); t0=$(ticks "$pid"); s0=$(date +%s%N)
sleep "$probes_seconds"
c1=$(counts); t1=$(ticks "$pid"); s1=$(date +%s%N)
failed=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^salve_probe_failures_total\{/ {s+=$NF} END {printf "%.0f", s}')
alive "$pid" || { echo "bench: salve died running probes" >&2; tail -20 "$dir/log" >&2; exit 1; }
stop_salve "$pid"
hz=$(getconf CLK_TCK)
join <(echo "$c0") <(echo "$c1") | awk '{print $3 - $2}' | sort -n > "$dir/checks"
read -r probed on_time low median high < <(awk -v secs="$probes_seconds" '
  { v[NR] = $1; if ($1 >= 0.9 * secs && $1 <= 1.1 * secs + 1) ok++ }
  END { printf "%d %d %d %d %d\n", NR, ok, v[1], v[int((NR+1)/2)], v[NR] }' "$dir/checks")
cpu=$(awk -v dt="$(( t1 - t0 ))" -v hz="$hz" -v ns="$(( s1 - s0 ))" 'BEGIN {printf "%.2f", (dt / hz) / (ns / 1e9)}')
echo "### Probes: ${probes_count} at a 1 s interval"
echo
echo "- half HTTP (POST of \`{}\` to the bare endpoint), half TCP (a connect to it); ${probes_seconds} s measured after a 5 s warm-up"
echo "- on time: a probe that checked $(( probes_seconds * 9 / 10 ))–$(( probes_seconds * 11 / 10 + 1 )) times in the ${probes_seconds} s (its 1 s interval within 10%, one check of slack at the edges)"
echo
echo "| probes | on time | checks per probe: min / median / max (expected ${probes_seconds}) | failed checks | salve CPU (cores) |"
echo "| --- | --- | --- | --- | --- |"
echo "| $probed | $on_time | $low / $median / $high | ${failed:-0} | $cpu |"
echo
rm -rf "$dir"
fi
if part replay; then
# Replay: a storm trail (REPLAY_LOAD_SECONDS of bench/storm.lua at 16 connections
# against 10 rules), then `salve replay` of it with the same rules: events replayed a
# second, and whether every decision came out the same.
if $smoke; then replay_load=1; else replay_load=${REPLAY_LOAD_SECONDS:-10}; fi
dir="$work/replay"
make_storm_rules 10 "$dir/rules"
storm_config "$dir/salve.toml"
port=$(free_port)
"$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
  --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
wait_ready "http://127.0.0.1:$port/-/ready" 60
storm_load "http://127.0.0.1:$port/api/v1/alertmanager" 16 0 "$replay_load"
stop_salve "$pid"
trail_mib=$(find "$dir/data" -maxdepth 1 -name 'audit.jsonl*' -printf '%s\n' | awk '{s+=$1} END {printf "%.1f", s/1048576}')
t0=$(date +%s%N)
set +e
"$SALVE_BIN" replay --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" --since 1h --json > "$dir/replay.json" 2>"$dir/replay.log"
replay_status=$?
set -e
replay_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
read -r replayed differences assumed < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["window"]["events"], len(d["differences"]), d["summary"]["assumed_outcomes"])' "$dir/replay.json")
rate=$(awk -v e="$replayed" -v ms="$replay_ms" 'BEGIN {printf "%.0f", (ms>0? 1000*e/ms : 0)}')
echo "### Replay of a storm trail"
echo
echo "- recorded: ${replay_load} s of \`bench/storm.lua\` at 16 connections against 10 rules (3 of them match half the alerts), durable audit on"
echo "- replayed: \`salve replay --since 1h --json\` with the same rules and config, the whole command timed (reading the trail included)"
echo
echo "| trail (MiB) | events replayed | time | events/s | differences | outcomes assumed | exit |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
echo "| $trail_mib | $replayed | $replay_ms ms | $rate | $differences | $assumed | $replay_status |"
echo
rm -rf "$dir"
fi
if part store; then
# [store]: two replicas on one PostgreSQL (fsync and synchronous_commit on, as
# shipped), bench/storm.lua at 8 connections on each (16 in all, every alert distinct
# across both), 10 rules; beside it, one salve on its file trail at 16 connections.
if $smoke; then store_seconds=1; else store_seconds=${STORE_SECONDS:-10}; fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/postgres" ] || { echo "bench: PostgreSQL is missing (apt-get install postgresql)" >&2; exit 1; }
dir="$work/store"; mkdir -p "$dir/pg"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# The postgres user must reach its data dir through the run's folder.
[ "$(id -u)" = 0 ] && { chmod 711 "$work"; chown -R postgres:postgres "$dir/pg"; }
pg_port=$(free_port)
as_pg "$pg_bin/initdb" -D "$dir/pg/data" -U salve -A trust --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w \
  -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null
pg_stop() { as_pg "$pg_bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true; }
make_storm_rules 10 "$dir/rules"
for r in a b; do
  mkdir -p "$dir/$r"
  storm_config "$dir/$r/salve.toml" '[store]\npostgres_url_env = "SALVE_BENCH_PG_URL"\npool_size = 8\n'
done
export SALVE_BENCH_PG_URL="postgres://salve@127.0.0.1:$pg_port/postgres"
port_a=$(free_port); port_b=$(free_port)
"$SALVE_BIN" serve --config "$dir/a/salve.toml" --rules "$dir/rules" --data-dir "$dir/a/data" \
  --listen "127.0.0.1:$port_a" 2>"$dir/a/log" & pid_a=$!; pids+=($pid_a)
wait_ready "http://127.0.0.1:$port_a/-/ready" 60
"$SALVE_BIN" serve --config "$dir/b/salve.toml" --rules "$dir/rules" --data-dir "$dir/b/data" \
  --listen "127.0.0.1:$port_b" 2>"$dir/b/log" & pid_b=$!; pids+=($pid_b)
wait_ready "http://127.0.0.1:$port_b/-/ready" 60
STORM_OFFSET=0 STORM_ALERTS=1 wrk -t 1 -c 8 -d "${store_seconds}s" --timeout 10s --latency \
  -s bench/storm.lua "http://127.0.0.1:$port_a/api/v1/alertmanager" > "$dir/wrk-a" &
wrk_a=$!
# The follower's lag behind the trail (salve_follower_lag_records), twice a second.
( while kill -0 "$wrk_a" 2>/dev/null; do
    curl -s "http://127.0.0.1:$port_b/metrics" | awk '$1=="salve_follower_lag_records" {print $2}'
    sleep 0.5
  done ) > "$dir/lag" &
lag_sampler=$!
STORM_OFFSET=500000000000 STORM_ALERTS=1 wrk -t 1 -c 8 -d "${store_seconds}s" --timeout 10s --latency \
  -s bench/storm.lua "http://127.0.0.1:$port_b/api/v1/alertmanager" > "$dir/wrk-b"
wait "$wrk_a"; wait "$lag_sampler" 2>/dev/null || true
rows_written=$(as_pg "$pg_bin/psql" -tA -X -h 127.0.0.1 -p "$pg_port" -U salve -d postgres -c "SELECT count(*) FROM salve_trail")
lag_max=$(awk 'BEGIN {m=0} $1+0 > m {m=$1+0} END {printf "%.0f", m}' "$dir/lag")
# in seconds of the trail as it was written in the storm
lag_s=$(awk -v m="$lag_max" -v n="$rows_written" -v t="$store_seconds" 'BEGIN {printf "%.2f", (n>0? m*t/n : 0)}')
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1=="99%" {print $2}' "$1"; }
non2xx() { local n; n=$(awk '/Non-2xx/ {print $NF}' "$1"); echo "${n:-0}"; }
store_rps=$(awk -v a="$(rps "$dir/wrk-a")" -v b="$(rps "$dir/wrk-b")" 'BEGIN {printf "%.0f", a+b}')
# The leader keeps deciding after the load: how long until every event is evaluated.
t0=$(date +%s%N)
deadline=$(( $(date +%s) + 120 ))
received=$(as_pg "$pg_bin/psql" -tA -X -h 127.0.0.1 -p "$pg_port" -U salve -d postgres -c "SELECT count(*) FROM salve_trail WHERE kind = 'received' AND NOT coalesce((record->>'unmatched')::bool, false)")
until [ "$(as_pg "$pg_bin/psql" -tA -X -h 127.0.0.1 -p "$pg_port" -U salve -d postgres -c "SELECT count(*) FROM salve_trail WHERE kind = 'evaluated'")" -ge "$received" ] || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
drain_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
leader=$(curl -s "http://127.0.0.1:$port_a/metrics" | awk '$1=="salve_leader" {print $2}')
stop_salve "$pid_b"; stop_salve "$pid_a"
pg_stop
# The same load on one salve with its file trail, for the ratio.
mkdir -p "$dir/files"
storm_config "$dir/files/salve.toml"
port=$(free_port)
"$SALVE_BIN" serve --config "$dir/files/salve.toml" --rules "$dir/rules" --data-dir "$dir/files/data" \
  --listen "127.0.0.1:$port" 2>"$dir/files/log" & pid=$!; pids+=($pid)
wait_ready "http://127.0.0.1:$port/-/ready" 60
STORM_OFFSET=0 STORM_ALERTS=1 wrk -t 2 -c 16 -d "${store_seconds}s" --timeout 10s --latency \
  -s bench/storm.lua "http://127.0.0.1:$port/api/v1/alertmanager" > "$dir/wrk-files"
stop_salve "$pid"
files_rps=$(rps "$dir/wrk-files")
echo "### Replicas on PostgreSQL ([store])"
echo
echo "- load: ${store_seconds} s of \`bench/storm.lua\` (one distinct alert per request) at 8 connections on each of two replicas, 16 in all; 10 rules, 3 of them match half the alerts; PostgreSQL $(basename "$(dirname "$pg_bin")") on this machine with fsync and synchronous_commit on"
echo "- alerts/s: acknowledged, that is committed in PostgreSQL; the file trail: the same load on one salve, fdatasync per group commit"
echo
echo "| trail | alerts/s acknowledged | % of the file trail | p99 (replica a / b) | non-2xx | leader (replica a) | events left to decide when the load stopped, decided in | follower's lag, most seen (records / s of trail) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| PostgreSQL, 2 replicas | $store_rps | $(awk -v a="$store_rps" -v b="$files_rps" 'BEGIN {printf "%.0f%%", (b>0? 100*a/b : 0)}') | $(p99 "$dir/wrk-a") / $(p99 "$dir/wrk-b") | $(( $(non2xx "$dir/wrk-a") + $(non2xx "$dir/wrk-b") )) | ${leader:-?} | ${drain_ms} ms | $lag_max / ${lag_s} s |"
echo "| files, 1 salve | $files_rps | 100% | $(p99 "$dir/wrk-files") | $(non2xx "$dir/wrk-files") | 1 | - | - |"
echo
rm -rf "$dir"
fi
if part docker; then
# Docker: from the engine's `health_status: unhealthy` to salve's restart (the engine's
# `kill`, which a restart sends first) and to `healthy` again, read off the engine's own
# event timestamps, so neither salve's log nor this script's timing is in the measure.
command -v docker >/dev/null || { echo "bench: docker is missing" >&2; exit 1; }
[ -x /usr/bin/busybox ] || { echo "bench: /usr/bin/busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
image=salve-bench-busybox:latest
if ! docker image inspect "$image" >/dev/null 2>&1; then
  root="$work/image"; mkdir -p "$root/bin" "$root/tmp"
  cp /usr/bin/busybox "$root/bin/busybox"
  for applet in sh sleep touch rm test; do ln -s busybox "$root/bin/$applet"; done
  tar -C "$root" -cf "$work/image.tar" .
  docker import -c 'CMD ["/bin/sh"]' "$work/image.tar" "$image" >/dev/null
fi
if $smoke; then rounds=1; else rounds=${BENCH_DOCKER_ROUNDS:-5}; fi
run_id="bench-$$"
container="salve-$run_id"
dir="$work/docker"; mkdir -p "$dir/rules"
printf '[docker]\nevents = true\nlabel = "salve.bench=%s"\n' "$run_id" > "$dir/salve.toml"
cat > "$dir/rules/unhealthy.rhai" <<'RHAI'
const MATCH = `source="docker", health="unhealthy"`;
fn plan(event) { if event.status != "firing" { return []; } [restart(docker_container(event.labels.container)).timeout(1)] }
RHAI
port=$(free_port)
"$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
  --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
wait_ready "http://127.0.0.1:$port/-/ready" 60
cleanup_container() { docker rm -f "$container" >/dev/null 2>&1 || true; }
trap 'cleanup_container; cleanup' EXIT
docker run -d -q --name "$container" --network none --label "salve.bench=$run_id" \
  --health-cmd 'test -f /tmp/ok' --health-interval 1s --health-retries 1 --health-timeout 1s \
  "$image" sh -c 'touch /tmp/ok; exec sleep 3600' >/dev/null

# wait_health STATUS SECONDS
wait_health() {
  local deadline=$(( $(date +%s) + $2 ))
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$container" 2>/dev/null)" = "$1" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: $container never became $1" >&2; exit 1; }
    sleep 0.1
  done
}
echo "### Docker: unhealthy container to restart"
echo
echo "| round | unhealthy → restart call (kill) | unhealthy → healthy again |"
echo "| --- | --- | --- |"
for round in $(seq 1 "$rounds"); do
  wait_health healthy 30
  since=$(date +%s)
  docker exec "$container" rm -f /tmp/ok
  sleep 1.5
  wait_health healthy 30
  events=$(docker events --since "$since" --until "$(( $(date +%s) + 1 ))" --filter "container=$container" \
    --format '{{.TimeNano}} {{.Action}}')
  read -r to_kill to_healthy < <(awk '
    /health_status: unhealthy/ && !u {u=$1}
    u && $2=="kill" && !k {k=$1}
    k && /health_status: healthy/ && !h {h=$1}
    END { if (u && k && h) printf "%.1f %.2f\n", (k-u)/1e6, (h-u)/1e9; else print "? ?" }' <<<"$events")
  [ "$to_kill" != "?" ] || { echo "bench: no unhealthy → kill → healthy sequence in the engine's events:" >&2; echo "$events" >&2; exit 1; }
  echo "| $round | $to_kill ms | $to_healthy s |"
done

fi
