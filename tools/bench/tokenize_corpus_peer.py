"""The peer for tools/bench/tokenizers.sh: Hugging Face tokenizers (Rust) on the same corpus.
Prints the same checksum as tokenize_corpus.swift. `encode_batch` runs on RAYON_NUM_THREADS threads."""
import json, sys, time
from tokenizers import Tokenizer

corpus, kind, path = sys.argv[1:4]
texts = [json.loads(line)["text"] for line in open(corpus, encoding="utf-8")]
if kind == "wordpiece":
    from transformers import BertTokenizerFast
    import os, shutil, tempfile
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(path, d)
        tok = BertTokenizerFast.from_pretrained(d, do_lower_case=True).backend_tokenizer
else:
    tok = Tokenizer.from_file(path)
n_bytes = sum(len(t.encode("utf-8")) for t in texts)
for mode in ["loop", "batch"]:
    start = time.perf_counter()
    if mode == "loop":
        encoded = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    else:
        encoded = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    seconds = time.perf_counter() - start
    checksum, count = 0, 0
    for ids in encoded:
        for i in ids:
            checksum = (checksum * 1000003 + i) % (1 << 64)
            count += 1
    print(f"HF {kind} {mode}: {len(texts)} texts, {n_bytes / 1e6:.2f} MB, {count} tokens in {seconds:.3f} s "
          f"({n_bytes / 1e6 / seconds:.1f} MB/s), checksum {checksum}")
