#!/usr/bin/env python3
"""Benchmark peer for `qkdb harvest`: transformers/PyTorch on the CPU (2 threads) computing the
same layer-L hooks (attn_in, q, k, pattern) for the same token file, batch by batch, and
writing them to a .safetensors file with the same names and shapes.

Also tokenizes + packs the corpus for the benchmark (`--make-tokens`), so both sides run on
identical ids without depending on qkdb's tokenizer.
Usage: harvest_peer.py --model DIR --layer L --tokens T.npy --out F.safetensors [--batch 32]
       harvest_peer.py --make-tokens OUT.npy --model DIR --corpus C.jsonl --context 128 --n N
"""
import argparse
import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
import torch

torch.set_num_threads(2)


def make_tokens(args):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    body = args.context - 1
    stream, seqs = [], []
    with open(args.corpus) as f:
        for line in f:
            if not line.strip():
                continue
            ids = tok.encode(json.loads(line)["text"], add_special_tokens=False).ids
            if not ids:
                continue
            stream += ids + [sep]
            while len(stream) >= body and len(seqs) < args.n:
                seqs.append([cls] + stream[:body])
                stream = stream[body:]
            if len(seqs) >= args.n:
                break
    np.save(args.make_tokens, np.array(seqs, dtype=np.int32))
    print(f"{len(seqs)} sequences of {args.context} tokens", file=sys.stderr)


def harvest(args):
    from transformers import BertModel
    from safetensors.numpy import save_file
    model = BertModel.from_pretrained(args.model, attn_implementation="eager", add_pooling_layer=False).eval()
    L = args.layer
    # Run to layer L only: later layers are not needed for its hooks.
    model.encoder.layer = model.encoder.layer[:L + 1]
    cfg = model.config
    H, dh, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads, cfg.hidden_size
    tokens = np.load(args.tokens)
    n, T = tokens.shape
    out = {
        "tokens": tokens.astype(np.int32),
        f"blocks.{L}.hook_attn_in": np.empty((n, T, d), np.float32),
        f"blocks.{L}.attn.hook_q": np.empty((n, T, H, dh), np.float32),
        f"blocks.{L}.attn.hook_k": np.empty((n, T, H, dh), np.float32),
        f"blocks.{L}.attn.hook_pattern": np.empty((n, H, T, T), np.float32),
    }
    att = model.encoder.layer[L].attention.self
    got = {}
    att.query.register_forward_hook(lambda m, i, o: got.__setitem__("q", o))
    att.key.register_forward_hook(lambda m, i, o: got.__setitem__("k", o))
    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, args.batch):
            ids = torch.from_numpy(tokens[s:s + args.batch].astype(np.int64))
            b = ids.shape[0]
            o = model(ids, token_type_ids=torch.zeros_like(ids), output_attentions=True, output_hidden_states=True)
            out[f"blocks.{L}.hook_attn_in"][s:s + b] = o.hidden_states[L].numpy()
            out[f"blocks.{L}.attn.hook_q"][s:s + b] = got["q"].reshape(b, T, H, dh).numpy()
            out[f"blocks.{L}.attn.hook_k"][s:s + b] = got["k"].reshape(b, T, H, dh).numpy()
            out[f"blocks.{L}.attn.hook_pattern"][s:s + b] = o.attentions[L].numpy()
    forward = time.perf_counter() - start
    save_file(out, args.out)
    total = time.perf_counter() - start
    print(f"peer forward {n * T / forward:.0f} tokens/s, with write {n * T / total:.0f} tokens/s "
          f"({n} sequences x {T}, {forward:.2f} s + write {total - forward:.2f} s)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--layer", type=int, default=2)
    p.add_argument("--tokens")
    p.add_argument("--out")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--make-tokens")
    p.add_argument("--corpus")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--n", type=int, default=2048)
    a = p.parse_args()
    make_tokens(a) if a.make_tokens else harvest(a)
