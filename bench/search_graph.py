"""The local store's graph settings at 1,000,000 vectors: a wider FAISS HNSW (M=32, efConstruction=64) than the
one bench/SEARCH.md measured (M=16, efConstruction=40: recall@10 0.77). Prints build time and, per efSearch, the
search p50 / p95 and recall@10 against exact search.

    OMP_WAIT_POLICY=PASSIVE nice -n 15 .venv/bin/python bench/search_graph.py
"""

import sys
import time

sys.path.insert(0, "bench")
import faiss
import numpy as np
from search import exact_top
from search_vectors import queries, vectors

N = 1_000_000


def main() -> None:
    data, asked = vectors(N), queries(200, N)
    truth = exact_top(asked, N)
    faiss.omp_set_num_threads(2)
    graph = faiss.IndexHNSWFlat(512, 32, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = 64
    start = time.time()
    graph.add(data)
    print("build M32 efC64", round(time.time() - start), "s", flush=True)
    faiss.omp_set_num_threads(1)
    for ef in (128, 256, 512):
        params = faiss.SearchParametersHNSW(efSearch=ef)
        times, found = [], []
        for query in asked:
            began = time.perf_counter()
            found.append(graph.search(query[None], 10, params=params)[1][0])
            times.append(time.perf_counter() - began)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        p50, p95 = np.percentile(times, [50, 95]) * 1000
        print(f"ef {ef} p50 {p50:.2f} p95 {p95:.2f} ms recall {recall:.3f}", flush=True)


if __name__ == "__main__":
    main()
