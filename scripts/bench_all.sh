#!/usr/bin/env bash
# bench_all.sh: every benchmark of docs/PERFORMANCE.md side by side, the
# Python comparisons included; prints one JSON object per line on stdout
# (progress goes to stderr). `make bench-all` runs it.
#
#   scripts/bench_all.sh [--build DIR] [--out DIR] [--reps N] [--memory] [--coretype NAME] [--quick]
#
#   --build DIR      build directory with bench/bench_* and iclock (default build)
#   --out DIR        where the dump, logs and JSON go (default DIR/bench-all)
#   --reps N         repetitions of the C and the PyTorch training runs
#                    (default 3; the ratio is of their medians)
#   --memory         also the peak RSS of `iclock experiment --seeds 3` on the
#                    default simulated log (several minutes)
#   --coretype NAME  also rerun the C and PyTorch training benchmarks with
#                    OPENBLAS_CORETYPE=NAME for those two commands alone
#                    (e.g. SKYLAKEX); their lines carry "variant"
#   --quick          fewer samples and repetitions (a smoke run)
#
# What runs, in order: bench_train --dump (C training, MFU, C features),
# torch_bench.py with 1 and then 2 threads (each in its own process with
# OPENBLAS_NUM_THREADS set to match torch.set_num_threads, since torch
# does not limit OpenBLAS's pool itself), clock_pandas.py, bench_score,
# bench_clock, bench_memory (what the machine's memory costs), then the
# options.
# The environment's OPENBLAS_CORETYPE is kept as it is unless --coretype.
set -euo pipefail

build=build out="" memory=0 coretype="" quick=0 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --memory) memory=1; shift ;;
    --coretype) coretype=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench_all.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=${out:-$build/bench-all}
mkdir -p "$out"
py=/usr/bin/python3
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

case $reps in ''|*[!0-9]*) echo "bench_all.sh: --reps: '$reps' is not a number" >&2; exit 2 ;; esac
train_args=(--reps "$reps") torch_args=(--reps "$reps") pandas_args=()
if [ $quick = 1 ]; then
  train_args=(--samples 16384 --reps 1); torch_args=(--reps 1); pandas_args=(--queries 200 --check 40)
fi

note() { echo "bench_all: $*" >&2; }
# Adds "variant":"$1" to every JSON line on stdin.
tag() { sed "s/^{/{\"variant\":\"$1\",/"; }

for b in bench_train bench_score bench_clock bench_memory; do
  [ -x "$build/bench/$b" ] || { echo "bench_all.sh: $build/bench/$b missing (make B=$build $build/bench/$b)" >&2; exit 1; }
done

printf '{"bench":"bench_all","date":"%s","cpu":"%s","cpus":%s,"mem_gb":%s,"kernel":"%s","gcc":"%s","OPENBLAS_CORETYPE":"%s","loadavg":"%s","git":"%s"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
  "$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)" "$(uname -r)" \
  "$(gcc -dumpfullversion 2>/dev/null || echo ?)" "${OPENBLAS_CORETYPE:-(unset)}" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet 2>/dev/null || echo +dirty)"

note "training (C), dumping the samples to $out/dump"
"$build/bench/bench_train" "${train_args[@]}" --dump "$out/dump" | tee "$out/c_train.jsonl"

note "training (PyTorch), 1 thread"
OPENBLAS_NUM_THREADS=1 $py tools/reference/torch_bench.py "$out/dump" --threads 1 \
  "${torch_args[@]}" --c-json "$out/c_train.jsonl"
note "training (PyTorch), 2 threads"
OPENBLAS_NUM_THREADS=2 $py tools/reference/torch_bench.py "$out/dump" --threads 2 \
  "${torch_args[@]}" --c-json "$out/c_train.jsonl"

note "clock features (pandas)"
$py tools/reference/clock_pandas.py "$out/dump" "${pandas_args[@]}" --c-json "$out/c_train.jsonl"

note "scoring"
"$build/bench/bench_score"

note "clock store (bench_clock)"
if [ $quick = 1 ]; then "$build/bench/bench_clock" 200000; else "$build/bench/bench_clock"; fi

note "the memory system (bench_memory)"
"$build/bench/bench_memory"

if [ -n "$coretype" ]; then
  note "training again with OPENBLAS_CORETYPE=$coretype (this command only)"
  OPENBLAS_CORETYPE=$coretype "$build/bench/bench_train" "${train_args[@]}" \
    | tee "$out/c_train_$coretype.jsonl" | tag "OPENBLAS_CORETYPE=$coretype"
  for th in 1 2; do
    OPENBLAS_CORETYPE=$coretype OPENBLAS_NUM_THREADS=$th $py tools/reference/torch_bench.py \
      "$out/dump" --threads $th "${torch_args[@]}" --c-json "$out/c_train_$coretype.jsonl" \
      | tag "OPENBLAS_CORETYPE=$coretype"
  done
fi

if [ $memory = 1 ]; then
  [ -x /usr/bin/time ] || { echo "bench_all.sh: GNU time missing (apt-get install -y time)" >&2; exit 1; }
  note "peak memory of iclock experiment --seeds 3 (several minutes)"
  "$build/iclock" synth --quiet -o "$out/default.csv"
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$build/iclock" experiment --data "$out/default.csv" --seeds 3 --quiet \
    > "$out/experiment.txt" 2> "$out/experiment.time"
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/experiment.time")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/experiment.time")
  user=$(sed -n 's/.*User time (seconds): //p' "$out/experiment.time")
  printf '{"bench":"memory_experiment","command":"iclock experiment --data default.csv --seeds 3 (jobs 2)","max_rss_kb":%s,"max_rss_mib":%.1f,"wall":"%s","user_cpu_seconds":%s,"load1_before":%s}\n' \
    "$rss" "$(awk "BEGIN {print $rss / 1024}")" "$wall" "$user" "$load"
fi
note "done; files in $out"
