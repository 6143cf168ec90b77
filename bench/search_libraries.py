"""The small comparison behind the local store's choice of vector library: FAISS (faiss-cpu) against USearch, HNSW
graphs of the same size on the same synthetic embeddings (bench/search_vectors.py), each with an exact baseline.

    nice -n 15 .venv/bin/python bench/search_libraries.py [--n 100000] [--queries 500]

Prints build time, resident-memory growth, single-query p50/p95 and recall@10 against exact search, and whether the
index can delete a vector (the store upserts and deletes by id).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_vectors import queries, vectors

K = 10


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def timed_queries(search, qs: np.ndarray) -> tuple[np.ndarray, float, float]:
    found, times = [], []
    for q in qs:
        start = time.perf_counter()
        found.append(search(q))
        times.append((time.perf_counter() - start) * 1000)
    return np.array(found), float(np.percentile(times, 50)), float(np.percentile(times, 95))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    data, qs = vectors(args.n), queries(args.queries, args.n)
    truth = np.argsort(-(qs @ data.T), axis=1)[:, :K]
    print(f"{args.n:,} vectors x {data.shape[1]}, {len(qs)} queries, k={K}, one thread each "
          f"(`bench/search_libraries.py --n {args.n} --queries {args.queries}`)\n")
    print("| library | index | build s | RSS +MB | p50 ms | p95 ms | recall@10 | delete |")
    print("|---|---|---|---|---|---|---|---|")

    def row(lib: str, kind: str, build, search, delete: str) -> None:
        before = rss_mb()
        start = time.perf_counter()
        index = build()
        built = time.perf_counter() - start
        grown = rss_mb() - before
        found, p50, p95 = timed_queries(lambda q: search(index, q), qs)
        print(f"| {lib} | {kind} | {built:.1f} | {grown:.0f} | {p50:.2f} | {p95:.2f} | {recall(found, truth):.3f} "
              f"| {delete} |", flush=True)

    keys = np.arange(args.n, dtype=np.uint64)
    row("numpy", "exact matmul", lambda: data, lambda d, q: np.argpartition(-(d @ q), K)[:K], "n/a")

    import faiss

    faiss.omp_set_num_threads(1)

    def faiss_hnsw(m: int, ef: int):
        def build():
            index = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            index.add(data)
            index.hnsw.efSearch = ef
            return index
        return build

    row("faiss", "flat (exact)", lambda: _flat(faiss, data),
        lambda i, q: i.search(q[None], K)[1][0], "yes (remove_ids)")
    row("faiss", "HNSW M=16 efC=40 ef=256", faiss_hnsw(16, 256), lambda i, q: i.search(q[None], K)[1][0],
        "no (filtered)")

    from usearch.index import Index

    def usearch_hnsw(dtype: str):
        def build():
            index = Index(ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=16, expansion_add=64,
                          expansion_search=256)
            index.add(keys, data, threads=1)
            return index
        return build

    for dtype in ("f32", "f16", "i8"):
        row("usearch", f"HNSW {dtype} M=16 efC=64 ef=256", usearch_hnsw(dtype), lambda i, q: i.search(q, K).keys,
            "yes")


def _flat(faiss, data: np.ndarray):
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    return index


if __name__ == "__main__":
    main()
