"""`make bench-quality`: build the corpus sets, run every method on validation and test, write bench/RESULTS.md.

    .venv/bin/python -m bench.quality [--splits validation test]

Thresholds are calibrated on validation and checked on test (how many unrelated test pairs they let through);
`duplicates` is measured on the test split with planted copies (bench/quality/duplicates_bench.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from . import candidates
from .corpus import CORPUS_DIR
from .corpus_set import PLAN, SET_SEED, load_set, sources_of
from .dataset import BenchSet
from .duplicates_bench import measure_duplicates
from .methods import Method, OnnxEmbedding, PerceptualHash, TinyImage, time_networks
from .metrics import pair_scores, summarise, threshold_at_fpr
from .report import render

BENCH_DIR = Path(__file__).resolve().parents[1]
PERCENTILES = [1, 5, 25, 50, 75, 95, 99]


def embed(method: Method, bench: BenchSet, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The method's vectors of the originals and copies; cached by method, model file and set content, so a rerun
    after a model change embeds with the new model only."""
    if cache is None:
        return method.embed(bench.originals), method.embed(bench.copies)
    digest = hashlib.sha256(method.name.encode())
    if isinstance(method, OnnxEmbedding):
        digest.update(method.path.read_bytes())
    for data in (bench.originals[0], bench.copies[-1]):
        digest.update(data)
    digest.update(str((len(bench.originals), len(bench.copies))).encode())
    path = cache / f"{digest.hexdigest()[:24]}.npz"
    if path.exists():
        with np.load(path) as saved:
            method.ms_per_image = float(saved["ms"])
            return saved["originals"], saved["copies"]
    originals, copies = method.embed(bench.originals), method.embed(bench.copies)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, originals=originals, copies=copies, ms=method.ms_per_image)
    return originals, copies


def evaluate(method: Method, bench: BenchSet, cache: Path | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """All metrics of one method, overall and per transform, its score distributions; plus the copies' vectors."""
    originals, copies = embed(method, bench, cache)
    scores = 0.5 + 0.5 * originals @ copies.T
    per_kind = {}
    for kind in sorted(set(bench.kinds.tolist())):
        keep = bench.kinds == kind
        per_kind[kind] = summarise(scores[:, keep], bench.labels[keep])
    positives, negatives = pair_scores(scores, bench.labels)
    result = {
        "overall": summarise(scores, bench.labels),
        "per_transform": per_kind,
        "calibration": {
            "threshold@1%": threshold_at_fpr(negatives, 0.01),
            "threshold@0.1%": threshold_at_fpr(negatives, 0.001),
            "unrelated_pairs": len(negatives),
            "matching_percentiles": dict(zip(map(str, PERCENTILES), np.percentile(positives, PERCENTILES).tolist(),
                                             strict=True)),
            "unrelated_percentiles": dict(zip(map(str, PERCENTILES), np.percentile(negatives, PERCENTILES).tolist(),
                                              strict=True)),
        },
    }
    return result, originals, copies


def _scores(vectors: tuple[np.ndarray, np.ndarray], bench: BenchSet) -> tuple[np.ndarray, np.ndarray]:
    originals, copies = vectors
    return 0.5 + 0.5 * originals @ copies.T, bench.labels


def transfer(positives: np.ndarray, negatives: np.ndarray, thresholds: dict[str, float]) -> dict:
    """The validation thresholds applied to another split: its false- and true-positive rates there."""
    return {name: {"threshold": t, "fpr": float(np.mean(negatives > t)), "tpr": float(np.mean(positives > t))}
            for name, t in thresholds.items()}


def methods(workdir: Path) -> list[Method]:
    return [
        candidates.shipped(),
        candidates.v3(workdir),
        candidates.from_spec(candidates.PLAIN, workdir, "baseline: plain ImageNet Lite0, short side 224, centre crop, "
                             "1280-d average pooled (speed yardstick)", centre_crop=True),
        candidates.from_spec(candidates.REFERENCE, workdir, "baseline: the reference product's preprocessing"),
        PerceptualHash("pHash (imagehash, 64 bit)", note="baseline"),
        TinyImage("tiny image 16x16", note="baseline"),
    ]


def run(sets: dict[str, BenchSet], found: list[Method], sources: dict[str, list[str]],
        cache: Path | None = None) -> dict:
    """Every method on every split ("validation" and "test"); the first method is the one the targets judge."""
    start = time.perf_counter()
    record: dict = {"seed": SET_SEED, "splits": {}, "results": []}
    for name, bench in sets.items():
        record["splits"][name] = {"originals": len(bench.originals), "copies": len(bench.copies),
                                  "sources": sorted(set(sources[name]))}
    for method in found:
        entry: dict = {"method": method.name, "note": method.note}
        vectors = {}
        for name, bench in sets.items():
            result, originals, copies = evaluate(method, bench, cache)
            entry[name] = result
            vectors[name] = (originals, copies)
            o = result["overall"]
            print(f"{method.name:40s} {name:10s} mAP {o['mAP']:.3f} top-1 {o['top1']:.3f} "
                  f"TPR@1% {o['tpr@1%']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        cal = entry["validation"]["calibration"]
        thresholds = {"fpr_0.01": cal["threshold@1%"], "fpr_0.001": cal["threshold@0.1%"]}
        originals, copies = vectors["test"]
        positives, negatives = pair_scores(0.5 + 0.5 * originals @ copies.T, sets["test"].labels)
        entry["test"]["transfer"] = transfer(positives, negatives, thresholds)
        entry["dims"] = int(copies.shape[1])
        if method is found[0] or method.name.startswith("v3"):
            entry["duplicates"] = measure_duplicates(sets["test"], originals, copies, thresholds["fpr_0.001"])
            # An album of N images has N^2/2 pairs: what a far stricter threshold (1 in 100,000 unrelated
            # validation pairs, about 20 of them) would give instead.
            strict = threshold_at_fpr(pair_scores(*_scores(vectors["validation"], sets["validation"]))[1], 1e-5)
            entry["duplicates_strict"] = measure_duplicates(sets["test"], originals, copies, strict)
            print(f"{method.name:40s} duplicates {entry['duplicates']} strict {entry['duplicates_strict']}",
                  flush=True)
        record["results"].append(entry)
    networks = [m for m in found if isinstance(m, OnnxEmbedding)]
    if networks:
        time_networks(networks)
    for method, entry in zip(found, record["results"], strict=True):
        entry["ms_per_image"] = method.ms_per_image
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH_DIR)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    sets = {name: load_set(name) for name in PLAN}
    for name, bench in sets.items():
        print(f"{name}: {len(bench.originals)} originals, {len(bench.copies)} copies "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        record = run(sets, methods(Path(tmp)), {name: sources_of(name) for name in PLAN}, CORPUS_DIR / "vectors")
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "RESULTS.md").write_text(render(record))
    print(f"wrote {args.out / 'RESULTS.md'} and results.json ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
