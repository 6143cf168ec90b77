"""`make bench-quality`: regenerate the benchmark images, run every method, write bench/RESULTS.md + results.json.

    .venv/bin/python -m bench.quality [--variants 3] [--no-candidates]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from . import candidates
from .dataset import SEED, BenchSet, generate
from .methods import Method, OnnxEmbedding, PerceptualHash, TinyImage, time_networks
from .metrics import pair_scores, summarise, threshold_at_fpr
from .report import render

BENCH_DIR = Path(__file__).resolve().parents[1]


def evaluate(method: Method, bench: BenchSet) -> dict:
    """All metrics of one method, overall and per transform, plus its score distributions."""
    originals, copies = method.embed(bench.originals), method.embed(bench.copies)
    scores = 0.5 + 0.5 * originals @ copies.T
    per_kind = {}
    for kind in dict.fromkeys(bench.kinds.tolist()):
        keep = bench.kinds == kind
        per_kind[kind] = summarise(scores[:, keep], bench.labels[keep])
    positives, negatives = pair_scores(scores, bench.labels)
    percentiles = [1, 5, 25, 50, 75, 95, 99]
    return {
        "method": method.name,
        "note": method.note,
        "dims": int(copies.shape[1]),
        "ms_per_image": method.ms_per_image,
        "overall": summarise(scores, bench.labels),
        "per_transform": per_kind,
        "calibration": {
            "threshold@1%": threshold_at_fpr(negatives, 0.01),
            "threshold@0.1%": threshold_at_fpr(negatives, 0.001),
            "matching_percentiles": dict(zip(map(str, percentiles), np.percentile(positives, percentiles).tolist(),
                                             strict=True)),
            "unrelated_percentiles": dict(zip(map(str, percentiles), np.percentile(negatives, percentiles).tolist(),
                                              strict=True)),
        },
    }


def methods(workdir: Path, with_candidates: bool) -> list[Method]:
    found: list[Method] = [
        candidates.shipped(),
        candidates.from_spec(candidates.PLAIN, workdir, "reference: plain ImageNet head, average pooled (speed yardstick)"),
        candidates.from_spec(candidates.REFERENCE, workdir, "baseline: the reference product's preprocessing"),
        PerceptualHash("pHash (imagehash, 64 bit)", note="baseline"),
        TinyImage("tiny image 16x16", note="baseline"),
    ]
    if with_candidates:
        found += [candidates.from_spec(spec, workdir, "candidate") for spec in candidates.CANDIDATES]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=3, help="copies per original and transform")
    parser.add_argument("--no-candidates", action="store_true", help="only the shipped model and the baselines")
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    bench = generate(variants=args.variants, out_dir=BENCH_DIR / "out" / "images")
    print(f"{len(bench.originals)} originals, {len(bench.copies)} copies ({time.perf_counter() - start:.0f} s)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        found = methods(Path(tmp), not args.no_candidates)
        for method in found:
            results.append(evaluate(method, bench))
            o = results[-1]["overall"]
            print(f"{method.name:40s} mAP {o['mAP']:.3f} top-1 {o['top1']:.3f} TPR@1% {o['tpr@1%']:.3f}", flush=True)
        time_networks([m for m in found if isinstance(m, OnnxEmbedding)])
        for method, result in zip(found, results, strict=True):
            result["ms_per_image"] = method.ms_per_image
            print(f"{method.name:40s} {method.ms_per_image:.1f} ms")
    record = {"seed": SEED, "variants": args.variants, "originals": bench.names, "copies": len(bench.copies),
              "results": results}
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "RESULTS.md").write_text(render(record))
    print(f"wrote {args.out / 'RESULTS.md'} and results.json ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
