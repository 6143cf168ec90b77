"""`bench/perf.py --quick` (what `make bench-perf` runs, with few iterations) runs end to end and prints a
well-formed report; the figures themselves are the benchmark's business, not the tests'."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("## Per image", "## Cold start and memory", "## Local server", "## AWS Lambda cost", "## Container image",
            "## Targets")


def numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return []


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The first table under `heading`."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    first_table = next(block for block in section.split("\n\n") if block.startswith("|"))
    header, rule, *rows = first_table.splitlines()
    assert set(rule.replace("|", "")) == {"-"}
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    assert all(len(row) == header.count("|") - 1 for row in cells)
    return cells


def test_quick_benchmark_prints_every_section_and_writes_json(tmp_path):
    out = tmp_path / "perf.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "perf.py"), "--quick", "--json", str(out)],
                         check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    for heading in SECTIONS:
        assert heading in run.stdout

    per_image = table_rows(run.stdout, "## Per image")
    assert len(per_image) == 5 * 2 * 2  # five files x single/pair x 1/2 threads
    assert all(float(cell) > 0 for row in per_image for cell in row[3:])
    assert {row[0] for row in per_image} == {"640 px JPEG", "1920 px JPEG", "4000x3000 JPEG", "1920 px PNG",
                                             "1920 px BMP"}
    server = table_rows(run.stdout, "## Local server")
    assert {row[3] for row in server} == {"1", "4", "16"}
    lambda_rows = table_rows(run.stdout, "## AWS Lambda cost")
    assert [row[0] for row in lambda_rows] == ["1024", "1769", "2048", "3008"]
    assert all(row[3] in ("met", "MISSED") for row in table_rows(run.stdout, "## Targets"))

    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert all(math.isfinite(n) and n >= 0 for n in numbers(results))
    assert results["cold_start"]["errors"] == 0
    # The host's int8 instruction sets are named, as they set the absolute times (AVX2 only: about 3x slower).
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    extensions = results["machine"]["cpu_int8_extensions"]
    assert "avx2" in flags and "avx2" in extensions and all(e in flags for e in extensions)
    header = run.stdout.split("## Per image")[0]
    assert f"; {', '.join(extensions)} vector extensions), Python {results['machine']['python']}, " in header
    assert "{" not in header
    assert sum(r["errors"] for r in results["server"]) == 0
