#!/usr/bin/env bash
# real_experiments.sh: every real-data run of docs/EXPERIMENTS.md, from the
# public check-in logs in ../shared/data (never copied into the repository):
#   1. import   Petaling Jaya (users with >= 10 active days) and Foursquare NYC
#   2. negatives K = 4 popularity negatives per check-in, sampler seed 1
#   3. experiments  iclock experiment, 5 seeds, the paper's variants and the
#               extras (or --variants), for each [model] history setting
#   4. pictures the hourly category shares and example users' clocks (SVG)
# Outputs go under --out (default build/real): the imported logs, the
# experiment tables (.txt), JSON, stderr logs (.err), wall/CPU time (.time)
# and the load average before and after each run (.load); pictures under
# --img (default OUT/img; `make pictures` passes docs/img).
#
# usage: scripts/real_experiments.sh [--iclock BIN] [--data DIR] [--out DIR]
#            [--img DIR] [--seeds K] [--jobs N] [--history "0 1"]
#            [--datasets "pj nyc"] [--variants baseline,naive,...]
#            [--only import|negatives|experiments|pictures]
# Experiment outputs are named exp_<dataset>_history<h>_seeds<K>.
# Steps a later step needs are redone only when their outputs are missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ICLOCK=$root/build/iclock
DATA=$root/../shared/data
OUT=$root/build/real
IMG=
SEEDS=5
JOBS=2
HISTORY="0 1"
DATASETS="pj nyc"
VARIANTS=
ONLY=

while [ $# -gt 0 ]; do
    case $1 in
    --iclock) ICLOCK=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --img) IMG=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --history) HISTORY=$2; shift 2 ;;
    --datasets) DATASETS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "real_experiments.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
IMG=${IMG:-$OUT/img}
case $ICLOCK in /*) ;; *) ICLOCK=$PWD/$ICLOCK ;; esac
[ -x "$ICLOCK" ] || { echo "real_experiments.sh: $ICLOCK: not built (make)" >&2; exit 1; }
for f in petaling_jaya/checkins.csv.gz petaling_jaya/pois.csv.gz \
         foursquare_nyc/train.csv.gz foursquare_nyc/test.csv.gz; do
    [ -r "$DATA/$f" ] || { echo "real_experiments.sh: $DATA/$f: missing" >&2; exit 1; }
done
mkdir -p "$OUT" "$IMG"
cd "$root"
PJ_CFG=configs/petaling_jaya.ini
NYC_CFG=configs/foursquare_nyc.ini

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# Runs a command with its wall and CPU time in OUT/NAME.time and the load
# average before and after in OUT/NAME.load (the machine is shared).
timed() {
    local name=$1; shift
    cat /proc/loadavg > "$OUT/$name.load"
    /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB max RSS" -o "$OUT/$name.time" "$@"
    cat /proc/loadavg >> "$OUT/$name.load"
}

import() {
    echo "== import (outputs in $OUT)"
    # Petaling Jaya: only users with >= 10 distinct local days (2,023 of
    # 18,346 users, 82,390 of 153,543 check-ins): the median user has 3
    # check-ins on 2 days, too little for a clock or a per-user AUC.
    timed import_pj "$ICLOCK" import contexttrails --checkins "$DATA/petaling_jaya/checkins.csv.gz" \
        --pois "$DATA/petaling_jaya/pois.csv.gz" --min-active-days 10 -o "$OUT/pj.csv"
    timed import_nyc "$ICLOCK" import foursquare-tsmc --input "$DATA/foursquare_nyc/train.csv.gz" \
        --input "$DATA/foursquare_nyc/test.csv.gz" -o "$OUT/nyc.csv"
}

negatives() {
    echo "== negatives (K = 4, seed 1)"
    timed negatives_pj "$ICLOCK" negatives --data "$OUT/pj.csv" --config $PJ_CFG \
        --per-positive 4 --seed 1 -o "$OUT/pj_neg.csv"
    timed negatives_nyc "$ICLOCK" negatives --data "$OUT/nyc.csv" --config $NYC_CFG \
        --per-positive 4 --seed 1 -o "$OUT/nyc_neg.csv"
}

experiments() {
    local which=--extras
    [ -n "$VARIANTS" ] && which="--variants=$VARIANTS"
    for h in $HISTORY; do
        for ds in $DATASETS; do
            local cfg=$PJ_CFG
            [ "$ds" = nyc ] && cfg=$NYC_CFG
            local name=exp_${ds}_history${h}_seeds$SEEDS
            echo "== experiment $ds, model.history=$h, $SEEDS seeds, $JOBS jobs"
            timed "$name" "$ICLOCK" experiment --data "$OUT/${ds}_neg.csv" --config "$cfg" \
                --seeds "$SEEDS" --jobs "$JOBS" "$which" --set "model.history=$h" \
                --json "$OUT/$name.json" > "$OUT/$name.txt" 2> "$OUT/$name.err"
            cat "$OUT/$name.txt" "$OUT/$name.time"
        done
    done
}

# One clock dial: dataset, config, user, time (Unix seconds).
dial() {
    "$ICLOCK" clock --data "$OUT/$1.csv" --config "$2" --user "$3" --at "$4" \
        --svg "$IMG/$1_clock_$3.svg" > /dev/null
}

pictures() {
    echo "== pictures (in $IMG)"
    "$ICLOCK" plot hourly --data "$OUT/pj.csv" --config $PJ_CFG --field category_l1 --top 12 \
        --title "Petaling Jaya: level-1 venue category by local hour" -o "$IMG/pj_hourly_l1.svg"
    "$ICLOCK" plot hourly --data "$OUT/pj.csv" --config $PJ_CFG --field category --top 15 \
        --title "Petaling Jaya: the 15 most visited fine categories by local hour" \
        -o "$IMG/pj_hourly_category.svg"
    "$ICLOCK" plot hourly --data "$OUT/nyc.csv" --config $NYC_CFG --field category \
        --title "Foursquare NYC: venue category by local hour" -o "$IMG/nyc_hourly.svg"
    # Example clocks, each at the end of the user's busiest 30 days (the
    # clock's window; docs/EXPERIMENTS.md says how they were chosen):
    # Petaling Jaya 28083 has the most check-ins in 30 days (185, 19 hours);
    # 102309 the most varied clock among users whose month covers >= 18
    # hours (6 level-1 top values, 97 check-ins, 23 hours). NYC 768 covers
    # all 24 hours (249 check-ins, 7 top values); 660 has the most varied
    # clock (8 top values, 131 check-ins, 21 hours).
    dial pj $PJ_CFG 28083 1516944301
    dial pj $PJ_CFG 102309 1518974821
    dial nyc $NYC_CFG 768 1352076601
    dial nyc $NYC_CFG 660 1358661301
}

need_import() {
    if [ ! -s "$OUT/pj.csv" ] || [ ! -s "$OUT/nyc.csv" ]; then import; fi
}
need_negatives() {
    need_import
    if [ ! -s "$OUT/pj_neg.csv" ] || [ ! -s "$OUT/nyc_neg.csv" ]; then negatives; fi
}

if [ -z "$ONLY" ]; then
    import
    negatives
    experiments
    pictures
else
    case $ONLY in
    import) import ;;
    negatives) need_import; negatives ;;
    experiments) need_negatives; experiments ;;
    pictures) need_import; pictures ;;
    *) echo "real_experiments.sh: --only: '$ONLY' is not a step" >&2; exit 2 ;;
    esac
fi
echo "== done"
