#!/usr/bin/env python3
"""Store benchmark: qkdb's pair-map store against the usual ways to keep a sparse tensor.

Generates skewed synthetic pair maps (power-law feature popularity, a few sink key features
that pair with most query features, Laplace values pruned near zero) with all five pair columns,
imports them with `qkdb import-pairs`, writes the same arrays with each peer, and prints bytes on
disk, write time, warm and cold p50/p99 latency of top-10-by-importance queries by
(head, query feature) and by (head, key feature), and CSV export speed.

Peers (PyPI: duckdb pyarrow tiledb): plain SQLite (composite primary key + reverse index),
DuckDB over Parquet (zstd, delta + byte-stream-split encodings, page index), DuckDB native
tables, TileDB sparse arrays, numpy .npz. Peers use 2 threads.

Cold = the store's files are dropped from the OS page cache (posix_fadvise DONTNEED) before
each query, and the time includes opening the file. Never run in CI.

usage: tools/bench/store/bench.py [--sizes small,large] [--work DIR] [--queries N]
"""
import argparse, csv, json, os, shutil, sqlite3, subprocess, sys, time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
QKDB = os.path.join(ROOT, ".build", "release", "qkdb")
COLS = ["value", "mask", "importance", "mean_contribution", "cooccurrence"]
SIZES = {"small": (2400, 2400, 12, 450_000), "large": (32768, 32768, 32, 10_000_000)}


def generate(dq, dk, nh, target, seed=0):
    """Distinct (head, q, k) coordinates with skewed popularity, plus sink keys; columns as a trained map looks."""
    rng = np.random.default_rng(seed)
    # Popularity: Zipf-like weights (exponent 0.8) over a random permutation of feature ids.
    wq = rng.permutation(1.0 / np.arange(1, dq + 1) ** 0.8); wq /= wq.sum()
    wk = rng.permutation(1.0 / np.arange(1, dk + 1) ** 0.8); wk /= wk.sum()
    sinks = rng.choice(dk, 4, replace=False)
    keys = []
    # Sink key features pair with about half of all query features on every head.
    for h in range(nh):
        for s in sinks:
            q = np.flatnonzero(rng.random(dq) < 0.5)
            keys.append((h * dq + q.astype(np.int64)) * dk + s)
    n = int(target * 1.6)
    h = rng.integers(0, nh, n, dtype=np.int64)
    q = np.searchsorted(np.cumsum(wq), rng.random(n) * 0.999999)
    k = np.searchsorted(np.cumsum(wk), rng.random(n) * 0.999999)
    keys.append((h * dq + q) * dk + k)
    have = np.unique(np.concatenate(keys))
    value = rng.laplace(0, 1, len(have)).astype(np.float32)
    keep = np.abs(value) > 0.05                     # pruned near zero
    have, value = have[keep], value[keep]
    pick = np.sort(rng.choice(len(have), min(target, len(have)), replace=False))
    have, value = have[pick], value[pick]
    n = len(have)
    mask = np.where(rng.random(n) < 0.6, 1.0, rng.uniform(0.05, 1, n)).astype(np.float32)
    importance = (np.abs(value) * rng.exponential(0.01, n)).astype(np.float32)
    mean_contribution = (value * rng.lognormal(0, 0.5, n)).astype(np.float32)
    cooccurrence = (rng.geometric(0.01, n) / 100000.0).astype(np.float32)
    head = (have // (dq * dk)).astype(np.int32); q = ((have // dk) % dq).astype(np.int32); k = (have % dk).astype(np.int32)
    order = rng.permutation(n)                       # any order in: every store sorts for itself
    m = dict(head=head, query_feature=q, key_feature=k, value=value, mask=mask, importance=importance,
             mean_contribution=mean_contribution, cooccurrence=cooccurrence)
    return {c: a[order] for c, a in m.items()}


def evict(*paths):
    for p in paths:
        for root, _, files in (os.walk(p) if os.path.isdir(p) else [("", None, [p])]):
            for f in files:
                fp = os.path.join(root, f)
                if os.path.exists(fp):
                    fd = os.open(fp, os.O_RDONLY)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)


def prefetch(*paths):
    """Reads files fully so they sit in the OS page cache: what "warm" means here (a cold run
    before would otherwise have evicted them)."""
    for p in paths:
        for root, _, files in (os.walk(p) if os.path.isdir(p) else [("", None, [p])]):
            for f in files:
                fp = os.path.join(root, f)
                if os.path.exists(fp):
                    with open(fp, "rb") as fh:
                        while fh.read(1 << 24):
                            pass


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
    return sum(os.path.getsize(p) for p in [path, path + "-wal"] if os.path.exists(p))


