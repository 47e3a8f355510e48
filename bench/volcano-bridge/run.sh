#!/usr/bin/env bash
# Volcano bridge benchmarks over loopback. Usage: bench/volcano-bridge/run.sh [BUILD_DIR] [--quick|--slowloris]
# BUILD_DIR (default build-release) must hold bin/hyperaccel-volcano-bridge and
# bin/hyperaccel-bridge-bench. Prints the bench table, wrk latency for predicate (keep-alive and
# Connection: close) and the server's resident memory after a 1000-node snapshot, after the load and
# once idle parsers and buffers have been released, and with 16 concurrent maximum-size bodies.
# --slowloris runs only the predicate latency with 0 and 200 slow connections (10 s each; two
# clients at once, keep-alive and new connection, sending the fixture's predicate request).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-release}
quick=${2:-}
bin=$build/bin
port=${BRIDGE_BENCH_PORT:-18713}
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The slow connections of the slowloris rows come from 127.0.0.1 like the measured predicates: the
# per-client limit is raised so that it does not close the predicates' connections to make room
# for the attacker's (with distinct addresses, as in a cluster, it closes only the attacker's).
"$bin/hyperaccel-volcano-bridge" --listen "127.0.0.1:$port" --log-level warn --max-connections-per-client 1000 &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

rss() { awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{printf "%.1f MiB (peak %.1f MiB)", r/1024, h/1024}' "/proc/$server_pid/status"; }
echo "server RSS at start: $(rss)"
fixture="$here/../../tests/volcano-bridge/corpus/predicate/predicate.request.json"

if [ "$quick" = "--slowloris" ]; then
  echo "== predicate while 200 slow connections are held (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bin/hyperaccel-bridge-bench" --url "127.0.0.1:$port" --slowloris-only --server-pid "$server_pid" --predicate-fixture "$fixture"
  echo "server RSS after: $(rss) (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  exit 0
fi

echo "== bench table (HTTP rows against the server process)"
"$bin/hyperaccel-bridge-bench" --url "127.0.0.1:$port" --server-pid "$server_pid" --write-bodies "$work" \
  --predicate-fixture "$fixture" $quick

echo "== onSessionOpen (1000 nodes / 10000 pods) posted to the server"
curl -s -o /dev/null -w "status %{http_code}, %{size_upload} bytes in %{time_total} s\n" \
  -H 'Content-Type: application/json' --data-binary "@$work/snapshot-1000.json" "http://127.0.0.1:$port/onSessionOpen"
echo "server RSS after the snapshot: $(rss)"

if command -v wrk >/dev/null; then
  duration=${BRIDGE_BENCH_SECONDS:-10}
  [ "$quick" = "--quick" ] && duration=3
  for mode in keep-alive close; do
    for conns in 1 16; do
      threads=$(( conns < 2 ? 1 : 2 ))
      echo "== wrk predicate, $mode, $conns connection(s), ${duration}s"
      BODY_FILE="$work/predicate.json" CLOSE=$([ "$mode" = close ] && echo 1 || echo 0) \
        wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -s "$here/post.lua" "http://127.0.0.1:$port/predicate" |
        grep -E "Latency Distribution|50%|90%|99%|Requests/sec|Non-2xx|Socket errors"
    done
  done
  echo "== wrk prioritize 1000 nodes, keep-alive, 1 connection, ${duration}s"
  BODY_FILE="$work/prioritize-1000.json" CLOSE=0 \
    wrk -t1 -c1 -d"${duration}s" --latency -s "$here/post.lua" "http://127.0.0.1:$port/prioritize" |
    grep -E "50%|99%|Requests/sec|Non-2xx"
else
  echo "wrk not installed: skipping the wrk rows (apt-get install wrk)"
fi
echo "server RSS after the load: $(rss)"
# Idle parsers and request buffers are freed after --idle-release-seconds (3 s) without use.
sleep 5
echo "server RSS 5 s after the load: $(rss)"

# 16 maximum-size bodies at once (the real 1000-node snapshot padded with spaces to
# --max-body-bytes): the in-flight budget admits one, refuses the rest early with 503, and the
# server's memory stays under the manifest's 512Mi limit.
echo "== memory: 16 concurrent maximum-size onSessionOpen bodies"
"$bin/hyperaccel-bridge-bench" --url "127.0.0.1:$port" --memory "$server_pid" "$work/snapshot-1000.json"
sleep 5
echo "server RSS 5 s after the memory case: $(rss)"
