"""Folder-scale figures for docs/USAGE.md: `embed` and `duplicates` on a generated folder of photos, and the exact
numpy all-pairs search on generated vectors at album scale.

    .venv/bin/python bench/folder_scale.py [--images 1000] [--vectors 100000] [--json out.json]

The folder holds distinct photos made from scikit-image's bundled ones (random crops, scales, colour and noise) saved
as JPEG, with some planted re-saved copies; nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from skimage import data

SOURCES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "moon",
    "coins",
    "brick",
    "grass",
    "gravel",
    "clock",
    "page",
    "text",
)
PHOTO_SIZE = (1024, 768)
CLI = [str(Path(sys.executable).parent / "image-similarity")]


def load_photo(name: str) -> Image.Image:
    pixels = getattr(data, name)()
    return Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)).convert("RGB")


def make_folder(folder: Path, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` JPEGs of PHOTO_SIZE; one in ten is a re-saved, downscaled copy of an earlier one: (copy, original)."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(name) for name in SOURCES]
    originals: list[Path] = []  # paths, not pixels: this process's memory must not bloat the search's figures
    planted = []
    for i in range(count):
        if originals and i % 10 == 9:
            original = originals[rng.integers(len(originals))]
            path = folder / f"img{i:05d}-copy.jpg"
            with Image.open(original) as source:
                source.resize((PHOTO_SIZE[0] // 2, PHOTO_SIZE[1] // 2)).save(path, quality=70)
            planted.append((str(path), str(original)))
            continue
        base = photos[rng.integers(len(photos))]
        w, h = base.size
        side = rng.uniform(0.2, 0.45)
        cw, ch = int(w * side), int(h * side)
        x, y = rng.integers(0, w - cw), rng.integers(0, h - ch)
        image = base.crop((x, y, x + cw, y + ch)).resize(PHOTO_SIZE)
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.7))
        tint = rng.uniform(0.7, 1.3, 3).astype(np.float32)
        noise = rng.normal(0, 6, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3)).astype(np.float32)
        image = Image.fromarray(np.clip(np.asarray(image, np.float32) * tint + noise, 0, 255).astype(np.uint8))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"img{i:05d}.jpg"
        image.save(path, quality=90)
        originals.append(path)
    return planted


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def folder_figures(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, cache = root / "album", root / "cache"
        folder.mkdir()
        planted = make_folder(folder, count)
        embed = [*CLI, "embed", str(folder), "--out", str(root / "v.npy"), "--cache", str(cache)]
        duplicates = [*CLI, "duplicates", str(folder), "--json", str(root / "g.json"), "--html", str(root / "r.html")]
        figures = {
            "images": count,
            "folder_mb": round(sum(p.stat().st_size for p in folder.iterdir()) / 1e6, 1),
            "embed_s": timed(embed),
            "embed_rerun_s": timed(embed),  # every file already in the cache
            "duplicates_s": timed([*duplicates, "--no-cache"]),
            "duplicates_cached_s": timed([*duplicates, "--cache", str(cache)]),
        }
        groups = json.loads((root / "g.json").read_text())["groups"]
        group_of = {image["path"]: number for number, group in enumerate(groups) for image in group["images"]}
        figures["groups"] = len(groups)
        figures["images_in_groups"] = len(group_of)
        figures["planted_copies"] = len(planted)
        figures["planted_copies_found"] = sum(
            copy in group_of and group_of[copy] == group_of.get(original) for copy, original in planted
        )
        figures["report_mb"] = round((root / "r.html").stat().st_size / 1e6, 2)
        return figures


SEARCH = """
import json, sys, time, tracemalloc
import numpy as np
from image_similarity.album.duplicates import find_groups
n, dim, chunk = int(sys.argv[1]), 512, 10_000
rng = np.random.default_rng(1)
vectors = np.empty((n, dim), np.float32)
for start in range(0, n, chunk):  # float32 chunk by chunk: the baseline is the matrix itself
    vectors[start:start + chunk] = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
planted = n // 100  # 1 % of the images get a near copy
vectors[n - planted:] = vectors[:planted] + 0.25 * rng.standard_normal((planted, dim), dtype=np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
def high_water_mb():  # VmHWM restarts at exec; ru_maxrss would carry over the parent's peak
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024
before = high_water_mb()
tracemalloc.start()
start = time.perf_counter()
groups = find_groups(vectors, 0.9)
seconds = time.perf_counter() - start
_, traced_peak = tracemalloc.get_traced_memory()
peak = high_water_mb()
exact = sum(g.members == [i, n - planted + i] for i, g in enumerate(groups))
print(json.dumps({"vectors": n, "vectors_mb": round(vectors.nbytes / 1e6), "search_s": round(seconds, 1),
                  "search_peak_alloc_mb": round(traced_peak / 1e6), "rss_before_mb": before, "rss_peak_mb": peak,
                  "groups": len(groups), "planted_found": exact,
                  "planted": planted}))
"""


def search_figures(count: int) -> dict[str, float]:
    """In a fresh process, so the peak resident memory is the search's own."""
    answer = subprocess.run([sys.executable, "-c", SEARCH, str(count)], check=True, capture_output=True, text=True)
    return json.loads(answer.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = {"folder": folder_figures(args.images) if args.images else None, "search": search_figures(args.vectors)}
    figures["cpus"] = len(os.sched_getaffinity(0))
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
