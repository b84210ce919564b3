#!/usr/bin/env bash
# Step-2 speed benchmark: qkdb's mask training against the reference formulation (a dense mask
# over the [d_Q, d_K, n_head] pair map in PyTorch, 2 threads) on the same dictionaries, codes and
# patterns, in one run. Prints seconds per epoch (wall and process CPU), final KLs and the ratio.
#
#   tools/bench/mask_bench.sh [--train N] [--held-out N] [--epochs E] [--batch B] [--lr LR]
#                             [--penalty MU] [--threshold T] [--full] [--data FILE]
#
# --data runs both sides on an existing file of the same layout instead, e.g. the real MiniLM
# codes and patterns that PairMapMiniLMCheckTests writes with QKDB_MINILM_EXPORT (give its
# --held-out; --train is then ignored).
# --full also times the reference over the whole 1536²×12 table for a few steps (per-epoch time
# extrapolated). The input file is generated once by tools/bench/mask_peer.py and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
TRAIN=192 HELD=16 EPOCHS=3 BATCH=16 LR=0.02 PENALTY=1e-6 THRESHOLD=0.5 FULL=0 DATA=
while [ $# -gt 0 ]; do
    case "$1" in
        --train) TRAIN=$2; shift 2 ;; --held-out) HELD=$2; shift 2 ;; --epochs) EPOCHS=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;; --lr) LR=$2; shift 2 ;; --penalty) PENALTY=$2; shift 2 ;;
        --threshold) THRESHOLD=$2; shift 2 ;; --full) FULL=1; shift ;; --data) DATA=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$DATA" ] || DATA=${QKDB_BENCH_DIR:-/tmp}/qkdb-maskbench-$TRAIN-$HELD.safetensors
export HF_HUB_OFFLINE=1
[ -f "$DATA" ] || python3 tools/bench/mask_peer.py generate --out "$DATA" --train "$TRAIN" --held-out "$HELD"

swift build -c release -Xswiftc -enable-testing --build-tests 2>&1 | grep -E "error|Compiling|Build complete" | tail -3
QKDB=$(QKDB_BENCH=1 QKDB_BENCH_FILE="$DATA" QKDB_BENCH_HELD_OUT=$HELD QKDB_BENCH_EPOCHS=$EPOCHS QKDB_BENCH_BATCH=$BATCH \
       QKDB_BENCH_LR=$LR QKDB_BENCH_PENALTY=$PENALTY QKDB_BENCH_THRESHOLD=$THRESHOLD QKDB_BENCH_THREADS=2 \
       .build/release/qkdbPackageTests.xctest QKTrainTests.PairMapBenchmarkTests 2>&1 | grep '^qkdb ')
echo "$QKDB"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
PEER=$(python3 tools/bench/mask_peer.py train --data "$DATA" --held-out "$HELD" --epochs "$EPOCHS" --batch "$BATCH" \
       --lr "$LR" --penalty "$PENALTY" --threshold "$THRESHOLD" --table live | grep '^peer ')
echo "$PEER"
field() { echo "$1" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2; }
python3 - "$(field "$QKDB" seconds_per_epoch)" "$(field "$PEER" seconds_per_epoch)" \
          "$(field "$QKDB" cpu_seconds_per_epoch)" "$(field "$PEER" cpu_seconds_per_epoch)" \
          "$(field "$QKDB" kl_pruned)" "$(field "$PEER" kl_pruned)" <<'PY'
import sys
qw, pw, qc, pc, qk, pk = map(float, sys.argv[1:])
print(f"epoch wall: qkdb {qw:.3f} s, reference (live table) {pw:.3f} s, ratio {pw / qw:.1f}x")
print(f"epoch CPU:  qkdb {qc:.3f} s, reference (live table) {pc:.3f} s, ratio {pc / qc:.1f}x")
print(f"pruned-map held-out KL: qkdb {qk:.4f}, reference {pk:.4f}")
PY
if [ "$FULL" = 1 ]; then
    python3 tools/bench/mask_peer.py train --data "$DATA" --held-out "$HELD" --epochs 1 --batch "$BATCH" \
        --lr "$LR" --penalty "$PENALTY" --threshold "$THRESHOLD" --table full --max-steps 2 | grep '^peer ' |
        sed 's/$/  (2 steps: the time per epoch is extrapolated; KLs are not final)/'
fi
