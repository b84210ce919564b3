#!/usr/bin/env python3
"""Step-2 benchmark peer: the reference formulation of mask training (a dense mask over the
[d_Q, d_K, n_head] pair map, PyTorch on the CPU), and the generator of the shared input file.

  mask_peer.py generate --out F.safetensors [--train N] [--held-out N] [--seed S]
      Random dictionaries of the reference's size (d_hidden 1536, MiniLM layer-2 shapes:
      12 heads, d_head 32, context 128, 15-30 active features per position, ~20% live; about
      one pair in eight strong, the rest weak) and patterns from the full map plus logit noise,
      so the unmasked map has a small real KL and pruning has something to find.
      Codes are stored as CSR (row_start/indices/values) so both sides read the same numbers.

  mask_peer.py train --data F.safetensors [--table live|full] [--epochs E] [--batch B]
                     [--lr LR] [--penalty MU] [--threshold T] [--max-steps N]
      Dense-mask training exactly as the reference: W = M*m over the whole table (or over live
      features only), Adam, clamp to [0,1], prune below T, held-out KL. Prints seconds/epoch
      and KLs in a `key=value` line the bench script parses.
"""
import argparse
import math
import time

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

D_HIDDEN, N_HEAD, D_HEAD, CTX = 1536, 12, 32, 128


