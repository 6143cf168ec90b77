"""`python -m bench.batch_worker --quick` runs end to end and prints the docs/BATCH.md table; the figures themselves
are the benchmark's business, not the tests'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_the_worker_speed_table(tmp_path):
    out = tmp_path / "figures.json"
    answer = subprocess.run([sys.executable, "-m", "bench.batch_worker", "--quick", "--json", str(out)], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=600)
    speed, memory = [block.splitlines() for block in answer.stdout.split("\n\n") if block.startswith("|")]
    assert speed[0] == "| read | threads | batch 1 | batch 8 | batch 32 | batch 64 |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in speed[2:]]
    assert [row[:2] for row in rows] == [["memory", "1"], ["memory", "2"], ["s3-like", "1"], ["s3-like", "2"]]
    assert all(float(part.strip("()")) > 0 for row in rows for cell in row[2:] for part in cell.split())
    assert memory[0] == "| batch | model loaded | peak |"
    assert [line.split("|")[1].strip() for line in memory[2:]] == ["1", "8", "32", "64"]
    figures = json.loads(out.read_text())
    assert len(figures["results"]) == 16 and figures["images"] == 4 and set(figures["memory"]) == {"1", "8", "32", "64"}
