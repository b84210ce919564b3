#!/usr/bin/env python3
"""Reads one dense tensor out of a .qkdb store with nothing but sqlite3, zstandard and numpy,
following the blob encodings documented at the top of schema/store.sql (zstd frame, byte
shuffle, checksum). A reference for readers in other languages, and the test that the schema
text says enough: QKStoreTests.SchemaTests runs it against a store qkdb wrote.

usage: read_tensor.py STORE RUN_ID NAME   -> prints {"shape": [...], "values": [...]} as JSON
"""
import json
import sqlite3
import sys

import numpy as np
import zstandard

MASK = (1 << 64) - 1
P = 0x9E3779B97F4A7C15


def mix(h, w):
    x = ((h ^ w) * P) & MASK
    return x ^ (x >> 29)


class Checksum:
    def __init__(self):
        self.lanes = [0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89]
        self.length = 0

    def add(self, data):
        n = len(data)
        self.length = (self.length + n) & MASK
        a, b, c, d = self.lanes
        i = 0
        while i + 32 <= n:
            w = [int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little") for k in range(4)]
            a, b, c, d = mix(a, w[0]), mix(b, w[1]), mix(c, w[2]), mix(d, w[3])
            i += 32
        while i + 8 <= n:
            a = mix(a, int.from_bytes(data[i:i + 8], "little"))
            i += 8
        tail = int.from_bytes(data[i:], "little")
        b = mix(b, tail ^ ((n << 56) & MASK))
        self.lanes = [a, b, c, d]

    def value(self):
        a, b, c, d = self.lanes
        h = mix(mix(mix(mix(self.length, a), b), c), d)
        h ^= h >> 32
        return h - (1 << 64) if h >= 1 << 63 else h   # SQLite stores it signed


def unshuffle(raw, width, dtype):
    n = len(raw) // width
    return np.frombuffer(raw, np.uint8).reshape(width, n).T.copy().view(dtype).reshape(-1)


def read_tensor(store, run, name):
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    row = db.execute("SELECT dtype, shape, checksum, data FROM tensors WHERE run_id = ? AND name = ?", (run, name)).fetchone()
    if row is None:
        sys.exit(f"{store}: run {run} has no tensor {name!r}")
    dtype, shape, checksum, data = row
    assert dtype == "f32", dtype
    c = Checksum()
    c.add(data)
    if c.value() != checksum:
        sys.exit(f"{store}: tensor {name!r}: checksum mismatch ({c.value()} != {checksum})")
    shape = json.loads(shape)
    raw = zstandard.ZstdDecompressor().decompress(data)
    values = unshuffle(raw, 4, "<f4")
    assert values.size == int(np.prod(shape, dtype=np.int64)), (values.size, shape)
    return shape, values


if __name__ == "__main__":
    shape, values = read_tensor(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    print(json.dumps({"shape": shape, "values": [float(v) for v in values]}))
