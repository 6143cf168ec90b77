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

n = 1_000_000
d = vectors(n); q = queries(200, n)
truth = exact_top(q, n)
faiss.omp_set_num_threads(2)
h = faiss.IndexHNSWFlat(512, 32, faiss.METRIC_INNER_PRODUCT); h.hnsw.efConstruction = 64
t = time.time(); h.add(d); print('build M32 efC64', round(time.time() - t), 's', flush=True)
faiss.omp_set_num_threads(1)
for ef in (128, 256, 512):
    p = faiss.SearchParametersHNSW(efSearch=ef); ts = []; found = []
    for x in q:
        a = time.perf_counter(); found.append(h.search(x[None], 10, params=p)[1][0]); ts.append(time.perf_counter() - a)
    rec = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    print('ef', ef, 'p50 {:.2f} p95 {:.2f} ms'.format(*tuple(np.percentile(ts, [50, 95]) * 1000)), f'recall {rec:.3f}', flush=True)
