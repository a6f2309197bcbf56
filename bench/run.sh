#!/usr/bin/env bash
# salve's benchmark: alerts/s and latency of POST /api/v1/alertmanager with the durable
# audit on, against a bare axum endpoint on the same machine; peak RSS and start-up time
# by rule count; the fsync cost of acknowledgement. Loopback only; every run is bounded.
#
#   bench/run.sh            full matrix, results as Markdown on stdout (for BENCHMARKS.md)
#   bench/run.sh --smoke    one short cell, to prove the harness still works
#
# Needs: wrk (Debian package). SALVE_BIN / BARE_BIN override the binaries (default: a
# release build made here).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

if [ -z "${SALVE_BIN:-}" ] || [ -z "${BARE_BIN:-}" ]; then
  cargo build --release --quiet --bin salve --example bare
  SALVE_BIN=${SALVE_BIN:-target/release/salve}
  BARE_BIN=${BARE_BIN:-target/release/examples/bare}
fi

if $smoke; then
  rule_counts="10"; connections="1 4"; duration=1
else
  rule_counts="10 100 1000 10000"; connections="1 16 64"; duration=${BENCH_SECONDS:-10}
fi
body=tests/fixtures/alertmanager/firing-group.json
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

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
        'fn plan(event) { [restart(k8s_deployment(event.labels.namespace, event.labels.deployment))] }\n')
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
declare -A bare
echo "### Bare axum endpoint (the ceiling)"
echo
echo "| connections | requests/s | p50 | p99 |"
echo "| --- | --- | --- | --- |"
for c in $connections; do
  read -r rps p50 p99 < <(load "http://127.0.0.1:$bare_port/api/v1/alertmanager" "$c")
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
    printf '[docker]\nevents = false\n' > "$dir/salve.toml"
    port=$(free_port)
    t0=$(date +%s%N)
    "$SALVE_BIN" serve --config "$dir/salve.toml" --rules "$dir/rules" --data-dir "$dir/data" \
      --listen "127.0.0.1:$port" 2>"$dir/log" & pid=$!; pids+=($pid)
    wait_ready "http://127.0.0.1:$port/-/ready" 120
    startup[$n]=$(( ($(date +%s%N) - t0) / 1000000 ))
    read -r rps p50 p99 < <(load "http://127.0.0.1:$port/api/v1/alertmanager" "$c")
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
