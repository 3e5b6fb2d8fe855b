#!/usr/bin/env bash
# bench_serve.sh: `make bench-serve`. Starts `iclock serve` on a fresh data
# dir, loads a history of events (curl), then measures POST /v1/rank with
# 100 candidates (wrk, bench/rank.lua) while bench/events.lua streams about
# 1,000 events/s into POST /v1/events with a second wrk. Phases (PHASES,
# name:connections:delay_ms, DURATION seconds each):
#   paced      8 connections, each waiting 12 ms between requests (~550
#              req/s offered): latency at the target load
#   saturated  2 and 8 connections back to back: the most it serves
# Prints one JSON object per line per phase: the rank figures (wrk), the
# event stream's, and what the server's /metrics say it applied and trained
# meanwhile. Checkpoints run every CHECKPOINT_EVERY seconds throughout.
#
# Usage: bench/bench_serve.sh [ICLOCK_BIN]   (env: DURATION=20, THREADS=4
#   (server HTTP threads), CHECKPOINT_EVERY=15, WARM_EVENTS=20000,
#   EVENTS_BATCH=100, EVENTS_DELAY_MS=85, PHASES)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/iclock}
DURATION=${DURATION:-20}
PHASES=${PHASES:-"paced:8:12 saturated:2:0 saturated:8:0"}
export EVENTS_DELAY_MS=${EVENTS_DELAY_MS:-85}
THREADS=${THREADS:-4}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-15}
WARM_EVENTS=${WARM_EVENTS:-20000}
for tool in wrk curl awk; do
  command -v $tool >/dev/null || { echo "bench_serve: $tool is missing (scripts/deps.sh)" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/iclock-bench-serve.XXXXXX)
OUT="$DIR/server.out"
"$BIN" serve --data-dir "$DIR/data" --port 0 --threads "$THREADS" --quiet \
  --checkpoint-every "$CHECKPOINT_EVERY" >"$OUT" 2>"$DIR/server.err" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q listening "$OUT" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT")
[ -n "$PORT" ] || { echo "bench_serve: server did not start" >&2; cat "$DIR/server.err" >&2; exit 1; }
URL="http://127.0.0.1:$PORT"

# A history: WARM_EVENTS events over the last 20 hours, in time order, in
# batches of 500 (users u0..u1999, items i0..i9999 with fixed attributes).
NOW=$(date +%s)
awk -v n="$WARM_EVENTS" -v now="$NOW" -v dir="$DIR" 'BEGIN {
  split("pop rock hiphop electronic jazz classical folk country rnb metal indie latin reggae blues soul kpop ambient punk disco funk", G, " ");
  split("calm happy sad energetic romantic dark dreamy angry", M, " ");
  split("en es zh ko fr", L, " ");
  srand(1); b = 0; f = "";
  for (i = 0; i < n; i++) {
    if (i % 500 == 0) { if (f != "") { print "]" > f; close(f) } f = sprintf("%s/warm-%05d.json", dir, b++); printf "[" > f }
    else printf "," > f;
    k = int(rand() * 10000); fin = rand() < 0.6;
    printf "{\"ts\": %d, \"user\": \"u%d\", \"item\": \"i%d\", \"tz\": 0, \"genre\": \"%s\", \"mood\": \"%s\", \"lang\": \"%s\", \"finish\": %d, \"like\": %d, \"skip\": %d}",
      now - 72000 + int(i * 72000 / n), int(rand() * 2000), k, G[k % 20 + 1], M[k % 8 + 1], L[k % 5 + 1], fin, rand() < 0.1, 1 - fin > f
  }
  if (f != "") { print "]" > f; close(f) }
}'
for f in "$DIR"/warm-*.json; do
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary @"$f" "$URL/v1/events"
done
# Let the trainer catch up with the history before measuring.
for _ in $(seq 600); do
  curl -s "$URL/healthz" | grep -q '"train_queue": 0' && break; sleep 0.1
done

metric() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
# The server's CPU seconds so far (user + system), from /proc.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$PID/stat"; }

# One phase: events streaming in the background, ranking measured.
phase() {
  local name=$1 conns=$2 delay=$3
  curl -s "$URL/metrics" >"$DIR/m0"
  local cpu0 cpu1 load
  cpu0=$(cpu)
  wrk -t1 -c1 -d"$((DURATION + 2))s" -s bench/events.lua "$URL" >"$DIR/events.out" 2>&1 &
  local evpid=$!
  sleep 1
  local t0 t1
  t0=$(date +%s.%N)
  PHASE=$name CONNECTIONS=$conns RANK_DELAY_MS=$delay \
    wrk -t1 -c"$conns" -d"${DURATION}s" -s bench/rank.lua "$URL" >"$DIR/rank.out" 2>&1
  t1=$(date +%s.%N)
  cpu1=$(cpu)
  load=$(cut -d' ' -f1 /proc/loadavg)
  curl -s "$URL/metrics" >"$DIR/m1"
  wait "$evpid"
  grep '^{' "$DIR/rank.out" || { cat "$DIR/rank.out" >&2; exit 1; }
  grep '^{' "$DIR/events.out" || { cat "$DIR/events.out" >&2; exit 1; }
  awk -v t0="$t0" -v t1="$t1" -v phase="$name" -v conns="$conns" -v cpu0="$cpu0" -v cpu1="$cpu1" -v load="$load" \
    -v a0="$(metric iclock_events_applied_total "$DIR/m0")" -v a1="$(metric iclock_events_applied_total "$DIR/m1")" \
    -v r0="$(metric iclock_events_rejected_total "$DIR/m0")" -v r1="$(metric iclock_events_rejected_total "$DIR/m1")" \
    -v s0="$(metric iclock_training_samples_total "$DIR/m0")" -v s1="$(metric iclock_training_samples_total "$DIR/m1")" \
    -v c0="$(metric iclock_checkpoints_total "$DIR/m0")" -v c1="$(metric iclock_checkpoints_total "$DIR/m1")" \
    -v q="$(metric iclock_train_queue_depth "$DIR/m1")" -v auc="$(metric 'iclock_online_auc{task="finish"}' "$DIR/m1")" \
    -v users="$(metric iclock_clock_users "$DIR/m1")" \
    'BEGIN { t = t1 - t0; printf "{\"bench\": \"serve_server\", \"phase\": \"%s\", \"connections\": %d, \"seconds\": %.1f, \"events_per_s\": %.1f, \"rejected\": %d, \"train_samples_per_s\": %.1f, \"train_queue_end\": %d, \"checkpoints\": %d, \"clock_users\": %d, \"online_auc_finish\": %s, \"server_cpu_cores\": %.2f, \"load_avg_1m\": %s}\n",
       phase, conns, t, (a1 - a0) / t, r1 - r0, (s1 - s0) / t, q, c1 - c0, users, auc, (cpu1 - cpu0) / t, load }'
}

for p in $PHASES; do
  IFS=: read -r name conns delay <<<"$p"
  phase "$name" "$conns" "$delay"
done

kill -TERM "$PID"
wait "$PID" || { echo "bench_serve: server exit status $?" >&2; exit 1; }
