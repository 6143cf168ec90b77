"""Runtime settings, read from the environment once by each entry point (never at import time)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# AWS Lambda's synchronous invocation payload limit; local servers enforce the same so behaviour matches.
MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
# Each progressive JPEG scan is a pass over every block: a few hundred tiny scans make a 130 KB file take ~30 s to
# decode. Encoders write about 10 (libjpeg) to 20 (mozjpeg).
MAX_JPEG_SCANS = 50
# Bytes fetched from one URL or S3 object: a 4096 x 4096 BMP is 48 MiB; compressed photos are far smaller.
MAX_FETCH_BYTES = 50 * 1024 * 1024


def _calibrated_threshold(key: str) -> float:
    """A threshold the model's manifest publishes: calibrated for that model file only (model/calibrate.py)."""
    manifest = Path(__file__).resolve().parents[1] / "model" / "manifest.json"
    return float(json.loads(manifest.read_text())["thresholds"][key])


# The similarity score (0.5 + 0.5 * cos) from which `image-similarity duplicates` calls two images the same picture:
# the calibrated threshold at 0.1 % false positives (docs/QUALITY.md). An album of N photos has N^2/2 pairs, so the
# stricter of the two calibrated thresholds.
DUPLICATE_THRESHOLD = _calibrated_threshold("fpr_0.001")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_threads(env: dict[str, str]) -> int:
    """Lambda grants one vCPU per 1,769 MB of memory; elsewhere use the CPUs this process may run on."""
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory and memory.isdigit():
        return max(1, min(6, -(-int(memory) // 1769)))
    return _cpu_count()


@dataclass(frozen=True)
class FetchSettings:
    """Limits for `url` inputs. `allow_loopback` exists for tests that serve images on 127.0.0.1 only."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    total_timeout: float = 10.0
    max_bytes: int = MAX_FETCH_BYTES
    max_redirects: int = 3
    allow_loopback: bool = False
    allowed_buckets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Settings:
    threads: int = 1
    fetch: FetchSettings = field(default_factory=FetchSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, processes: int = 1) -> Settings:
        """`processes`: server workers sharing the CPUs; by default each runs the model on its share of them."""
        env = dict(os.environ if env is None else env)
        threads = env.get("IMAGE_SIMILARITY_THREADS", "")
        buckets = frozenset(b.strip() for b in env.get("ALLOWED_S3_BUCKETS", "").split(",") if b.strip())
        return cls(
            threads=(int(threads) if threads.isdigit() and int(threads) > 0
                     else max(1, _default_threads(env) // max(1, processes))),
            fetch=FetchSettings(
                # Test-only switch: lets `url` inputs reach 127.0.0.1 / ::1. Never set in deployed stacks.
                allow_loopback=env.get("IMAGE_SIMILARITY_ALLOW_LOOPBACK_URLS") == "1",
                allowed_buckets=buckets,
            ),
        )
