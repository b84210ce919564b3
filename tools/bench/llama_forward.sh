#!/usr/bin/env bash
# SmolLM2-135M forward throughput, full model to logits, 8×128 random tokens, 2 threads:
# qkdb (release) and transformers/PyTorch on the CPU in the same run, then the ratio.
# Usage: tools/bench/llama_forward.sh [batch] [length] [runs]
# qkdb splits each GEMM by rows over the cores itself (single-threaded OpenBLAS per slice);
# the peer gets 2 intra-op threads (MKL). OPENBLAS_CORETYPE, if set, picks qkdb's kernels.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-8}; T=${2:-128}; RUNS=${3:-3}
DIR=models/SmolLM2-135M-Instruct
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
swift build -c release --product qkdb >/dev/null
export OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
report=$(.build/release/qkdb bench-forward --model "$DIR" --batch "$B" --length "$T" --runs "$RUNS")
ours=$(echo "$report" | awk '/tokens_per_s/ {print $2}')
kernels=$(echo "$report" | awk '/blas_kernels/ {print $2}' | tr -d ,)
peer=$(THREADS=2 python3 tools/bench/llama_forward_peer.py "$DIR" "$FILE" "$B" "$T" "$RUNS" 2>/dev/null | awk '/tokens_per_s/ {print $2}')
echo "SmolLM2-135M forward to logits, ${B}x${T} tokens, 2 threads (best of $RUNS)"
echo "qkdb:                  $ours tokens/s   (OpenBLAS kernels: $kernels)"
echo "transformers/PyTorch:  $peer tokens/s"
awk -v a="$ours" -v b="$peer" 'BEGIN { printf "ratio (qkdb / peer):   %.2fx\n", a / b }'
