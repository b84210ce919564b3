#!/usr/bin/env bash
# Explore benchmark on a MiniLM run (default: out/all-MiniLM-L6-v2-L2.qkdb from `qkdb run`):
#  - `qkdb report` wall time (whole site: held-out forward pass, heatmaps, every feature page);
#  - `qkdb explain` load time and answer time after the model loads (its --timing line), best of 5,
#    next to a transformers peer (2 threads) that only computes the true attention row.
# There is no peer for the report: no other tool renders QK feature-pair reports.
# Usage: tools/bench/explore_bench.sh [STORE] [RUN]
set -euo pipefail
cd "$(dirname "$0")/../.."
STORE=${1:-out/all-MiniLM-L6-v2-L2.qkdb}
RUN=${2:-1}
TEXT="The quick brown fox jumps over the lazy dog because it was bored."
HEAD=3; DEST=4
[ -f "$STORE" ] || { echo "no store at $STORE (run: qkdb run)" >&2; exit 1; }
swift build -c release --product qkdb >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
QKDB=$(swift build -c release --show-bin-path 2>/dev/null)/qkdb
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LAYER=$("$QKDB" runs --store "$STORE" --format csv | awk -F, -v r="$RUN" 'NR>1 && $1==r {print $7}')

start=$(date +%s.%N)
"$QKDB" report --store "$STORE" --run "$RUN" --out "$WORK/report" 2>/dev/null
end=$(date +%s.%N)
pages=$(ls "$WORK/report/features" | wc -l)
size=$(du -sh "$WORK/report" | cut -f1)
report_s=$(python3 -c "print(f'{$end - $start:.1f}')")

best=""; load=""
for i in 1 2 3 4 5; do
  line=$("$QKDB" explain --store "$STORE" --run "$RUN" --text "$TEXT" --head $HEAD --dest $DEST --timing 2>&1 >/dev/null | grep '^explain:')
  l=$(echo "$line" | sed -E 's/explain: load ([0-9.]+) s.*/\1/'); a=$(echo "$line" | sed -E 's/.*explain ([0-9.]+) s/\1/')
  best=$(python3 -c "print(min([float(x) for x in '$best $a'.split()]))"); load=$(python3 -c "print(min([float(x) for x in '$load $l'.split()]))")
done
peer=$(python3 tools/bench/explore_peer.py models/all-MiniLM-L6-v2 "$LAYER" $HEAD $DEST "$TEXT" 10)
peer_answer=$(echo "$peer" | sed -E 's/.*answer ([0-9.]+) s.*/\1/')
peer_load=$(echo "$peer" | sed -E 's/peer load ([0-9.]+) s.*/\1/')

echo "store $STORE run $RUN (layer $LAYER)"
echo "  qkdb report:  $report_s s wall, $pages feature pages, $size   (goal < 60 s)"
echo "  qkdb explain: load $load s, answer $best s after load (best of 5; goal < 1 s)"
echo "  peer (transformers, true attention row only, best of 10): load $peer_load s, answer $peer_answer s"
python3 -c "print(f'  explain answer / peer answer = {$best / $peer_answer:.2f}x (qkdb also encodes, splits every pair and scores the pruned map)')"
