#!/usr/bin/env python3
"""PyTorch peer of qkdb's step-1 training step, for tools/bench/train_bench.sh.

Same loss (3·KL full + KL q-only + KL k-only, α-weighted normalised MSE of q and k, decoder-norm-
weighted sqrt penalty summed over the batch), same shapes (d_hidden per dictionary, whole
sequences), same batch (sequences per step) and Adam with gradient clipping, dense as a PyTorch
user would write it. Reads the same harvest file and prints tokens/s over timed steps after warm-up.

usage: train_step_torch.py HARVEST --layer 2 [--d-hidden 1536] [--batch 8] [--steps 20] [--threads 2]
"""
import argparse, math, time
import torch
from safetensors import safe_open

ap = argparse.ArgumentParser()
ap.add_argument("harvest"); ap.add_argument("--layer", type=int, default=2)
ap.add_argument("--d-hidden", type=int, default=1536); ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--steps", type=int, default=20); ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

with safe_open(a.harvest, "pt") as f:
    X = f.get_tensor(f"blocks.{a.layer}.hook_attn_in"); Q = f.get_tensor(f"blocks.{a.layer}.attn.hook_q")
    K = f.get_tensor(f"blocks.{a.layer}.attn.hook_k"); P = f.get_tensor(f"blocks.{a.layer}.attn.hook_pattern")
nseq, T, d = X.shape
nH, dH, nKV = Q.shape[2], Q.shape[3], K.shape[2]
causal = False  # MiniLM (BERT) attends both ways


class Transcoder(torch.nn.Module):
    def __init__(self, d_in, hidden, d_out):
        super().__init__()
        w = torch.randn(hidden, d_out); w /= w.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w)
        self.W_enc = torch.nn.Parameter(torch.randn(d_in, hidden) / math.sqrt(d_in))
        self.b_enc = torch.nn.Parameter(torch.zeros(hidden)); self.b_dec = torch.nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        a = torch.relu(x @ self.W_enc + self.b_enc)
        return a, a @ self.W_dec + self.b_dec


tq, tk = Transcoder(d, a.d_hidden, nH * dH), Transcoder(d, a.d_hidden, nKV * dH)
opt = torch.optim.Adam(list(tq.parameters()) + list(tk.parameters()), lr=1e-3)
lam, alpha, eps = 1e-5, 0.1, 1e-6


def logp(q, k):
    b = q.shape[0]
    s = torch.einsum("bphd,bshd->bhps", q.view(b, T, nH, dH), k.view(b, T, nKV, dH).repeat_interleave(nH // nKV, 2)) / math.sqrt(dH)
    if causal:
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return torch.log_softmax(s, -1)


def kl(p, lp):
    return (torch.xlogy(p, p) - p * lp.clamp(min=-69)).sum() / (p.shape[0] * p.shape[1] * p.shape[2])


def step(i):
    idx = torch.arange(i * a.batch, (i + 1) * a.batch) % nseq
    x, q, k, p = X[idx].reshape(-1, d), Q[idx].reshape(len(idx), T, -1), K[idx].reshape(len(idx), T, -1), P[idx]
    aq, qh = tq(x); ak, kh = tk(x)
    qh, kh = qh.view(len(idx), T, -1), kh.view(len(idx), T, -1)
    loss = 3 * kl(p, logp(qh, kh)) + kl(p, logp(qh, k)) + kl(p, logp(q, kh))
    loss = loss + alpha * (((qh - q) ** 2).sum() / ((q - q.reshape(-1, q.shape[-1]).mean(0)) ** 2).sum()
                           + ((kh - k) ** 2).sum() / ((k - k.reshape(-1, k.shape[-1]).mean(0)) ** 2).sum())
    loss = loss + lam * ((torch.sqrt(aq + eps) - math.sqrt(eps)) * tq.W_dec.norm(dim=1)).sum() \
                + lam * ((torch.sqrt(ak + eps) - math.sqrt(eps)) * tk.W_dec.norm(dim=1)).sum()
    opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(tq.parameters(), 1.0); torch.nn.utils.clip_grad_norm_(tk.parameters(), 1.0)
    opt.step()
    return loss.item()


for i in range(a.warmup):
    step(i)
t0 = time.perf_counter()
for i in range(a.steps):
    step(a.warmup + i)
dt = time.perf_counter() - t0
print(f"pytorch tokens/s: {a.steps * a.batch * T / dt:.0f}")
