"""Cold start and memory in a fresh process. Run as a script, the child imports the service, answers the first
request body from a file, says so on stdout, answers `warm` more mixed requests, reports its resident memory, then
`soak` more and reports again. The parent times the first line from the moment it spawned the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    return _status_mb("VmHWM")


def child(bodies_path: str, warm: int, soak: int) -> None:
    from image_similarity.core.service import default_service

    bodies = Path(bodies_path).read_bytes().splitlines()
    service = default_service()
    first = service.handle(bodies[0])
    print(json.dumps({"first_status": first.status}), flush=True)
    statuses = []
    for i in range(warm):
        statuses.append(service.handle(bodies[i % len(bodies)]).status)
    after_warm, peak_warm = rss_mb(), peak_rss_mb()
    for i in range(soak):
        statuses.append(service.handle(bodies[i % len(bodies)]).status)
    print(json.dumps({
        "rss_after_warm_mb": after_warm, "peak_rss_after_warm_mb": peak_warm,
        "rss_after_soak_mb": rss_mb(), "peak_rss_after_soak_mb": peak_rss_mb(),
        "errors": sum(status != 200 for status in statuses),
    }), flush=True)


def measure(bodies: list[bytes], workdir: Path, warm: int, soak: int, threads: int) -> dict[str, float]:
    """Spawn a fresh interpreter; cold start is spawn -> first answer, wall clock, interpreter start included."""
    path = workdir / "bodies.jsonl"
    path.write_bytes(b"\n".join(bodies))
    env = {**os.environ, "IMAGE_SIMILARITY_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, str(path), str(warm), str(soak)],
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    cold = time.perf_counter() - start
    rest = json.loads(proc.stdout.readline())
    if proc.wait(timeout=600) != 0 or first["first_status"] != 200:
        raise RuntimeError(f"cold-start child failed: {first} {rest}")
    growth = rest["rss_after_soak_mb"] / rest["rss_after_warm_mb"] - 1.0
    return {"cold_start_s": cold, **rest, "rss_growth": growth, "warm_requests": warm, "soak_requests": soak}


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