def pct(ms):
    a = np.sort(np.array(ms))
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def sorted_arrays(m, lead="query_feature"):
    trail = "key_feature" if lead == "query_feature" else "query_feature"
    o = np.lexsort((m[trail], m[lead], m["head"]))
    return {c: a[o] for c, a in m.items()}


# ---------------------------------------------------------------- peers
class SQLitePeer:
    name = "SQLite (PK + reverse index)"
    def write(self, m, d):
        self.path = os.path.join(d, "pairs.sqlite")
        s = sorted_arrays(m)
        con = sqlite3.connect(self.path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE pairs (head INTEGER, query_feature INTEGER, key_feature INTEGER, value REAL, mask REAL, importance REAL,"
                    " mean_contribution REAL, cooccurrence REAL, PRIMARY KEY (head, query_feature, key_feature)) WITHOUT ROWID")
        rows = zip(*(s[c].tolist() for c in ["head", "query_feature", "key_feature"] + COLS))
        con.executemany("INSERT INTO pairs VALUES (?,?,?,?,?,?,?,?)", rows)
        con.execute("CREATE INDEX pairs_by_key ON pairs (head, key_feature, query_feature)")
        con.commit(); con.execute("PRAGMA wal_checkpoint(TRUNCATE)"); con.close()
        self.files = [self.path]
    def open(self):
        self.con = sqlite3.connect(self.path)
    def query(self, side, h, f):
        col = "query_feature" if side == "query" else "key_feature"
        return self.con.execute(f"SELECT * FROM pairs WHERE head=? AND {col}=? ORDER BY importance DESC LIMIT 10", (h, f)).fetchall()
    def export(self, out):
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh); w.writerow(["head", "query_feature", "key_feature"] + COLS)
            w.writerows(self.con.execute("SELECT * FROM pairs ORDER BY head, query_feature, key_feature"))


class DuckParquetPeer:
    name = "DuckDB over Parquet"
    def write(self, m, d):
        import pyarrow as pa, pyarrow.parquet as pq
        self.path = os.path.join(d, "pairs.parquet")
        s = sorted_arrays(m)
        t = pa.table({c: s[c] for c in ["head", "query_feature", "key_feature"] + COLS})
        enc = {c: "DELTA_BINARY_PACKED" for c in ["head", "query_feature", "key_feature"]}
        enc.update({c: "BYTE_STREAM_SPLIT" for c in COLS})
        pq.write_table(t, self.path, compression="zstd", use_dictionary=False, column_encoding=enc,
                       write_page_index=True, row_group_size=1 << 20, data_page_size=64 << 10)
        self.files = [self.path]
    def open(self):
        import duckdb
        self.con = duckdb.connect(); self.con.execute("SET threads=2")
    def query(self, side, h, f):
        col = "query_feature" if side == "query" else "key_feature"
        return self.con.execute(f"SELECT * FROM read_parquet('{self.path}') WHERE head=? AND {col}=? ORDER BY importance DESC LIMIT 10", [h, f]).fetchall()
    def export(self, out):
        self.con.execute(f"COPY (SELECT * FROM read_parquet('{self.path}')) TO '{out}' (HEADER, DELIMITER ',')")


class DuckNativePeer:
    name = "DuckDB native table"
    def write(self, m, d):
        import duckdb, pyarrow as pa
        self.path = os.path.join(d, "pairs.duckdb")
        s = sorted_arrays(m)
        t = pa.table({c: s[c] for c in ["head", "query_feature", "key_feature"] + COLS})
        con = duckdb.connect(self.path); con.execute("SET threads=2")
        con.register("t", t); con.execute("CREATE TABLE pairs AS SELECT * FROM t"); con.execute("CHECKPOINT"); con.close()
        self.files = [self.path]
    def open(self):
        import duckdb
        self.con = duckdb.connect(self.path, read_only=True); self.con.execute("SET threads=2")
    def query(self, side, h, f):
        col = "query_feature" if side == "query" else "key_feature"
        return self.con.execute(f"SELECT * FROM pairs WHERE head=? AND {col}=? ORDER BY importance DESC LIMIT 10", [h, f]).fetchall()
    def export(self, out):
        self.con.execute(f"COPY pairs TO '{out}' (HEADER, DELIMITER ',')")


