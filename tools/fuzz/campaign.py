#!/usr/bin/env python3
"""Fuzzes qkdb's readers through the real binary: mutated stores (byte and row level), model
folders (safetensors bytes and config.json values) and GGUF files. Every case runs the commands a
user would, and is a failure if qkdb crashes (a signal, a Swift trap), takes over 10 s or 1 GB,
prints an error of more than one line, or — on a damaged store — answers a query (exit 0) with
something other than the pristine store's answer.

    tools/fuzz/campaign.py --cases 10000           # the full campaign (per reader), README figures
    tools/fuzz/campaign.py --cases 60 --store-cases 20   # the sample qkdbTests.FuzzSampleTests runs

Prints one JSON summary line; exits 1 if any case failed (the first few are kept under --work).
Needs only Python's standard library (sqlite3 included).
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIME_LIMIT = 10.0
MEMORY_LIMIT_KB = 1 << 20   # 1 GB of resident memory


def run(qkdb, args, cwd):
    """(status, stdout, stderr, seconds, peak RSS in KB); status < 0: killed by that signal."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([qkdb] + args, cwd=cwd, stdout=out, stderr=err)
        killer = threading.Timer(TIME_LIMIT * 3, p.kill)
        killer.start()
        _, status, usage = os.wait4(p.pid, 0)   # wait4: this child's own peak memory
        killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, out.read(), err.read(), time.monotonic() - started, usage.ru_maxrss


