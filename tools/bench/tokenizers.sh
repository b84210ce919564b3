#!/usr/bin/env bash
# Tokenises the default corpus with qkdb's tokenizers and with Hugging Face's (the peer), and prints
# both timings and their ratio. WordPiece: the bundled all-MiniLM-L6-v2 vocab.txt. Byte-level BPE:
# SmolLM2's tokenizer, as transformers builds it from the bundled GGUF (saved as tokenizer.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS=${1:-data/corpus/fortunes.jsonl}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 RAYON_NUM_THREADS=2

swift build -c release --target QKModels >/dev/null
BIN=$(swift build -c release --show-bin-path)
swiftc -O -module-cache-path "$WORK/cache" -I "$BIN/Modules" -I Sources/CBLAS tools/bench/tokenize_corpus.swift \
    "$BIN"/QKModels.build/*.o "$BIN"/QKTensor.build/*.o -lopenblas -o "$WORK/tokenize_corpus"

python3 - "$WORK" <<'PY'
import sys, torch
torch.set_num_threads(1)
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained("models/SmolLM2-135M-Instruct", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
t.backend_tokenizer.save(sys.argv[1] + "/smollm2.json")
PY

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
seconds() { sed -E 's/.* in ([0-9.]+) s.*/\1/'; }
for kind in wordpiece bpe; do
    if [ "$kind" = wordpiece ]; then FILE=models/all-MiniLM-L6-v2/vocab.txt; else FILE=$WORK/smollm2.json; fi
    OURS=$("$WORK/tokenize_corpus" "$CORPUS" "$kind" "$FILE")
    PEER=$(python3 tools/bench/tokenize_corpus_peer.py "$CORPUS" "$kind" "$FILE")
    echo "$OURS"; echo "$PEER"
    OURS_WARM=$(echo "$OURS" | grep warm | seconds); OURS_COLD=$(echo "$OURS" | grep cold | seconds)
    PEER_LOOP=$(echo "$PEER" | grep loop | seconds); PEER_BATCH=$(echo "$PEER" | grep batch | seconds)
    echo "ratio $kind: HF loop / qkdb cold = $(ratio "$PEER_LOOP" "$OURS_COLD"), HF batch (2 threads) / qkdb cold = $(ratio "$PEER_BATCH" "$OURS_COLD") (>1: qkdb faster)"
    [ "$(echo "$OURS" | grep cold | sed 's/.*checksum //')" = "$(echo "$PEER" | grep loop | sed 's/.*checksum //')" ] \
        && echo "ids identical ($kind)" || echo "IDS DIFFER ($kind)"
done