class TileDBPeer:
    name = "TileDB sparse array"
    def write(self, m, d):
        import tiledb
        self.path = os.path.join(d, "pairs.tiledb")
        s = sorted_arrays(m)
        nh, dq, dk = int(s["head"].max()) + 1, int(s["query_feature"].max()) + 1, int(s["key_feature"].max()) + 1
        dom = tiledb.Domain(tiledb.Dim(name="head", domain=(0, nh - 1), tile=1, dtype=np.int32),
                            tiledb.Dim(name="query_feature", domain=(0, dq - 1), tile=256, dtype=np.int32),
                            tiledb.Dim(name="key_feature", domain=(0, dk - 1), tile=256, dtype=np.int32))
        flt = tiledb.FilterList([tiledb.ByteShuffleFilter(), tiledb.ZstdFilter(level=6)])
        schema = tiledb.ArraySchema(domain=dom, sparse=True, capacity=4096, cell_order="row-major", tile_order="row-major",
                                    coords_filters=tiledb.FilterList([tiledb.DoubleDeltaFilter(), tiledb.ZstdFilter(level=6)]),
                                    attrs=[tiledb.Attr(c, np.float32, filters=flt) for c in COLS])
        tiledb.Array.create(self.path, schema)
        with tiledb.open(self.path, "w") as A:
            A[s["head"], s["query_feature"], s["key_feature"]] = {c: s[c] for c in COLS}
        tiledb.consolidate(self.path); tiledb.vacuum(self.path)
        self.files = [self.path]
    def open(self):
        import tiledb
        self.A = tiledb.open(self.path, "r", ctx=tiledb.Ctx({"sm.compute_concurrency_level": "2", "sm.io_concurrency_level": "2"}))
    def query(self, side, h, f):
        r = self.A[h, f, :] if side == "query" else self.A[h, :, f]
        o = np.argsort(-r["importance"], kind="stable")[:10]
        return [r[c][o] for c in ["query_feature", "key_feature"] + COLS]
    def export(self, out):
        return None


class NpzPeer:
    name = "numpy .npz (compressed)"
    def write(self, m, d):
        self.path = os.path.join(d, "pairs.npz")
        np.savez_compressed(self.path, **sorted_arrays(m))
        self.files = [self.path]
    def open(self):
        z = np.load(self.path); self.a = {c: z[c] for c in z.files}
        self.key = (self.a["head"].astype(np.int64) << 32) | self.a["query_feature"]
    def query(self, side, h, f):
        if side == "query":   # the one sorted direction: binary search
            lo, hi = np.searchsorted(self.key, [(h << 32) | f, (h << 32) | (f + 1)])
            idx = np.arange(lo, hi)
        else:                 # no index the other way: a scan
            idx = np.flatnonzero((self.a["key_feature"] == f) & (self.a["head"] == h))
        o = idx[np.argsort(-self.a["importance"][idx], kind="stable")[:10]]
        return [self.a[c][o] for c in self.a]
    def export(self, out):
        return None


