"""The speed, memory and cost benchmark behind `make bench-perf` (entry point: bench/perf.py)."""
