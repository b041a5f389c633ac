#!/usr/bin/env bash
# Load on a loopback `genlab serve` with a real HTTP load generator, wrk (Debian's `wrk`):
#   1. generate requests (one image each, a fresh seed each) at concurrency 64, batching on
#      (--max-batch 16) and off (--max-batch 1), side by side on the same server build;
#   2. streamed completions (`stream: true`, 64 tokens) at concurrency 16;
#   3. resident memory of the batching server after its first 1,000 requests and after 10,000.
# Prints one table row per phase (p50/p95/p99 latency, throughput, errors).
#   bench/serve_load.sh IMAGE_RUN TEXT_RUN [GENERATE_REQUESTS] [STREAMS]
# EXTRA adds fields to each generate request: EXTRA='"steps": 10, "class": 3' for a diffusion run.
# STREAMS=0 skips the streams; MEMORY=0 skips the memory phase.
set -euo pipefail
cd "$(dirname "$0")/.."
image_run=$1
text_run=$2
generate=${3:-2000}
streams=${4:-200}
genlab=target/release/genlab
[ -x "$genlab" ] || cargo build --release -p genlab-cli
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
image_model=$(basename "$(realpath "$image_run")")
extra=${EXTRA:+, $EXTRA}
text_model=$(basename "$(realpath "$text_run")")
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

start() {
  "$genlab" serve "$image_run" "$text_run" --addr 127.0.0.1:0 --queue 1024 --max-concurrent 1024 "$@" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 300); do
    grep -q listening "$tmp/out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/.*listening on //p' "$tmp/out")
  [ -n "$url" ] || { cat "$tmp/err" >&2; exit 1; }
}

batches() { # the mean batch size of the image model so far
  curl -s "$url/metrics" | awk -v m="model=\"$image_model\"" '
    index($0, "genlab_batch_size_sum{" m "}") == 1 { s = $2 }
    index($0, "genlab_batch_size_count{" m "}") == 1 { c = $2 }
    END { if (c > 0) printf "mean batch %.2f requests (%d batches)\n", s / c, c }'
}

stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
}

load() { # NAME REQUESTS CONCURRENCY PATH BODY
  local threads=2
  rm -f "$tmp"/mark*
  BODY="$5" REQUESTS="$2" THREADS=$threads MARK="$tmp/mark" \
    wrk -t$threads -c"$3" -d3600s --timeout 60s -s bench/serve_load.lua "$url$4" >"$tmp/wrk" &
  local wrk_pid=$!
  until [ "$(ls "$tmp"/mark* 2>/dev/null | wc -l)" -ge "$threads" ]; do sleep 0.02; done
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  echo "$1 $(grep '^RESULT' "$tmp/wrk")"
}

rss_mb() { echo $(( $(ps -o rss= -p "$pid") / 1024 )); }

echo "# $(date -u +%F) $(nproc) cores; image model $image_model, text model $text_model"
for batch in 16 1; do
  start --max-batch "$batch"
  load "generate max_batch=$batch" "$generate" 64 /v1/generate "{\"model\": \"$image_model\", \"seed\": %d$extra}"
  batches
  stop
done
if [ "$streams" -gt 0 ]; then
  start
  load "streamed completions" "$streams" 16 /v1/completions "{\"model\": \"$text_model\", \"prompt\": \"ROMEO:\", \"max_tokens\": 64, \"seed\": %d, \"stream\": true}"
  stop
fi
[ "${MEMORY:-1}" = 0 ] && exit 0
start
load "memory warm-up" 1000 64 /v1/generate "{\"model\": \"$image_model\", \"seed\": %d$extra}"
first=$(rss_mb)
load "memory run" 9000 64 /v1/generate "{\"model\": \"$image_model\", \"seed\": %d$extra}"
after=$(rss_mb)
echo "resident memory: ${first} MB after 1,000 requests, ${after} MB after 10,000 ($(( (after - first) * 100 / first ))% change)"
stop