# ---------------------------------------------------------------- qkdb
def run_qkdb(m, d, queries, args):
    from safetensors.numpy import save_file
    coo = os.path.join(d, "coo.safetensors"); save_file(m, coo)
    store = os.path.join(d, "pairs.qkdb")
    evict(coo)
    t = time.perf_counter()
    out = subprocess.run([QKDB, "import-pairs", "--store", store, "--name", "bench", "--coo", coo] +
                         (["--chunk-nnz", str(args.chunk)] if args.chunk else []) +
                         (["--key-chunk-nnz", str(args.key_chunk)] if args.key_chunk else []), capture_output=True, text=True)
    write_s = time.perf_counter() - t
    if out.returncode: sys.exit(out.stderr)
    res = {"bytes": size_of(store), "write_s": write_s}
    for side in ["query", "key"]:
        qf = os.path.join(d, f"q-{side}.txt")
        with open(qf, "w") as fh:
            fh.write("\n".join(f"{side} {h} {f}" for h, f in queries[side]) + "\n")
        for mode in ["warm", "cold"]:
            if mode == "warm":
                prefetch(store)
            # Store queries use no BLAS: one OpenBLAS thread means no idle worker spinning
            # (sched_yield) for its first ~0.1 s beside the timed queries on a 2-core machine.
            r = subprocess.run([QKDB, "store-bench", "--store", store, "--run", "1", "--queries", qf] + (["--cold"] if mode == "cold" else []),
                               capture_output=True, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
            if r.returncode: sys.exit(r.stderr)
            res[f"{mode}_{side}"] = pct(json.loads(r.stdout)["ms"])
    csv_out = os.path.join(d, "qkdb.csv")
    t = time.perf_counter()
    subprocess.run([QKDB, "export", "--store", store, "--run", "1", "--what", "pairs", "--out", csv_out], check=True, capture_output=True)
    res["csv_mbs"] = os.path.getsize(csv_out) / 1e6 / (time.perf_counter() - t)
    os.remove(csv_out)
    return res


def run_peer(peer, m, d, queries, n_cold):
    res = {"write_s": timed(lambda: peer.write(m, d))}
    res["bytes"] = sum(size_of(f) for f in peer.files)
    peer.open()
    for side in ["query", "key"]:
        prefetch(*peer.files)
        peer.open()
        for h, f in queries[side][:20]:
            peer.query(side, h, f)
        ms = []
        for h, f in queries[side]:
            t = time.perf_counter(); peer.query(side, h, f); ms.append((time.perf_counter() - t) * 1e3)
        res[f"warm_{side}"] = pct(ms)
        ms = []
        for h, f in queries[side][:n_cold]:
            evict(*peer.files)
            t = time.perf_counter(); peer.open(); peer.query(side, h, f); ms.append((time.perf_counter() - t) * 1e3)
        res[f"cold_{side}"] = pct(ms)
    out = os.path.join(d, "peer.csv")
    t = time.perf_counter()
    if peer.export(out) is None and not os.path.exists(out):
        res["csv_mbs"] = None
    else:
        res["csv_mbs"] = os.path.getsize(out) / 1e6 / (time.perf_counter() - t)
        os.remove(out)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--work", default="/tmp/qkdb-store-bench")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=0, help="qkdb --chunk-nnz (0 = default)")
    ap.add_argument("--key-chunk", type=int, default=0, help="qkdb --key-chunk-nnz (0 = default)")
    ap.add_argument("--peers", default="sqlite,parquet,duckdb,tiledb,npz")
    args = ap.parse_args()
    if not os.access(QKDB, os.X_OK):
        sys.exit(f"{QKDB} missing: swift build -c release --product qkdb")
    peers = {"sqlite": SQLitePeer, "parquet": DuckParquetPeer, "duckdb": DuckNativePeer, "tiledb": TileDBPeer, "npz": NpzPeer}
    for size in args.sizes.split(","):
        dq, dk, nh, target = SIZES[size]
        d = os.path.join(args.work, size); shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
        t = time.perf_counter(); m = generate(dq, dk, nh, target)
        n = len(m["head"])
        print(f"\n## {size}: {n:,} pairs, [d_query {dq}, d_key {dk}, n_head {nh}] (generated in {time.perf_counter() - t:.1f} s)", flush=True)
        rng = np.random.default_rng(1)
        pick = rng.integers(0, n, args.queries)
        queries = {"query": [(int(m["head"][i]), int(m["query_feature"][i])) for i in pick],
                   "key": [(int(m["head"][i]), int(m["key_feature"][i])) for i in rng.integers(0, n, args.queries)]}
        results = {"qkdb (both orderings)": run_qkdb(m, d, queries, args)}
        for p in [p for p in args.peers.split(",") if p and p != "none"]:
            cls = peers[p]
            try:
                peer = cls()
                results[cls.name + (" (2 orderings)" if p == "sqlite" else "")] = run_peer(peer, m, d, queries, n_cold=20 if p != "npz" else 3)
            except Exception as e:  # a peer that cannot run here is reported, not fatal
                results[cls.name] = {"error": f"{type(e).__name__}: {e}"}
            print(f"  done: {cls.name}", file=sys.stderr, flush=True)
        print("\n| store | bytes | write s | warm p50/p99 ms by query | warm p50/p99 ms by key | cold p50/p99 ms by query | cold p50/p99 ms by key | CSV MB/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            if "error" in r:
                print(f"| {name} | {r['error']} |||||||"); continue
            f2 = lambda p: f"{p[0]:.3f} / {p[1]:.3f}"
            csvs = f"{r['csv_mbs']:.0f}" if r.get("csv_mbs") else "—"
            print(f"| {name} | {r['bytes'] / 1e6:.1f} MB | {r['write_s']:.1f} | {f2(r['warm_query'])} | {f2(r['warm_key'])} | "
                  f"{f2(r['cold_query'])} | {f2(r['cold_key'])} | {csvs} |")
        ok = {k: v for k, v in results.items() if "error" not in v and not k.startswith("qkdb")}
        q = results["qkdb (both orderings)"]
        smallest = min(ok.items(), key=lambda kv: kv[1]["bytes"]) if ok else None
        if smallest:
            print(f"\nqkdb bytes / smallest peer ({smallest[0]}): {q['bytes'] / smallest[1]['bytes']:.2f}x; "
                  f"warm p50 query/key {q['warm_query'][0]:.3f}/{q['warm_key'][0]:.3f} ms; cold p50 {q['cold_query'][0]:.3f}/{q['cold_key'][0]:.3f} ms")
        with open(os.path.join(args.work, f"results-{size}.json"), "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
