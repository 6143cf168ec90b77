"""Runtime settings, read from the environment once by each entry point (never at import time)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

# AWS Lambda's synchronous invocation payload limit; local servers enforce the same so behaviour matches.
MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
# Each progressive JPEG scan is a pass over every block: a few hundred tiny scans make a 130 KB file take ~30 s to
# decode. Encoders write about 10 (libjpeg) to 20 (mozjpeg).
MAX_JPEG_SCANS = 50
# Requests decoding images at once per process: each holds at most one full-size decoded image (64 MB for a
# 4096 px RGBA PNG) plus a band; two keep both CPUs of a worker pair busy (docs/SECURITY.md has the measured peaks).
DECODE_SLOTS = 2
# Bytes fetched from one URL or S3 object: a 4096 x 4096 BMP is 48 MiB; compressed photos are far smaller.
MAX_FETCH_BYTES = 50 * 1024 * 1024


MANIFEST = Path(__file__).resolve().parents[1] / "model" / "manifest.json"


def _calibrated_threshold(key: str, manifest: Path = MANIFEST) -> float:
    """A threshold the model's manifest publishes: calibrated for that model file only (model/calibrate.py)."""
    thresholds = json.loads(manifest.read_text())["thresholds"]
    if key not in thresholds:  # a model built before this threshold existed: its file was never calibrated for it
        raise RuntimeError(f"{manifest} has no thresholds.{key}: run `python model/build.py --calibrate`")
    return float(thresholds[key])


# The similarity score (0.5 + 0.5 * cos) from which `image-similarity duplicates` may call two images the same
# picture: the calibrated threshold at 1 % false positives. An album of N photos has N^2/2 pairs, so a pair must also
# stand out from both pictures' neighbourhoods by DUPLICATE_MARGIN (calibrated per model on the validation album:
# the smallest margin with pair precision >= 0.95): its score minus the mean of the two pictures' background, each
# one's DUPLICATE_BACKGROUND_RANK-th best score in the album (album/duplicates.py, find_groups).
DUPLICATE_THRESHOLD = _calibrated_threshold("fpr_0.01")
DUPLICATE_MARGIN = _calibrated_threshold("duplicates_margin")
# From this score a pair matches whatever its neighbourhood (one in 100,000 unrelated pairs of the validation
# album): a re-save among many similar shots of one scene stands out from them, but not always by the margin.
DUPLICATE_CERTAIN_THRESHOLD = _calibrated_threshold("duplicates_certain")
# The tenth best, not the first few: a picture's own copies (a group of up to about nine) must not raise its
# background and so hide each other; rank 5 did slightly better on the validation album, whose groups have three.
DUPLICATE_BACKGROUND_RANK = 10
# The pixel check (album/pair_check.py, find_groups): a pair the rule above leaves out is a duplicate all the same when
# it scores DUPLICATE_CHECK_FLOOR or more, one picture is among the other's DUPLICATE_CHECK_RANK best matches, and
# one homography explains DUPLICATE_CHECK_INLIERS keypoint matches spread over DUPLICATE_CHECK_COVERAGE of the cells
# of both pictures that hold keypoints. Chosen on the validation album with the shipped model, v7 (docs/QUALITY.md,
# "The pixel check"): the floor is a score of that model and is chosen again with the next one.
DUPLICATE_CHECK_FLOOR = 0.85
DUPLICATE_CHECK_RANK = 10
DUPLICATE_CHECK_INLIERS = 12
DUPLICATE_CHECK_COVERAGE = 0.7
# `duplicates --against-collection`, and `--against LIBRARY` where the pixel check cannot run (album/library_match.py):
# each new photo against every item, with no album of its own to stand out from, so no margin; the 0.1 % threshold
# (at 1 %, an unrelated photo would meet about 100 false matches in a library of 10,000).
LIBRARY_MATCH_THRESHOLD = _calibrated_threshold("fpr_0.001")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_threads(env: dict[str, str]) -> int:
    """Lambda grants one vCPU per 1,769 MB of memory; elsewhere use the CPUs this process may run on."""
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory and memory.isdigit():
        return max(1, min(6, -(-int(memory) // 1769)))
    return cpu_count()


@dataclass(frozen=True)
class FetchSettings:
    """Limits for `url` inputs. `allow_loopback` exists for tests that serve images on 127.0.0.1 only."""

    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    total_timeout: float = 10.0
    max_bytes: int = MAX_FETCH_BYTES
    max_redirects: int = 3
    # URLs fetched at once per process (None: no limit), and how long a request waits for a turn (None: as long as
    # it takes). The HTTP server sets both (server_fetch_limits); the CLI and Lambda (one request at a time) do not.
    concurrent_fetches: int | None = None
    slot_wait: float | None = None
    allow_loopback: bool = False
    allowed_buckets: frozenset[str] = frozenset()
    # Set by deployments (infra/service.py) to the name of their bucket-list parameter: with no bucket named there,
    # s3:// URLs are refused and the message names that parameter. Unset (the CLI): no list means any bucket.
    buckets_parameter: str = ""


def server_fetch_limits(fetch: FetchSettings, threads: int) -> FetchSettings:
    """A server worker fetches up to twice as many URLs at once as it has threads for everything else, on threads of
    their own (the server adds them), and a URL request that finds them all busy gets a 429 after 0.25 s: waiting
    longer would hold a thread that inline requests need (16 URLs dripping a byte every 50 ms kept an inline request
    queued for 19 s with a 2 s wait)."""
    return replace(fetch, concurrent_fetches=2 * threads, slot_wait=0.25)


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
                buckets_parameter=env.get("S3_URLS_NEED_ALLOWED_BUCKETS", ""),
            ),
        )
