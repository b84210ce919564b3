#!/usr/bin/env python3
"""Recomputes a qkdb SAELens export's activations outside qkdb, from the exported files alone:
a = act(x @ W_enc + b_enc) with x the cfg's hook_name tensor of a harvest file (ReLU, or the k
largest positive pre-activations for TopK), then q_hat / k_hat = a @ W_dec + b_dec. Prints L0 and
the explained variance against the harvest's hook_name_out tensor for each side.

usage: check_saelens_export.py EXPORT_DIR HARVEST.safetensors
"""
import json, os, sys
import torch
from safetensors.torch import load_file
from safetensors import safe_open

export, harvest = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
for side in ("query", "key"):
    cfg = json.load(open(os.path.join(export, side, "cfg.json")))
    w = load_file(os.path.join(export, side, "sae_weights.safetensors"))
    with safe_open(harvest, "pt") as f:
        x = f.get_tensor(cfg["hook_name"]).reshape(-1, cfg["d_in"])
        target = f.get_tensor(cfg["hook_name_out"]).reshape(-1, cfg["d_out"])
    pre = x @ w["W_enc"] + w["b_enc"]
    a = torch.relu(pre)
    if cfg["activation_fn_str"] == "topk":
        top = torch.topk(a, cfg["activation_fn_kwargs"]["k"], dim=-1)
        a = torch.zeros_like(a).scatter(-1, top.indices, top.values)
    out = a @ w["W_dec"] + w["b_dec"]
    ev = 1 - ((out - target) ** 2).sum() / ((target - target.mean(0)) ** 2).sum()
    print(f"{side}: L0 {(a > 0).sum(-1).float().mean():.2f}, explained variance {ev:.4f}, "
          f"features {cfg['d_sae']}, {cfg['activation_fn_str']}")
