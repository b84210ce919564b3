#!/usr/bin/env python3
"""Peer for tools/bench/llama_forward.sh: SmolLM2-135M (the bundled GGUF, dequantised to float32
by transformers) forward to logits on the CPU, batches of B×T random token ids, 2 threads.
Prints one line: `tokens_per_s <value>` (best of N timed runs after one warm-up)."""
import os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import AutoModelForCausalLM

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
model_dir, gguf_file = sys.argv[1], sys.argv[2]
B, T, runs = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_file, dtype=torch.float32).eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (B, T), generator=g)
best = float("inf")
with torch.inference_mode():
    model(ids, use_cache=False)
    for _ in range(runs):
        t0 = time.perf_counter(); model(ids, use_cache=False); best = min(best, time.perf_counter() - t0)
print(f"tokens_per_s {B * T / best:.1f}")
