"""Benchmark sets drawn from the development corpus (corpus.py): the validation and test splits' originals and
their seeded copies, written once under CORPUS_DIR/sets/ and read back as a BenchSet.

Each original gets `copies` copies; the transform of each copy cycles through every kind in a seeded order, so each
kind is measured on about the same number of originals. Seeds differ per split and from the training views
(model/train.py), so no copy measured here was ever a training view.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from . import hygiene
from .corpus import CORPUS_DIR, Entry, load_corpus, split
from .dataset import COPY_JPEG_QUALITY, BenchSet
from .transforms import ALL_TRANSFORMS

SET_SEED = 20261201
# Originals per split and copies per original: test ranks each copy among >= 1,000 originals; validation gives
# >= 1 M unrelated (original, copy) pairs for the thresholds.
PLAN = {"validation": (1000, 2), "test": (1200, 3)}


def choose(entries: list[Entry], count: int, seed: int) -> list[Entry]:
    """`count` originals, the same share from every source of the split, in a seeded order."""
    by_source: dict[str, list[Entry]] = {}
    for e in entries:
        by_source.setdefault(e.source, []).append(e)
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(len(v))) for v in by_source.values()]
    picked: list[Entry] = []
    while len(picked) < count and any(pools):
        for pool, members in zip(pools, by_source.values(), strict=True):
            if pool and len(picked) < count:
                picked.append(members[pool.pop(0)])
    return picked


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": COPY_JPEG_QUALITY} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _make(job: tuple[str, int, list[str], int]) -> tuple[bytes, list[bytes]]:
    path, index, kinds, seed = job
    image = Entry("", "", path).load()
    copies = [_encode(ALL_TRANSFORMS[kind](image, np.random.default_rng([seed, index, k])), "JPEG")
              for k, kind in enumerate(kinds)]
    return _encode(image, "PNG"), copies


def kinds_for(count: int, copies: int, seed: int) -> list[list[str]]:
    names = list(ALL_TRANSFORMS)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    return [[order[(i * copies + k) % len(order)] for k in range(copies)] for i in range(count)]


def build_set(name: str, workers: int = 2) -> Path:
    count, copies = PLAN[name]
    seed = SET_SEED + 1 + list(PLAN).index(name)
    out = CORPUS_DIR / "sets" / name
    done = out / "set.json"
    if done.exists():
        return out
    originals = choose(split(load_corpus(), name), count, seed)
    kinds = kinds_for(len(originals), copies, seed)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(e.path, i, k, seed) for i, (e, k) in enumerate(zip(originals, kinds, strict=True))]
    records = []
    with ProcessPoolExecutor(workers) as pool:
        for (original, made), entry, i, ks in zip(pool.map(_make, jobs, chunksize=8), originals, range(len(jobs)),
                                                  kinds, strict=True):
            (out / f"{i:05d}.png").write_bytes(original)
            for k, data in zip(ks, made, strict=True):
                (out / f"{i:05d}_{k}.jpg").write_bytes(data)
            records.append({"source": entry.source, "path": entry.path, "kinds": ks})
    done.write_text(json.dumps({"seed": seed, "originals": records}, indent=0))
    return out


def load_set(name: str) -> BenchSet:
    out = build_set(name)
    record = json.loads((out / "set.json").read_text())
    originals, names, copies, labels, kinds = [], [], [], [], []
    for i, r in enumerate(record["originals"]):
        originals.append((out / f"{i:05d}.png").read_bytes())
        names.append(f"{r['source']}:{os.path.basename(r['path'])}")
        for k in r["kinds"]:
            copies.append((out / f"{i:05d}_{k}.jpg").read_bytes())
            labels.append(i)
            kinds.append(k)
    return BenchSet(originals, names, copies, np.array(labels), np.array(kinds))


def same_picture_record(name: str, bench: BenchSet) -> dict:
    """The set's same-picture originals (bench/quality/hygiene.py), found once per set and kept beside it."""

    def embed_with_v3(files: list[bytes]) -> np.ndarray:
        from .candidates import v3  # imports the model build code (torch): only when no record is cached yet

        with tempfile.TemporaryDirectory() as tmp:
            return v3(Path(tmp)).embed(files)

    return hygiene.load_or_find(build_set(name), bench.originals, embed_with_v3)


def load_clean_set(name: str) -> BenchSet:
    """The set without the later original of each same-picture pair, nor its copies."""
    bench = load_set(name)
    return hygiene.without(bench, same_picture_record(name, bench)["dropped"]).bench


def sources_of(name: str) -> list[str]:
    record = json.loads((build_set(name) / "set.json").read_text())
    return [r["source"] for r in record["originals"]]


if __name__ == "__main__":
    for split_name in PLAN:
        print(split_name, build_set(split_name))
