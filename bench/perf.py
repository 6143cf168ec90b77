"""Speed, memory and cost of the service beside the reference pipeline: `make bench-perf`.

    python bench/perf.py                 # full run: prints the markdown report, writes bench/out/perf.json
    python bench/perf.py --quick         # a few iterations: checks that everything runs (used by the tests)
    python bench/perf.py --markdown bench/PERF.md

Everything that is compared is measured in one run, interleaved (bench/speed/timing.py), because the machine is
shared: read the ratios, not the absolute milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

import onnxruntime as ort
from image_similarity.core.embedder import Embedder, ModelInfo
from image_similarity.core.service import ImageSimilarityService
from image_similarity.core.settings import MAX_BODY_BYTES, FetchSettings, cpu_count
from image_similarity.sources.image_source import ImageSource
from speed import coldstart, cost, footprint, report, server
from speed.ours import Floor, OurStages
from speed.reference import ReferencePipeline, reference_model
from speed.samples import Sample, encode, make_samples, photo
from speed.timing import interleave

OUT_DIR = Path(__file__).resolve().parent / "out"
THREADS = (1, 2)
MODES = {"single": 1, "pair": 2}
COST_SAMPLE = "1920 px JPEG"
SERVER_SAMPLE = "1920 px JPEG"
# (worker processes, waitress threads in each, ONNX Runtime threads per request; None = the service's default, the
# CPUs divided among the workers). The last is `image-similarity serve`'s default: one worker per CPU.
SERVER_CONFIGS = ((1, 4, None), (1, 4, 1), (cpu_count(), 4, None))
CLIENTS = (1, 4, 16)


def request_body(*images: bytes) -> bytes:
    encoded = [base64.b64encode(data).decode() for data in images]
    if len(encoded) == 1:
        return json.dumps({"img": encoded[0]}).encode()
    return json.dumps({"img_1": encoded[0], "img_2": encoded[1]}).encode()


def per_image(quick: bool) -> dict:
    """Every pipeline on every sample, interleaved in one loop."""
    samples = make_samples()
    info = ModelInfo.load()
    embedders = {t: Embedder(info, t) for t in THREADS}
    services = {t: ImageSimilarityService(embedders[t], ImageSource(FetchSettings())) for t in THREADS}
    stages = {t: OurStages(embedders[t]) for t in THREADS}
    floors = {t: Floor(embedders[t]) for t in THREADS}
    reference = {t: ReferencePipeline(reference_model(OUT_DIR), t) for t in THREADS}
    cases = {}
    for s in samples:
        for t in THREADS:
            cases["reference", s.name, t] = lambda s=s, t=t: reference[t].run(s.data)
            for mode, n in MODES.items():
                images = [s.data] * n
                cases["stages", s.name, mode, t] = lambda t=t, images=images: stages[t].run(images)
                cases["total", s.name, mode, t] = lambda t=t, images=images: services[t].embed_images(images)
                cases["floor", s.name, mode, t] = lambda t=t, images=images: floors[t].run(images)
    cost_image = next(s for s in samples if s.name == COST_SAMPLE).data
    for t in THREADS:
        body = request_body(cost_image)
        cases["request", t] = lambda t=t, body=body: services[t].handle(body)
    reps = 1 if quick else 15
    measured = interleave(cases, reps=reps, warmup=1 if quick else 2)
    rows = []
    for s in samples:
        for mode, n in MODES.items():
            for t in THREADS:
                ours, ref = measured["stages", s.name, mode, t], measured["reference", s.name, t]
                total, floor = measured["total", s.name, mode, t]["total"], measured["floor", s.name, mode, t]
                rows.append({
                    "image": s.name, "bytes": len(s.data), "mode": mode, "threads": t,
                    "decode_ms": ours["decode"], "preprocess_ms": ours["preprocess"],
                    "inference_ms": ours["inference"], "total_ms": total,
                    # The reference runs batch 1, so a pair costs it two runs.
                    "reference_ms": ref["total"] * n, "reference_decode_ms": ref["decode"] * n,
                    "reference_preprocess_ms": ref["preprocess"] * n, "reference_inference_ms": ref["inference"] * n,
                    "reference_over_ours": ref["total"] * n / total,
                    "floor_ms": floor["total"], "floor_decode_ms": floor["decode"],
                    "floor_inference_ms": floor["inference"], "ours_over_floor": total / floor["total"],
                })
    requests = {str(t): measured["request", t]["total"] for t in THREADS}
    return {"rows": rows, "request_ms": requests, "reps": reps, "model_input_size": info.input_size,
            "bodies": mixed_bodies(samples)}


def mixed_bodies(samples: list[Sample]) -> list[bytes]:
    """Single and pair requests over every sample and a 640 px PNG and BMP, for the memory runs; bodies over the
    API's size limit (large PNG and BMP files, which only a URL can carry) are left out."""
    pixels = photo(640, 480, seed=1)
    small = [Sample(f"640 px {fmt}", fmt, 640, 480, encode(pixels, fmt)) for fmt in ("PNG", "BMP")]
    files = [s.data for s in samples + small]
    bodies = [request_body(data) for data in files] + [request_body(a, b) for a, b in itertools.pairwise(files)]
    return [body for body in bodies if len(body) <= MAX_BODY_BYTES]


# The int8 network's speed depends on these more than on the clock: the same model file took 6 ms per image on a host
# with AVX-512 VNNI and 18 ms on one with AVX2 only, so runs on different hosts compare by their ratios alone.
INT8_EXTENSIONS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                 platform.processor())
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    return {"cpu": model, "cpu_int8_extensions": [f for f in INT8_EXTENSIONS if f in flags],
            "cpus_available": cpu_count(), "python": platform.python_version(), "onnxruntime": ort.__version__,
            "platform": platform.platform()}


def run(quick: bool) -> dict:
    started, load_before = time.time(), os.getloadavg()[0]
    images = per_image(quick)
    bodies = images.pop("bodies")
    with tempfile.TemporaryDirectory() as tmp:
        memory = coldstart.measure(bodies, Path(tmp), warm=10 if quick else 100, soak=10 if quick else 1000,
                                   threads=cpu_count())
        cold_1_thread = min(coldstart.measure(bodies[:1], Path(tmp), 0, 0, 1)["cold_start_s"]
                            for _ in range(1 if quick else 3))
    sample = next(s for s in make_samples() if s.name == SERVER_SAMPLE)
    load = []
    for config in SERVER_CONFIGS[-1:] if quick else SERVER_CONFIGS:
        load += server.measure(request_body(sample.data), config, CLIENTS, 0.5 if quick else 8.0)
    ms_1, ms_2 = images["request_ms"]["1"], images["request_ms"]["2"]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)), "quick": quick,
        "machine": machine(), "model": ModelInfo.load().version, **images,
        "cold_start": {**memory, "cold_start_1_thread_s": cold_1_thread},
        "server": load, "lambda": cost.table(ms_1, ms_2), "footprint": footprint.measure(),
        "duration_s": time.time() - started, "load_average": [load_before, os.getloadavg()[0]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, short load runs")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "perf.json")
    parser.add_argument("--markdown", type=Path, help="also write the report here (make bench-perf: bench/PERF.md)")
    args = parser.parse_args(argv)
    results = run(args.quick)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    text = report.markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
