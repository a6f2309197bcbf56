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
echo

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