class Campaign:
    def __init__(self, qkdb, work, seed):
        self.qkdb, self.work, self.rng = qkdb, work, random.Random(seed)
        self.counts = {}
        self.failures = []

    def check(self, reader, case, args, cwd, pristine=None):
        """Runs one command on one mutated input; returns its stdout when it answered."""
        status, out, err, seconds, rss = run(self.qkdb, args, cwd)
        problem = None
        text = err.decode("utf-8", "replace")
        if status < 0 or "Fatal error" in text or "Stack dump" in text:
            problem = f"crash (status {status})"
        elif seconds > TIME_LIMIT:
            problem = f"slow ({seconds:.1f} s)"
        elif rss > MEMORY_LIMIT_KB:
            problem = f"memory ({rss // 1024} MB)"
        elif status != 0 and len([l for l in text.splitlines() if l.strip()]) != 1:
            problem = f"error of {len(text.splitlines())} lines, {len(err)} bytes"
        elif status == 0 and pristine is not None and out != pristine:
            problem = "a different answer without an error"
        c = self.tally(reader)
        c["runs"] += 1
        if c["runs"] % 200 == 0:   # a long campaign shows where it stands
            with open(os.path.join(self.work, "progress.json"), "w") as f:
                json.dump(self.counts, f)
        c["max_seconds"] = max(c["max_seconds"], round(seconds, 3))
        c["max_rss_mb"] = max(c["max_rss_mb"], rss // 1024)
        if status != 0:
            c["errors"] += 1
        if problem:
            key = {"c": "crashes", "s": "slow", "m": "over_memory", "e": "multi_line_errors", "a": "wrong_answers"}[problem[0]]
            c[key] += 1
            if len(self.failures) < 20:
                keep = os.path.join(self.work, f"failure-{len(self.failures)}")
                shutil.copytree(case, keep) if os.path.isdir(case) else shutil.copy(case, keep)
                self.failures.append({"reader": reader, "problem": problem, "args": args, "kept": keep, "stderr": text[:300]})
        return out if status == 0 else None

    def tally(self, reader):
        return self.counts.setdefault(reader, {"cases": 0, "runs": 0, "crashes": 0, "slow": 0, "over_memory": 0, "multi_line_errors": 0,
                                               "wrong_answers": 0, "errors": 0, "max_seconds": 0.0, "max_rss_mb": 0})

    # --- stores -----------------------------------------------------------------------------

    def pristine_store(self):
        """A sealed store with pairs (two heads), feature statistics and a sink, made by qkdb."""
        d = os.path.join(self.work, "pristine")
        os.makedirs(d)
        coo = os.path.join(d, "coo.safetensors")
        rng = random.Random(5)
        rows = [(h, q, k) for h in range(2) for q in range(12) for k in range(12) if (h * 31 + q * 7 + k * 3) % 4 == 0]
        cols = {"head": ("I32", [r[0] for r in rows]), "query_feature": ("I32", [r[1] for r in rows]),
                "key_feature": ("I32", [r[2] for r in rows]), "value": ("F32", [rng.uniform(-3, 3) for _ in rows]),
                "importance": ("F32", [rng.uniform(0, 1) for _ in rows])}
        write_safetensors(coo, cols)
        store = os.path.join(d, "s.qkdb")
        for name in ["m", "seal"]:
            subprocess.run([self.qkdb, "import-pairs", "--store", store, "--name", name, "--coo", coo, "--chunk-nnz", "16", "--key-chunk-nnz", "12"],
                           check=True, stdout=subprocess.DEVNULL)
            if name == "m":
                db = sqlite3.connect(store)
                db.executemany("INSERT INTO features (run_id, side, idx, alive, density, bos_fraction) VALUES (1, ?, ?, 1, ?, ?)",
                               [(s, i, 0.1 + i / 100, 0.95 if (s == "key" and i in (3, 5)) else 0.1) for s in ("query", "key") for i in range(12)])
                db.commit()
                db.close()
        # The second import re-sealed the store: its manifests now cover the features rows too.
        return store

    STORE_QUERIES = [
        ["runs", "--format", "csv"],
        ["pairs", "--run", "1", "--query-feature", "3", "--format", "csv"],
        ["pairs", "--run", "1", "--key-feature", "5", "--top", "0", "--format", "csv"],
        ["pairs", "--run", "1", "--head", "1", "--query-feature", "7", "--format", "csv"],
        ["sinks", "--run", "1", "--format", "csv"],
        ["feature", "--run", "1", "--side", "key", "--index", "3", "--format", "csv"],
        ["export", "--run", "1", "--what", "pairs", "--out", "-"],
        ["export", "--run", "1", "--what", "features", "--out", "-"],
    ]

    def mutate_store_bytes(self, path):
        data = bytearray(open(path, "rb").read())
        kind = self.rng.choice(["flip", "flip", "range", "truncate", "zero-page"])
        if kind == "flip":
            for _ in range(self.rng.randint(1, 8)):
                i = self.rng.randrange(len(data))
                data[i] ^= 1 << self.rng.randrange(8)
        elif kind == "range":
            i = self.rng.randrange(len(data))
            n = self.rng.randint(1, 64)
            data[i:i + n] = bytes(self.rng.randrange(256) for _ in range(min(n, len(data) - i)))
        elif kind == "truncate":
            data = data[:self.rng.randrange(len(data))]
        else:
            page = 32768
            p = self.rng.randrange(max(1, len(data) // page))
            data[p * page:(p + 1) * page] = bytes(min(page, len(data) - p * page))
        open(path, "wb").write(data)

    def mutate_store_rows(self, path):
        db = sqlite3.connect(path)
        tables = ["runs", "pair_maps", "pair_chunks", "features", "examples", "vocabulary", "tensors", "sequences", "meta"]
        for _ in range(20):   # a mutation the schema's constraints accept
            table = self.rng.choice(tables)
            rows = db.execute(f"SELECT rowid FROM {table}").fetchall()
            action = self.rng.choice(["update", "update", "update", "delete", "drop", "swap"])
            try:
                if action == "drop":
                    db.execute(f"DROP TABLE {table}")
                elif not rows:
                    continue
                elif action == "delete":
                    db.execute(f"DELETE FROM {table} WHERE rowid = ?", self.rng.choice(rows))
                else:
                    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
                    col = self.rng.choice(cols)
                    if action == "swap" and len(rows) > 1:
                        a, b = self.rng.sample(rows, 2)
                        va = db.execute(f"SELECT {col} FROM {table} WHERE rowid = ?", a).fetchone()[0]
                        vb = db.execute(f"SELECT {col} FROM {table} WHERE rowid = ?", b).fetchone()[0]
                        db.execute(f"UPDATE {table} SET {col} = ? WHERE rowid = ?", (vb, a[0]))
                        db.execute(f"UPDATE {table} SET {col} = ? WHERE rowid = ?", (va, b[0]))
                    else:
                        old = db.execute(f"SELECT {col} FROM {table} WHERE rowid = ?", self.rng.choice(rows)).fetchone()[0]
                        db.execute(f"UPDATE {table} SET {col} = ? WHERE rowid = ?", (self.hostile_like(old), self.rng.choice(rows)[0]))
                db.commit()
                break
            except sqlite3.Error:
                db.rollback()
        db.close()

    def hostile_like(self, old):
        r = self.rng
        if isinstance(old, int):
            return r.choice([old + 1, old - 1, -old, 0, -1, 2 ** 31, 2 ** 62, r.randrange(-100, 100)])
        if isinstance(old, float):
            return r.choice([old * 2, -old, 0.0, 1e300, float("inf"), float("nan"), 1.0])
        if isinstance(old, str):
            if old.startswith("[") or old.startswith("{"):
                return r.choice([old[::-1], old.replace("1", "9"), "[]", "{}", '["value","value"]', '["mask","importance"]', old[:-1] + ',"x"]' if old.endswith("]") else old])
            return r.choice(["", old + "x", old[::-1], "\n" * 3, "x" * 5000])
        if isinstance(old, bytes):
            b = bytearray(old)
            if b:
                b[r.randrange(len(b))] ^= 0xFF
            return bytes(b)
        return r.choice([0, "", None, 1.5])

    def fuzz_stores(self, n):
        pristine = self.pristine_store()
        cwd = os.path.dirname(pristine)
        answers = [run(self.qkdb, q[:1] + ["--store", pristine] + q[1:], cwd)[1] for q in self.STORE_QUERIES]
        for i in range(n):
            case = os.path.join(self.work, "store-case")
            shutil.rmtree(case, ignore_errors=True)
            os.makedirs(case)
            path = os.path.join(case, "s.qkdb")
            shutil.copy(pristine, path)
            (self.mutate_store_bytes if i % 2 == 0 else self.mutate_store_rows)(path)
            self.tally("store")["cases"] += 1
            self.check("store", case, ["verify", "--store", path], case)
            for q, want in zip(self.STORE_QUERIES, answers):
                self.check("store", case, q[:1] + ["--store", path] + q[1:], case, pristine=want)

    # --- model folders (safetensors + config.json) and GGUF files ------------------------------

    def fuzz_models(self, n):
        source = os.path.join(ROOT, "Tests/Fixtures/models/tiny-gpt2")
        for i in range(n):
            case = os.path.join(self.work, "model-case")
            shutil.rmtree(case, ignore_errors=True)
            shutil.copytree(source, case)
            if i % 2 == 0:
                self.mutate_safetensors(os.path.join(case, "model.safetensors"))
            else:
                self.mutate_config(os.path.join(case, "config.json"))
            self.tally("safetensors")["cases"] += 1
            self.check("safetensors", case, ["harvest", "--model", case, "--layer", "0", "--text", "the cat sat", "--out", os.path.join(case, "h.safetensors")], case)

    def mutate_safetensors(self, path):
        data = bytearray(open(path, "rb").read())
        (n,) = struct.unpack("<Q", data[:8])
        r = self.rng
        kind = r.choice(["header-byte", "header-byte", "length", "number", "truncate"])
        if kind == "header-byte":
            for _ in range(r.randint(1, 4)):
                i = r.randrange(8, 8 + n)
                data[i] = r.choice([ord(c) for c in '0123456789[]{},:"-e.x '] + [r.randrange(256)])
        elif kind == "length":
            data[:8] = struct.pack("<Q", r.choice([n - 1, n + 1, n - 8, n + 8, 0, 2 ** 63, len(data)]))
        elif kind == "number":
            header = data[8:8 + n].decode("utf-8", "replace")
            digits = [j for j, ch in enumerate(header) if ch.isdigit()]
            j = r.choice(digits)
            new = header[:j] + r.choice(["18446744073709551616", "4611686018427387904", "-1", "2147483648,2147483648", "true", "1e30"]) + header[j + 1:]
            data = data[:8] + new.encode() + data[8 + n:]
            data[:8] = struct.pack("<Q", len(new.encode()))
        else:
            data = data[:r.randrange(len(data))]
        open(path, "wb").write(data)

    def mutate_config(self, path):
        config = json.load(open(path))
        r = self.rng
        key = r.choice(sorted(config.keys()) + ["n_layer", "n_head", "n_embd", "layer_norm_epsilon", "vocab_size", "n_positions"])
        config[key] = r.choice([-1, 0, 1, 7, 10 ** 9, 2 ** 64 + 1, True, False, None, "x", 1.5, 1e308, -1e-5, [], {}])
        json.dump(config, open(path, "w"))

    def fuzz_gguf(self, n):
        # Half the cases mutate a complete tiny Llama (loader, tokenizer and forward pass all run
        # on what survives), half the metadata/type fixture.
        tiny = tiny_llama_gguf()
        path = os.path.join(self.work, "tiny.gguf")
        open(path, "wb").write(tiny)
        status, _, err, _, _ = run(self.qkdb, ["harvest", "--model", path, "--layer", "0", "--text", "hi", "--out", os.path.join(self.work, "tiny-h.safetensors")], self.work)
        if status != 0:
            sys.exit(f"the tiny Llama GGUF does not load: {err.decode()}")
        types = bytearray(open(os.path.join(ROOT, "Tests/Fixtures/llama/gguf_types.gguf"), "rb").read())
        for i in range(n):
            base = tiny if i % 2 == 0 else types
            case = os.path.join(self.work, "gguf-case")
            shutil.rmtree(case, ignore_errors=True)
            os.makedirs(case)
            data = bytearray(base)
            r = self.rng
            kind = r.choice(["byte", "byte", "u64", "truncate"])
            # Mostly the header (where the parsing is), sometimes anywhere (tensor table, data).
            reach = len(data) if r.random() < 0.3 else min(len(data), 2048)
            if kind == "byte":
                for _ in range(r.randint(1, 4)):
                    data[r.randrange(reach)] = r.randrange(256)
            elif kind == "u64":
                at = r.randrange(0, reach - 8)
                data[at:at + 8] = struct.pack("<Q", r.choice([2 ** 63, 2 ** 32, 10 ** 9, 65537, len(data), 0]))
            else:
                data = data[:r.randrange(len(data))]
            path = os.path.join(case, "m.gguf")
            open(path, "wb").write(data)
            self.tally("gguf")["cases"] += 1
            self.check("gguf", case, ["harvest", "--model", path, "--layer", "0", "--text", "hi", "--out", os.path.join(case, "h.safetensors")], case)


def tiny_llama_gguf():
    """A one-layer Llama (d 16, 2 heads, FFN 32) with a 256-token byte-level vocabulary, as GGUF v3."""
    rng = random.Random(3)

    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def kv(key, tag, payload):
        return s(key) + struct.pack("<I", tag) + payload

    # GPT-2's byte-to-unicode table: every byte is one token.
    visible = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table, extra = {}, 0
    for b in range(256):
        if b in visible:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    tokens = [table[b] for b in range(256)]
    meta = [
        kv("general.architecture", 8, s("llama")),
        kv("llama.block_count", 4, struct.pack("<I", 1)),
        kv("llama.embedding_length", 4, struct.pack("<I", 16)),
        kv("llama.attention.head_count", 4, struct.pack("<I", 2)),
        kv("llama.attention.head_count_kv", 4, struct.pack("<I", 2)),
        kv("llama.feed_forward_length", 4, struct.pack("<I", 32)),
        kv("llama.context_length", 4, struct.pack("<I", 64)),
        kv("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
        kv("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
        kv("tokenizer.ggml.model", 8, s("gpt2")),
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(tokens)) + b"".join(s(t) for t in tokens)),
        kv("tokenizer.ggml.merges", 9, struct.pack("<IQ", 8, 0)),
        kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
    ]
    d, ff, vocab = 16, 32, 256
    shapes = [("token_embd.weight", [vocab, d]), ("output_norm.weight", [d]), ("blk.0.attn_norm.weight", [d]),
              ("blk.0.attn_q.weight", [d, d]), ("blk.0.attn_k.weight", [d, d]), ("blk.0.attn_v.weight", [d, d]),
              ("blk.0.attn_output.weight", [d, d]), ("blk.0.ffn_norm.weight", [d]), ("blk.0.ffn_gate.weight", [ff, d]),
              ("blk.0.ffn_up.weight", [ff, d]), ("blk.0.ffn_down.weight", [d, ff])]
    infos, blobs, offset = [], [], 0
    for name, shape in shapes:
        count = 1
        for x in shape:
            count *= x
        values = [1.0] * count if name.endswith("norm.weight") else [rng.gauss(0, 0.2) for _ in range(count)]
        blob = struct.pack("<%df" % count, *values)
        infos.append(s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", x) for x in reversed(shape)) + struct.pack("<IQ", 0, offset))
        blob += b"\0" * (-len(blob) % 32)
        blobs.append(blob)
        offset += len(blob)
    out = b"GGUF" + struct.pack("<IQQ", 3, len(shapes), len(meta)) + b"".join(meta) + b"".join(infos)
    out += b"\0" * (-len(out) % 32)
    return out + b"".join(blobs)


def write_safetensors(path, cols):
    header, blobs, offset = {}, [], 0
    for name, (dtype, values) in cols.items():
        b = struct.pack("<" + ("i" if dtype == "I32" else "f") * len(values), *values)
        header[name] = {"dtype": dtype, "shape": [len(values)], "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qkdb", default=os.path.join(ROOT, ".build/debug/qkdb"))
    ap.add_argument("--cases", type=int, default=10000, help="cases per model/GGUF reader (and per store, unless --store-cases)")
    ap.add_argument("--store-cases", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="qkdb-fuzz-")
    os.makedirs(work, exist_ok=True)
    c = Campaign(a.qkdb, work, a.seed)
    started = time.monotonic()
    c.fuzz_gguf(a.cases)
    c.fuzz_models(a.cases)
    c.fuzz_stores(a.cases if a.store_cases is None else a.store_cases)
    bad = sum(v["crashes"] + v["slow"] + v["over_memory"] + v["multi_line_errors"] + v["wrong_answers"] for v in c.counts.values())
    print(json.dumps({"seconds": round(time.monotonic() - started, 1), "readers": c.counts, "failures": c.failures, "work": work}))
    if not bad and a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
