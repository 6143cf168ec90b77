"""Worker speed for docs/BATCH.md ("Worker speed"): milliseconds per image through the batch worker (read, decode,
embed) at model batch sizes 1, 8, 32 and 64, with one and two CPU threads.

    nice -n 15 .venv/bin/python -m bench.batch_worker [--images 128] [--reps 3] [--latency-ms 30] [--quick]

Images are JPEGs made from scikit-image's bundled photos (random crops, PHOTO_SIZE, quality 85), held in memory.
Two read modes: `memory` (no I/O: decode + model only) and `s3-like` (each read sleeps --latency-ms first, as a GET
waits on S3; the worker's reader threads are meant to hide that wait behind the model). "Threads" is both the ONNX
Runtime intra-op threads and the concurrent decodes (the worker's `decoders`), i.e. the vCPUs a Lambda function
has (one vCPU per 1,769 MB). Cases are interleaved across repetitions (bench/speed/timing.py) and medians reported:
other jobs share this machine, so compare ratios within one run rather than across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from image_similarity.batch.worker import DEFAULT_READERS, Item, Worker
from image_similarity.core.embedder import Embedder, ModelInfo
from PIL import Image
from skimage import data

from bench.speed.timing import interleave

SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
PHOTO_SIZE = (1024, 768)  # a typical catalogue image
BATCH_SIZES = (1, 8, 32, 64)
THREADS = (1, 2)


def make_images(count: int, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in SOURCES]
    images = {}
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        buffer = io.BytesIO()
        photo.crop((x, y, x + cw, y + ch)).resize(PHOTO_SIZE, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=85)
        images[f"img-{i:05d}.jpg"] = buffer.getvalue()
    return images


def reader(images: dict[str, bytes], latency_s: float):
    def read(item: Item) -> bytes:
        if latency_s:
            time.sleep(latency_s)
        return images[item.key]

    return read


def measure(images: dict[str, bytes], reps: int, latency_ms: float) -> list[dict]:
    info = ModelInfo.load()
    embedders = {threads: Embedder(info, threads) for threads in THREADS}
    items = [Item(key) for key in images]
    modes = {"memory": 0.0, "s3-like": latency_ms / 1000.0}
    cases = {}
    for mode, latency in modes.items():
        for threads, embedder in embedders.items():
            for batch in BATCH_SIZES:
                worker = Worker(embedder, reader(images, latency), model_batch=batch, readers=DEFAULT_READERS,
                                decoders=threads)
                cases[(mode, threads, batch)] = lambda worker=worker: _run(worker, items)
    medians = interleave(cases, reps)
    return [
        {"read": mode, "threads": threads, "batch": batch, "ms_per_image": round(m["total"] / len(items), 2),
         "cpu_ms_per_image": round(m["cpu"] / len(items), 2)}
        for (mode, threads, batch), m in sorted(medians.items(), key=lambda kv: (kv[0][0] != "memory", kv[0][1:]))
    ]


def _run(worker: Worker, items: list[Item]) -> dict[str, float]:
    """CPU seconds (all threads) beside the wall time: on a busy machine the wall time waits for other jobs, while
    the CPU time is what a Lambda function with its own vCPUs would spend (and is billed for, when it has one)."""
    before = os.times()
    _check(worker.embed(items))
    after = os.times()
    return {"cpu": (after.user - before.user) + (after.system - before.system)}


def _check(rows) -> None:
    failed = [row for row in rows if row.error]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark images failed: {failed[0].error}")


def peak_rss_mb(images: int, batch: int) -> dict[str, float]:
    """In a fresh process (one ONNX thread, as on a 1,769 MB Lambda function): resident MB once the model is loaded,
    and the peak while the worker embeds `images` images at `batch` per model call."""
    code = f"import bench.batch_worker as b; b.rss_child({images}, {batch})"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(answer.stdout)


def rss_child(images: int, batch: int) -> None:
    pictures = make_images(images)
    embedder = Embedder(ModelInfo.load(), 1)
    loaded = _peak_mb()
    _check(Worker(embedder, reader(pictures, 0.0), model_batch=batch).embed([Item(key) for key in pictures]))
    print(json.dumps({"loaded_mb": round(loaded), "peak_mb": round(_peak_mb())}))


def _peak_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from the parent
    across fork + exec, so a child would report the benchmark's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def markdown(results: list[dict], images: int, reps: int, latency_ms: float) -> str:
    lines = [
        (f"ms per image through the worker, median of {reps} interleaved runs over {images} JPEGs of "
         f"{PHOTO_SIZE[0]} x {PHOTO_SIZE[1]} px; `s3-like` adds {latency_ms:g} ms of waiting to every read "
         f"({DEFAULT_READERS} reader threads); {os.cpu_count()} CPUs shared with other jobs (load average "
         f"{os.getloadavg()[0]:.1f} at the end). Each cell: wall ms (CPU ms, all threads) per image."),
        "",
        "| read | threads | " + " | ".join(f"batch {b}" for b in BATCH_SIZES) + " |",
        "|---|---|" + "---|" * len(BATCH_SIZES),
    ]
    for mode in dict.fromkeys(r["read"] for r in results):
        for threads in THREADS:
            found = {r["batch"]: r for r in results if (r["read"], r["threads"]) == (mode, threads)}
            cells = [f"{found[b]['ms_per_image']:.1f} ({found[b]['cpu_ms_per_image']:.1f})" for b in BATCH_SIZES]
            lines.append(f"| {mode} | {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_markdown(memory: dict[int, dict[str, float]], images: int) -> str:
    lines = [
        (f"Peak resident memory of a fresh process embedding {images} of those JPEGs, one ONNX Runtime thread "
        "(VmHWM, MB):"),
        "",
        "| batch | model loaded | peak |",
        "|---|---|---|",
    ]
    lines += [f"| {batch} | {m['loaded_mb']:.0f} | {m['peak_mb']:.0f} |" for batch, m in memory.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 images, one repetition")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    images, reps = (4, 1) if args.quick else (args.images, args.reps)
    results = measure(make_images(images), reps, args.latency_ms)
    print(markdown(results, images, reps, args.latency_ms), flush=True)
    memory = {batch: peak_rss_mb(images, batch) for batch in BATCH_SIZES}
    print("\n" + memory_markdown(memory, images))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images": images, "reps": reps, "latency_ms": args.latency_ms, "results": results,
                       "memory": memory}, f, indent=1)


if __name__ == "__main__":
    main()
