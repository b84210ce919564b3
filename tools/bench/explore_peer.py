#!/usr/bin/env python3
"""Peer for `qkdb explain`: transformers (2 CPU threads) loads MiniLM, runs the prompt with
output_attentions and reads one head's attention row at one layer -- the part of explain a
researcher would otherwise do by hand in PyTorch. Prints load and answer times (seconds).
Usage: explore_peer.py MODEL_DIR LAYER HEAD DEST "TEXT" [REPEATS]"""
import os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
torch.set_num_threads(2)
from transformers import AutoModel, AutoTokenizer

model_dir, layer, head, dest, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
repeats = int(sys.argv[6]) if len(sys.argv) > 6 else 5
t0 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
t1 = time.perf_counter()
best = float("inf")
for _ in range(repeats):
    s = time.perf_counter()
    with torch.no_grad():
        ids = tok(text, return_tensors="pt")
        out = model(**ids, output_attentions=True)
        row = out.attentions[layer][0, head, dest].tolist()
    best = min(best, time.perf_counter() - s)
print(f"peer load {t1 - t0:.3f} s, answer {best:.4f} s (best of {repeats}), row max {max(row):.4f}")
