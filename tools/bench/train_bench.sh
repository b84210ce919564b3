#!/usr/bin/env bash
# Step-1 training speed: qkdb (release build, via an XCTest that trains on a harvest file) and
# the PyTorch peer (tools/bench/train_step_torch.py), same harvest file, same shapes and batch,
# in one run. MiniLM layer 2, d_hidden 1536 per dictionary, context 128, 8-sequence batches.
#
# usage: tools/bench/train_bench.sh [STEPS]   (makes the harvest with transformers if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${1:-20}"
WORK="${QKDB_BENCH_DIR:-/tmp/qkdb-train-bench}"
H="$WORK/minilm_l2_bench.safetensors"
mkdir -p "$WORK"
[ -f "$H" ] || python3 tools/bench/make_minilm_harvest.py "$H" --layer 2 --sequences 96 --context 128

swift build -c release --build-tests -Xswiftc -enable-testing >/dev/null
QKDB_BENCH=1 QKDB_BENCH_HARVEST="$H" QKDB_BENCH_STEPS="$STEPS" \
  swift test -c release -Xswiftc -enable-testing --skip-build --filter Step1BenchmarkTests/testTrainingSpeed 2>&1 | tee "$WORK/swift.txt" | grep "qkdb tokens/s" || true
python3 tools/bench/train_step_torch.py "$H" --layer 2 --d-hidden 1536 --batch 8 --steps "$STEPS" --threads 2 | tee "$WORK/torch.txt"

Q=$(grep -o 'qkdb tokens/s: [0-9]*' "$WORK/swift.txt" | grep -o '[0-9]*$')
T=$(grep -o 'pytorch tokens/s: [0-9]*' "$WORK/torch.txt" | grep -o '[0-9]*$')
python3 -c "print(f'qkdb {int($Q)} tokens/s, PyTorch {int($T)} tokens/s, ratio {int($Q)/int($T):.2f}x')"
