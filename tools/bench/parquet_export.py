#!/usr/bin/env python3
"""Parquet against CSV export of the store benchmark's pair map (issue 19's figure).

Generates the store benchmark's synthetic map (tools/bench/store/bench.py: `large` = 10M pairs
over 32768 × 32768 features and 32 heads, or `small`), imports it with `qkdb import-pairs`, then
times, in one run, `qkdb export --what pairs` (CSV) and `qkdb export --format parquet` of the
same run with the release binary, and prints wall and CPU time, bytes and the load average.
DuckDB then reads the Parquet files and the row count must equal the CSV's. Never run in CI.

usage: tools/bench/parquet_export.py [--size large|small] [--work DIR] [--repeat N]
Needs: numpy, safetensors, duckdb (pip).
"""
import argparse, os, resource, shutil, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "store"))
import bench  # noqa: E402  (the store benchmark's generator, beside this script)


def timed(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        sys.exit(out.stderr)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="large", choices=sorted(bench.SIZES))
    ap.add_argument("--work", default="/tmp/qkdb-parquet-bench")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    store = os.path.join(a.work, f"{a.size}.qkdb")
    if not os.path.exists(store):
        from safetensors.numpy import save_file
        m = bench.generate(*bench.SIZES[a.size])
        coo = os.path.join(a.work, "coo.safetensors")
        save_file(m, coo)
        subprocess.run([bench.QKDB, "import-pairs", "--store", store, "--name", "bench", "--coo", coo], check=True, capture_output=True)
        os.remove(coo)
    csv, pq = os.path.join(a.work, "pairs.csv"), os.path.join(a.work, "parquet")
    rows = []
    for i in range(a.repeat):
        for f in (csv,):
            if os.path.exists(f):
                os.remove(f)
        shutil.rmtree(pq, ignore_errors=True)
        c = timed([bench.QKDB, "export", "--store", store, "--run", "1", "--what", "pairs", "--out", csv])
        p = timed([bench.QKDB, "export", "--store", store, "--run", "1", "--format", "parquet", "--out", pq])
        rows.append((c, p, os.getloadavg()))
        print(f"try {i + 1}: CSV {c[0]:.2f} s wall / {c[1]:.2f} s CPU, Parquet {p[0]:.2f} s wall / {p[1]:.2f} s CPU, load average {os.getloadavg()[0]:.2f}")
    import duckdb
    n_csv = sum(1 for _ in open(csv)) - 1
    n_pq = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pq}/pairs/**/*.parquet', hive_partitioning = true)").fetchall()[0][0]
    assert n_pq == n_csv, (n_pq, n_csv)
    best_c = min(r[0][0] for r in rows); best_p = min(r[1][0] for r in rows)
    cpu_c = min(r[0][1] for r in rows); cpu_p = min(r[1][1] for r in rows)
    b_csv, b_pq = size_of(csv), size_of(pq)
    print(f"\n{a.size}: {n_csv:,} pairs; best of {a.repeat}, load average {min(r[2][0] for r in rows):.2f}–{max(r[2][0] for r in rows):.2f} on {os.cpu_count()} cores")
    print(f"| export | wall s | CPU s | bytes |")
    print(f"|---|---|---|---|")
    print(f"| CSV | {best_c:.2f} | {cpu_c:.2f} | {b_csv:,} |")
    print(f"| Parquet (zstd) | {best_p:.2f} | {cpu_p:.2f} | {b_pq:,} |")
    print(f"| Parquet / CSV | {best_p / best_c:.2f}× | {cpu_p / cpu_c:.2f}× | {b_pq / b_csv:.3f} |")


if __name__ == "__main__":
    main()
