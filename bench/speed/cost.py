"""AWS Lambda cost per million images from the measured times: x86 price per GB-second, one vCPU per 1,769 MB."""

from __future__ import annotations

import math

PRICE_PER_GB_SECOND = 0.0000166667
MB_PER_VCPU = 1769
MEMORY_SIZES = (1024, 1769, 2048, 3008)
# The product page: 10,240 MB for one second per image.
REFERENCE_PER_MILLION = 10240 / 1024 * 1.0 * PRICE_PER_GB_SECOND * 1e6


def lambda_ms(memory_mb: int, ms_1_thread: float, ms_2_threads: float) -> float:
    """Below one vCPU, Lambda's CPU quota stretches the 1-core time; between one and two vCPUs the service runs two
    threads (settings._default_threads) on a partial second core: interpolated between the 1- and 2-core times."""
    vcpus = memory_mb / MB_PER_VCPU
    if vcpus <= 1.0:
        return ms_1_thread / vcpus
    return ms_1_thread + (min(ms_2_threads, ms_1_thread) - ms_1_thread) * (min(vcpus, 2.0) - 1.0)


def per_million(memory_mb: int, ms: float) -> float:
    billed_seconds = math.ceil(ms) / 1000.0  # Lambda bills whole milliseconds
    return billed_seconds * memory_mb / 1024.0 * PRICE_PER_GB_SECOND * 1e6


def table(ms_1_thread: float, ms_2_threads: float) -> list[dict[str, float]]:
    rows = []
    for memory in MEMORY_SIZES:
        ms = lambda_ms(memory, ms_1_thread, ms_2_threads)
        rows.append({"memory_mb": memory, "vcpus": memory / MB_PER_VCPU, "ms_per_image": ms,
                     "usd_per_million": per_million(memory, ms), "reference_usd_per_million": REFERENCE_PER_MILLION})
    return rows
