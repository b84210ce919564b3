#!/usr/bin/env python3
"""Harvests all-MiniLM-L6-v2 layer L with transformers, in `qkdb harvest`'s layout, for the step-1
benchmark and the README's MiniLM figures (a stand-in until `qkdb harvest` is in main).

The corpus is packed as [CLS] e1 [SEP] e2 [SEP] ... into fixed-length sequences (no padding).
Writes tokens [b, t] (int32), blocks.L.hook_attn_in [b, t, 384], blocks.L.attn.hook_q [b, t, 12, 32],
blocks.L.attn.hook_k [b, t, 12, 32], blocks.L.attn.hook_pattern [b, 12, t, t] (F32), metadata
architecture=bert.

usage: make_minilm_harvest.py OUT.safetensors [--layer 2] [--sequences 160] [--context 128] [--skip 0]
"""
import argparse, json, os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layer", type=int, default=2)
ap.add_argument("--sequences", type=int, default=160)
ap.add_argument("--context", type=int, default=128)
ap.add_argument("--skip", type=int, default=0, help="corpus entries to skip first")
ap.add_argument("--corpus", default=os.path.join(ROOT, "data/corpus/fortunes.jsonl"))
a = ap.parse_args()
torch.set_num_threads(2)

mdir = os.path.join(ROOT, "models/all-MiniLM-L6-v2")
tok = AutoTokenizer.from_pretrained(mdir)
model = AutoModel.from_pretrained(mdir, attn_implementation="eager").eval()

seqs, cur = [], [tok.cls_token_id]
with open(a.corpus) as f:
    for i, line in enumerate(f):
        if i < a.skip:
            continue
        ids = tok(json.loads(line)["text"], add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
        for t in ids:
            cur.append(t)
            if len(cur) == a.context:
                seqs.append(cur); cur = [tok.cls_token_id]
        if len(seqs) >= a.sequences:
            break
seqs = seqs[: a.sequences]
tokens = torch.tensor(seqs, dtype=torch.long)
L = a.layer
attn = model.encoder.layer[L].attention.self
xs, qs, ks, ps = [], [], [], []
with torch.no_grad():
    for i in range(0, len(seqs), 16):
        out = model(input_ids=tokens[i:i + 16], output_hidden_states=True, output_attentions=True)
        x = out.hidden_states[L]
        b, t, _ = x.shape
        q = attn.query(x).view(b, t, 12, 32)
        k = attn.key(x).view(b, t, 12, 32)
        xs.append(x); qs.append(q); ks.append(k); ps.append(out.attentions[L])
save_file({
    "tokens": tokens.to(torch.int32).contiguous(),
    f"blocks.{L}.hook_attn_in": torch.cat(xs).contiguous(),
    f"blocks.{L}.attn.hook_q": torch.cat(qs).contiguous(),
    f"blocks.{L}.attn.hook_k": torch.cat(ks).contiguous(),
    f"blocks.{L}.attn.hook_pattern": torch.cat(ps).contiguous(),
}, a.out, metadata={"architecture": "bert", "model": "all-MiniLM-L6-v2", "layer": str(L)})
print(f"wrote {a.out}: {len(seqs)} sequences x {a.context} tokens, layer {L}")
