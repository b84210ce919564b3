#!/usr/bin/env bash
# Harvest benchmark: MiniLM layer 2, context 128, 32 sequences per batch, N sequences (default
# 2048) of the bundled fortunes corpus, with qkdb (release) and with transformers/PyTorch
# (2 CPU threads) in the same run, on the same token ids. Both compute layer 2's hooks and
# write the same tensors to a .safetensors file. Prints tokens/s for both and the ratio.
# Usage: tools/bench/harvest_bench.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2048}
MODEL=models/all-MiniLM-L6-v2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
swift build -c release --product qkdb >/dev/null 2>&1 || { echo "release build failed" >&2; exit 1; }
QKDB=$(swift build -c release --show-bin-path 2>/dev/null)/qkdb
python3 tools/bench/harvest_peer.py --make-tokens "$WORK/tokens.npy" --model $MODEL \
    --corpus data/corpus/fortunes.jsonl --context 128 --n "$N"
TOKENS=$((N * 128))

# Each side reports its own harvest rate (forward passes + writing the file, excluding process
# start and model load); wall-clock rates including those are printed too.
start=$(date +%s.%N)
qkdb_line=$("$QKDB" harvest --model $MODEL --layer 2 --tokens "$WORK/tokens.npy" --out "$WORK/qkdb.safetensors" --batch-size 32)
end=$(date +%s.%N)
rm -f "$WORK/qkdb.safetensors"
echo "qkdb: $qkdb_line"
qkdb_tps=$(echo "$qkdb_line" | sed -E 's/.*\(([0-9]+) tokens\/s\).*/\1/')
qkdb_wall=$(python3 -c "print(round($TOKENS / ($end - $start)))")

start=$(date +%s.%N)
peer_line=$(python3 tools/bench/harvest_peer.py --model $MODEL --layer 2 --tokens "$WORK/tokens.npy" --out "$WORK/peer.safetensors" --batch 32 2>/dev/null)
end=$(date +%s.%N)
rm -f "$WORK/peer.safetensors"
echo "peer: $peer_line"
peer_tps=$(echo "$peer_line" | sed -E 's/.*with write ([0-9]+) tokens\/s.*/\1/')
peer_fwd=$(echo "$peer_line" | sed -E 's/peer forward ([0-9]+) tokens\/s.*/\1/')
peer_wall=$(python3 -c "print(round($TOKENS / ($end - $start)))")

echo
echo "MiniLM layer 2, $N x 128 tokens, batch 32:"
echo "  qkdb harvest            $qkdb_tps tokens/s   (wall incl. start + load: $qkdb_wall)"
echo "  transformers/PyTorch    $peer_tps tokens/s   (wall incl. start + load: $peer_wall; forward only: $peer_fwd)"
python3 -c "print(f'  ratio qkdb / PyTorch    {$qkdb_tps / $peer_tps:.2f}x   (wall: {$qkdb_wall / $peer_wall:.2f}x; vs PyTorch forward only: {$qkdb_tps / $peer_fwd:.2f}x)')"