def generate(args):
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    n = args.train + args.held_out
    live_q = np.sort(rng.choice(D_HIDDEN, size=D_HIDDEN // 5, replace=False))
    live_k = np.sort(rng.choice(D_HIDDEN, size=D_HIDDEN // 5, replace=False))
    # Each feature writes to 2 of the 32 coordinates of every head (plus faint noise), so about
    # one pair in eight has a strong entry and the rest are weak: the shape of a trained map.
    def decoder():
        w = rng.normal(size=(D_HIDDEN, N_HEAD, D_HEAD)) * 0.05
        for f in range(D_HIDDEN):
            for h in range(N_HEAD):
                w[f, h, rng.choice(D_HEAD, size=2, replace=False)] = rng.choice([-1.3, 1.3], size=2)
        return w.reshape(D_HIDDEN, N_HEAD * D_HEAD).astype(np.float32)
    wq, wk = decoder(), decoder()
    bq = (rng.normal(size=(N_HEAD * D_HEAD,)) * 0.1).astype(np.float32)
    bk = (rng.normal(size=(N_HEAD * D_HEAD,)) * 0.1).astype(np.float32)
    # Zipf-like firing rates: a few dense features, a long tail.
    def rates(m):
        r = 1.0 / np.arange(1, m + 1) ** 0.8
        return rng.permutation(r / r.sum())

    def codes(live):
        p = rates(len(live))
        rows, idx, val = [0], [], []
        for _ in range(n * CTX):
            k = rng.integers(15, 31)
            f = np.sort(live[rng.choice(len(live), size=k, replace=False, p=p)])
            idx.extend(f.tolist())
            val.extend((rng.exponential(1.0, size=k) + 0.1).tolist())
            rows.append(len(idx))
        return np.array(rows, np.int64), np.array(idx, np.int32), np.array(val, np.float32)

    qr, qi, qv = codes(live_q)
    kr, ki, kv = codes(live_k)
    L = len(live_q)
    wq_h = torch.tensor(wq[live_q]).view(L, N_HEAD, D_HEAD)
    wk_h = torch.tensor(wk[live_k]).view(L, N_HEAD, D_HEAD)
    M = torch.einsum("ihd,jhd->ijh", wq_h, wk_h) / math.sqrt(D_HEAD)
    B = torch.einsum("hd,jhd->hj", torch.tensor(bq).view(N_HEAD, D_HEAD), wk_h) / math.sqrt(D_HEAD)
    W = M.reshape(L, L * N_HEAD)
    qpos = {int(f): a for a, f in enumerate(live_q)}
    kpos = {int(f): a for a, f in enumerate(live_k)}
    pats = np.zeros((n, N_HEAD, CTX, CTX), np.float32)
    for s in range(n):
        aq = torch.zeros(CTX, L); ak = torch.zeros(CTX, L)
        for p in range(CTX):
            r = s * CTX + p
            for e in range(qr[r], qr[r + 1]): aq[p, qpos[int(qi[e])]] = float(qv[e])
            for e in range(kr[r], kr[r + 1]): ak[p, kpos[int(ki[e])]] = float(kv[e])
        u = (aq @ W).view(CTX, L, N_HEAD)
        score = torch.einsum("pjh,sj->hps", u, ak) + (B @ ak.T)[:, None, :]
        score = score + torch.randn(score.shape) * 0.3
        pats[s] = torch.softmax(score, -1).numpy()
    meta = {"train": str(args.train), "held_out": str(args.held_out), "ctx": str(CTX), "n_head": str(N_HEAD), "d_head": str(D_HEAD)}
    save_file({"w_dec_q": wq, "b_dec_q": bq, "w_dec_k": wk, "b_dec_k": bk,
               "q_row_start": qr, "q_indices": qi, "q_values": qv,
               "k_row_start": kr, "k_indices": ki, "k_values": kv, "pattern": pats}, args.out, metadata=meta)
    print(f"wrote {args.out}: {n} sequences x {CTX}, L0 q {len(qi) / (n * CTX):.1f} k {len(ki) / (n * CTX):.1f}")


def train(args):
    torch.set_num_threads(2)
    d = load_file(args.data)
    n_train = int(d["q_row_start"].shape[0] - 1) // CTX - args.held_out
    qr, qi, qv, kr, ki, kv = (d[k] for k in ["q_row_start", "q_indices", "q_values", "k_row_start", "k_indices", "k_values"])
    train_rows = n_train * CTX
    if args.table == "live":
        fq = np.unique(qi[:qr[train_rows]]); fk = np.unique(ki[:kr[train_rows]])
    else:
        fq = np.arange(D_HIDDEN); fk = np.arange(D_HIDDEN)
    colq = np.full(D_HIDDEN, -1, np.int64); colq[fq] = np.arange(len(fq))
    colk = np.full(D_HIDDEN, -1, np.int64); colk[fk] = np.arange(len(fk))
    wq_h = torch.tensor(d["w_dec_q"][fq]).view(len(fq), N_HEAD, D_HEAD)
    wk_h = torch.tensor(d["w_dec_k"][fk]).view(len(fk), N_HEAD, D_HEAD)
    M = torch.einsum("ihd,jhd->ijh", wq_h, wk_h) / math.sqrt(D_HEAD)
    B = torch.einsum("hd,jhd->hj", torch.tensor(d["b_dec_q"]).view(N_HEAD, D_HEAD), wk_h) / math.sqrt(D_HEAD)
    pats = torch.tensor(d["pattern"])
    m = torch.ones_like(M, requires_grad=True)
    opt = torch.optim.Adam([m], lr=args.lr)

    def codes_for(rows, idx, val, col, s, count):
        lo, hi = rows[s * CTX], rows[(s + count) * CTX]
        sel = col[idx[lo:hi]] >= 0
        r = np.repeat(np.arange(count * CTX), np.diff(rows[s * CTX:(s + count) * CTX + 1]))[sel]
        out = torch.zeros(count * CTX, int((col >= 0).sum()))
        out[torch.tensor(r), torch.tensor(col[idx[lo:hi]][sel])] = torch.tensor(val[lo:hi][sel])
        return out.view(count, CTX, -1)

    def batch_kl(s, count, mask):
        aq = codes_for(qr, qi, qv, colq, s, count)
        ak = codes_for(kr, ki, kv, colk, s, count)
        W = (M * mask).reshape(M.shape[0], -1)
        u = (aq.reshape(count * CTX, -1) @ W).view(count, CTX, M.shape[1], N_HEAD)
        score = torch.einsum("bpjh,bsj->bhps", u, ak) + torch.einsum("hj,bsj->bhs", B, ak)[:, :, None, :]
        logq = torch.log_softmax(score, -1)
        P = pats[s:s + count]
        kl = (torch.xlogy(P, P) - P * logq).sum()
        return kl, count * N_HEAD * CTX

    rng = np.random.default_rng(0)
    epoch_times, epoch_cpu = [], []
    steps = 0
    for epoch in range(args.epochs):
        t0, c0 = time.time(), time.process_time()
        order = rng.permutation(n_train // args.batch)
        for b in order:
            kl, rows = batch_kl(b * args.batch, args.batch, m)
            loss = kl / rows + args.penalty * torch.sqrt(m + 1e-6).sum()
            opt.zero_grad(); loss.backward(); opt.step()
            with torch.no_grad(): m.clamp_(0, 1)
            steps += 1
            if args.max_steps and steps >= args.max_steps: break
        dt, dc = time.time() - t0, time.process_time() - c0
        if args.max_steps and steps >= args.max_steps:
            scale = (n_train // args.batch) / args.max_steps
            epoch_times.append(dt * scale); epoch_cpu.append(dc * scale)
            break
        epoch_times.append(dt); epoch_cpu.append(dc)
    with torch.no_grad():
        def held(mask):
            tot, rows = 0.0, 0
            for s in range(n_train, n_train + args.held_out, 4):
                c = min(4, n_train + args.held_out - s)
                kl, r = batch_kl(s, c, mask); tot += kl.item(); rows += r
            return tot / rows
        pruned = torch.where(m < args.threshold, torch.zeros_like(m), m)
        lq, lk = np.unique(qi[:qr[train_rows]]), np.unique(ki[:kr[train_rows]])
        live_entries = len(lq) * len(lk) * N_HEAD
        # Entries outside the live features never get KL gradient; count survivors among live ones.
        kept = int((pruned[torch.tensor(colq[lq])][:, torch.tensor(colk[lk])] > 0).sum())
        print(f"peer table={args.table} entries={m.numel()} seconds_per_epoch={np.mean(epoch_times):.3f} "
              f"cpu_seconds_per_epoch={np.mean(epoch_cpu):.3f} "
              f"kl_unmasked={held(torch.ones_like(m)):.4f} kl_trained={held(m):.4f} kl_pruned={held(pruned):.4f} "
              f"kept={kept} masked_live={1 - kept / live_entries:.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate"); g.add_argument("--out", required=True)
    g.add_argument("--train", type=int, default=192); g.add_argument("--held-out", type=int, default=16)
    g.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train"); t.add_argument("--data", required=True)
    t.add_argument("--table", choices=["live", "full"], default="live")
    t.add_argument("--epochs", type=int, default=2); t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-2); t.add_argument("--penalty", type=float, default=2e-6)
    t.add_argument("--threshold", type=float, default=0.5); t.add_argument("--held-out", type=int, default=16)
    t.add_argument("--max-steps", type=int, default=0)
    a = ap.parse_args()
    generate(a) if a.cmd == "generate" else train(a)
