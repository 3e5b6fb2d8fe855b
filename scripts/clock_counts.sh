#!/usr/bin/env bash
# clock_counts.sh: what the clock store executes and misses per event,
# counted, not timed: cachegrind runs bench_clock's timed loop (the engine's
# prefetch hint, query and apply, and the event expansion around them) and
# a run that times nothing, and prints the difference per event as one JSON
# line. Deterministic, so it shows changes of a few percent that this
# machine's timing noise (10-30% from run to run) hides; the caches are
# simulated (48 KiB 12-way D1, 8 MiB 16-way LL: about one core's share of
# the L3 here), and software prefetches are not counted as accesses.
#
# Usage: scripts/clock_counts.sh [--run r1|r0|d1|d0|s1] [--events N] [--build DIR]
#   --run     which bench_clock run (default r1: Zipf log, realtime, hint;
#             s1: the simulator's log, whose size is fixed)
#   --events  events of the Zipf log (default 2000000)
#   --build   build directory (default build-counts; built with
#             -march=x86-64-v3, which valgrind can run: it cannot run
#             AVX-512 code)
# Needs valgrind (apt-get install valgrind). Takes 1-3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

run=r1 events=2000000 build=build-counts
while [ $# -gt 0 ]; do
  case $1 in
    --run) run=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "clock_counts.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $run in r0|r1|d0|d1|s1) ;; *) echo "clock_counts.sh: --run: '$run' is not r0, r1, d0, d1 or s1" >&2; exit 2 ;; esac
case $events in ''|*[!0-9]*) echo "clock_counts.sh: --events: '$events' is not a number" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "clock_counts.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }

make -s B="$build" OPT="-O2 -march=x86-64-v3" "$build/bench/bench_clock" >&2

# Prints "instructions data_refs d1_misses ll_misses timed_events" of one run.
count() {
  local out err
  out=$(mktemp) err=$(mktemp)
  BENCH_CLOCK_CHECK=0 BENCH_CLOCK_ONLY=$1 valgrind --tool=cachegrind --cache-sim=yes \
    --D1=49152,12,64 --LL=8388608,16,64 --cachegrind-out-file=/dev/null \
    "$build/bench/bench_clock" "$events" >"$out" 2>"$err"
  local n
  n=$(sed -n 's/.*"bench":"clock_apply_query".*"events":\([0-9]*\).*/\1/p' "$out")
  awk -v n="${n:-0}" '
    function num(s) { gsub(",", "", s); return s + 0 }
    /I *refs:/      { i = num($NF) }
    /D *refs:/      { split($0, a, ":"); split(a[2], b, "("); d = num(b[1]) }
    /D1 *misses:/   { split($0, a, ":"); split(a[2], b, "("); d1 = num(b[1]) }
    /LLd misses:/   { split($0, a, ":"); split(a[2], b, "("); ll = num(b[1]) }
    END { printf "%.0f %.0f %.0f %.0f %d\n", i, d, d1, ll, n }' "$err"
  rm -f "$out" "$err"
}

echo "clock_counts: counting run $run and a run that times nothing (1-3 minutes)" >&2
read -r i1 d1r m1 l1 n < <(count "$run")
# The baseline makes the same log: the Zipf log always, the simulator's on s0.
read -r i0 d0r m0 l0 _ < <(count "$([ "$run" = s1 ] && echo s0 || echo none)")
[ "$n" -gt 0 ] || { echo "clock_counts.sh: the timed run printed no result" >&2; exit 1; }
awk -v run="$run" -v n="$n" -v i="$((i1 - i0))" -v d="$((d1r - d0r))" -v m="$((m1 - m0))" -v l="$((l1 - l0))" \
    -v git="$(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet 2>/dev/null || echo +dirty)" 'BEGIN {
  printf "{\"bench\":\"clock_counts\",\"run\":\"%s\",\"events\":%d,\"instructions_per_event\":%.0f,", run, n, i / n
  printf "\"data_refs_per_event\":%.0f,\"d1_misses_per_event\":%.1f,\"ll_misses_per_event\":%.2f,", d / n, m / n, l / n
  printf "\"d1\":\"48KiB/12\",\"ll\":\"8MiB/16\",\"march\":\"x86-64-v3\",\"git\":\"%s\"}\n", git
}'
