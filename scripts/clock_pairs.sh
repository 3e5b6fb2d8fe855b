#!/usr/bin/env bash
# clock_pairs.sh: two builds of bench_clock compared the way this machine
# allows: alternating pairs of fresh processes (A B, B A, A B, ...) pinned
# to one core, each pair's ratios, then the medians. On this VM one run
# differs from the next by 10-30% (the L3 share other tenants leave, the
# host's first touch of fresh pages), so a change is judged by the median
# ratio of pairs, not by single runs: 8 pairs resolve about +-3%. Besides
# events/s it compares the timed loop's user seconds, which leave out the
# host's page faults (sys_seconds). A first run of A is not counted: the
# first process after a pause meets the coldest memory.
#
# Usage: scripts/clock_pairs.sh [--run r1|r0|d1|d0|s1] [--pairs N] [--warm MB] BENCH_A BENCH_B
#   BENCH_A, BENCH_B  bench_clock binaries, e.g. built with
#                     make B=/tmp/a bench/bench_clock  (then /tmp/a/bench/bench_clock)
#   --run    which bench_clock run (default r1: Zipf log, realtime, the hint)
#   --pairs  pairs to run (default 8; a Zipf run takes ~4 s, s1 ~8 s)
#   --warm   BENCH_CLOCK_WARM: MiB written and freed before each run (default 0)
# Prints one JSON object per pair and one with the medians; the ratios are
# B over A for events/s and A over B for user seconds (above 1: B faster).
set -euo pipefail

run=r1 pairs=8 warm=0
while [ $# -gt 0 ]; do
  case $1 in
    --run) run=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --warm) warm=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "clock_pairs.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { echo "clock_pairs.sh: need two bench_clock binaries (see --help)" >&2; exit 2; }
A=$1 B=$2
for b in "$A" "$B"; do [ -x "$b" ] || { echo "clock_pairs.sh: '$b' is not an executable" >&2; exit 2; }; done
case $run in r0|r1|d0|d1|s1) ;; *) echo "clock_pairs.sh: --run: '$run' is not r0, r1, d0, d1 or s1" >&2; exit 2 ;; esac
case $pairs in ''|*[!0-9]*|0) echo "clock_pairs.sh: --pairs: '$pairs' is not a positive number" >&2; exit 2 ;; esac
case $warm in ''|*[!0-9]*) echo "clock_pairs.sh: --warm: '$warm' is not a number" >&2; exit 2 ;; esac

# "events_per_s user_seconds sys_seconds steady_events_per_s" of one run.
one() {
  BENCH_CLOCK_WARM=$warm BENCH_CLOCK_CHECK=0 BENCH_CLOCK_ONLY=$run taskset -c 1 "$1" |
    grep '"clock_apply_query"' | tail -1 |
    sed -E 's/.*"events_per_s":([0-9.]+).*"steady_events_per_s":([0-9.]+).*"user_seconds":([0-9.]+),"sys_seconds":([0-9.]+).*/\1 \3 \4 \2/'
}

one "$A" >/dev/null # not counted: the first run after a pause meets the coldest memory
for r in $(seq "$pairs"); do
  if [ $((r % 2)) = 1 ]; then a=$(one "$A"); b=$(one "$B"); else b=$(one "$B"); a=$(one "$A"); fi
  echo "$a $b"
done | awk -v run="$run" -v warm="$warm" '
  function median(x, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
  }
  {
    n++; e[n] = $5 / $1; u[n] = $2 / $6; ea[n] = $1; eb[n] = $5; sa[n] = $4; sb[n] = $8
    printf "{\"bench\":\"clock_pair\",\"run\":\"%s\",\"pair\":%d,\"a_events_per_s\":%s,\"b_events_per_s\":%s,\"a_user_s\":%s,\"b_user_s\":%s,\"a_sys_s\":%s,\"b_sys_s\":%s,\"events_ratio\":%.4f,\"user_ratio\":%.4f}\n", run, n, $1, $5, $2, $6, $3, $7, e[n], u[n]
  }
  END {
    if (!n) exit 1
    printf "{\"bench\":\"clock_pairs\",\"run\":\"%s\",\"warm_mb\":%d,\"pairs\":%d,\"median_events_ratio\":%.4f,\"median_user_ratio\":%.4f,\"a_median_events_per_s\":%.0f,\"b_median_events_per_s\":%.0f,\"a_median_steady\":%.0f,\"b_median_steady\":%.0f}\n", run, warm, n, median(e, n), median(u, n), median(ea, n), median(eb, n), median(sa, n), median(sb, n)
  }'
