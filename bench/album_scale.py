"""Album-scale figures for docs/USAGE.md: `embed` and `duplicates` on a generated folder of camera-size JPEGs
(12 MP by default), first run, cached rerun, and without the cache, with the result's quality on planted copies.

    nice -n 15 .venv/bin/python bench/album_scale.py [--images 1000] [--width 4000 --height 3000] [--json out.json]

The photos are random crops of scikit-image's bundled pictures (bench/folder_scale.py's generator, at camera size,
with EXIF capture dates); one in ten is a smaller, more compressed re-save of an earlier photo and one in twenty a
byte-identical copy. Nothing leaves this machine.
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
from folder_scale import SOURCES, load_photo
from PIL import Image, ImageEnhance

CLI = [str(Path(sys.executable).parent / "image-similarity")]


def make_album(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """`count` camera-size JPEGs; returns the planted (copy, original) pairs by kind."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(name) for name in SOURCES]
    originals: list[Path] = []
    planted: dict[str, list[tuple[str, str]]] = {"resaved": [], "identical": []}
    for i in range(count):
        day = f"2024:{1 + i % 12:02d}:{1 + i % 28:02d} 10:{i % 60:02d}:00"
        if originals and i % 20 == 19:
            original = originals[rng.integers(len(originals))]
            path = folder / f"IMG_{i:05d} (copy).jpg"
            path.write_bytes(original.read_bytes())
            planted["identical"].append((str(path), str(original)))
            continue
        if originals and i % 10 == 9:
            original = originals[rng.integers(len(originals))]
            path = folder / f"IMG_{i:05d}-small.jpg"
            with Image.open(original) as source:
                source.draft("RGB", (size[0] // 2, size[1] // 2))
                source.resize((size[0] // 2, size[1] // 2)).save(path, quality=60, exif=source.getexif())
            planted["resaved"].append((str(path), str(original)))
            continue
        base = photos[rng.integers(len(photos))]
        w, h = base.size
        side = rng.uniform(0.3, 0.6)
        cw, ch = int(w * side), int(h * side)
        x, y = rng.integers(0, w - cw), rng.integers(0, h - ch)
        image = ImageEnhance.Color(base.crop((x, y, x + cw, y + ch))).enhance(rng.uniform(0.3, 1.7))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = day
        path = folder / f"IMG_{i:05d}.jpg"
        image.resize(size, Image.Resampling.BILINEAR).save(path, quality=90, exif=exif)
        originals.append(path)
    return planted


def timed(args: list[str]) -> tuple[float, int]:
    """Seconds and the peak resident memory (MB) of one CLI run (wait4 gives that child's own rusage)."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0  # reaped above: keep Popen from waiting again
    return round(time.perf_counter() - start, 1), usage.ru_maxrss // 1024


def album_figures(count: int, size: tuple[int, int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, cache = root / "album", root / "cache"
        folder.mkdir()
        start = time.perf_counter()
        planted = make_album(folder, count, size)
        made_s = round(time.perf_counter() - start, 1)
        embed = [*CLI, "embed", str(folder), "--out", str(root / "v.npy"), "--cache", str(cache)]
        dups = [*CLI, "duplicates", str(folder), "--json", str(root / "d.json")]
        embed_s, embed_mb = timed(embed)
        rerun_s, _ = timed(embed)
        cached_s, cached_mb = timed([*dups, "--cache", str(cache)])
        uncached_s, uncached_mb = timed([*dups, "--no-cache"])
        document = json.loads((root / "d.json").read_text())
        group_of = {image["path"]: n for n, g in enumerate(document["groups"]) for image in g["images"]}
        found = {kind: sum(copy in group_of and group_of[copy] == group_of.get(original) for copy, original in pairs)
                 for kind, pairs in planted.items()}
        kept_originals = sum(not Path(g["keep"]).name.endswith(("-small.jpg", "(copy).jpg"))
                             for g in document["groups"])
        return {
            "images": count,
            "pixels": f"{size[0]} x {size[1]}",
            "album_mb": round(sum(p.stat().st_size for p in folder.iterdir()) / 1e6),
            "generate_s": made_s,
            "embed_s": embed_s,
            "embed_peak_rss_mb": embed_mb,
            "embed_cached_rerun_s": rerun_s,
            "duplicates_cached_s": cached_s,
            "duplicates_cached_peak_rss_mb": cached_mb,
            "duplicates_no_cache_s": uncached_s,
            "duplicates_no_cache_peak_rss_mb": uncached_mb,
            "groups": len(document["groups"]),
            "images_in_groups": document["images_in_groups"],
            "skipped": len(document["skipped"]),
            "planted": {kind: len(pairs) for kind, pairs in planted.items()},
            "planted_found": found,
            "groups_keeping_an_original": kept_originals,
            "report_mb": round((root / "d.html").stat().st_size / 1e6, 1),
            "example_group": document["groups"][0] if document["groups"] else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = album_figures(args.images, (args.width, args.height))
    figures["cpus"] = len(os.sched_getaffinity(0))
    figures["load_average"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
