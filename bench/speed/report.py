"""The benchmark's results as one markdown report: per-image table, cold start and memory, local server, Lambda
cost, image size, and the issue's targets with the figure each one reached."""

from __future__ import annotations

from .cost import REFERENCE_PER_MILLION

LATENCY_BUDGET_MS = 100.0
COST_BUDGET = 1.0


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


# Memory sizes whose cost per image differs by less than this count as equally cheap; the faster one wins then
# (below one vCPU, Lambda stretches cold starts and latency for no saving).
COST_TIE = 0.05


def recommended_memory(lambda_rows: list[dict]) -> dict:
    """The fastest memory size under the latency budget whose cost is within COST_TIE of the cheapest one."""
    fitting = [r for r in lambda_rows if r["ms_per_image"] < LATENCY_BUDGET_MS] or lambda_rows
    cheapest = min(r["usd_per_million"] for r in fitting)
    affordable = [r for r in fitting if r["usd_per_million"] <= cheapest * (1 + COST_TIE)]
    return min(affordable, key=lambda r: r["ms_per_image"])


def row(results: dict, image: str, mode: str = "single", threads: int = 1) -> dict:
    return next(r for r in results["rows"] if (r["image"], r["mode"], r["threads"]) == (image, mode, threads))


def server_config(r: dict) -> tuple[int, int, int | None]:
    return r["processes"], r["threads"], r["ort_threads"]


def server_ratio(load: list[dict], config: tuple[int, int, int | None]) -> float:
    mine = {r["clients"]: r["rps"] for r in load if server_config(r) == config}
    return mine[max(mine)] / mine[min(mine)]


def targets(results: dict) -> list[list[object]]:
    mid, big = row(results, "1920 px JPEG"), row(results, "4000x3000 JPEG")
    cold, default = results["cold_start"], recommended_memory(results["lambda"])
    configs = sorted({server_config(r) for r in results["server"]}, key=str)
    best = max(configs, key=lambda c: server_ratio(results["server"], c))
    errors = sum(r["errors"] for r in results["server"])
    checks = [
        ("1920 px JPEG: reference / ours (single, 1 thread)", ">= 3", mid["reference_over_ours"],
         mid["reference_over_ours"] >= 3),
        ("1920 px JPEG: ours / floor", "<= 1.3", mid["ours_over_floor"], mid["ours_over_floor"] <= 1.3),
        ("4000x3000 JPEG: reference / ours", ">= 6", big["reference_over_ours"], big["reference_over_ours"] >= 6),
        ("cold start to first answer (s)", "< 1.0", cold["cold_start_s"], cold["cold_start_s"] < 1.0),
        (f"peak RSS after {cold['warm_requests']} mixed requests (MB)", "< 250", cold["peak_rss_after_warm_mb"],
         cold["peak_rss_after_warm_mb"] < 250),
        (f"RSS growth over {cold['soak_requests']} more (%)", "< 10", 100 * cold["rss_growth"],
         cold["rss_growth"] < 0.10),
        (f"Lambda $/million at {default['memory_mb']} MB", f"<= {COST_BUDGET}", default["usd_per_million"],
         default["usd_per_million"] <= COST_BUDGET),
        (f"Lambda ms per image at {default['memory_mb']} MB (modelled)", f"< {LATENCY_BUDGET_MS:.0f}",
         default["ms_per_image"], default["ms_per_image"] < LATENCY_BUDGET_MS),
        (f"server rps 16 / 1 clients ({best[0]} x {best[1]} waitress x {best[2] or 'default'} ORT threads)",
         ">= 1.8", server_ratio(results["server"], best), server_ratio(results["server"], best) >= 1.8),
        ("server errors (all runs)", "0", errors, errors == 0),
        ("image layers: packages + service + model (MB)", "< 400", results["footprint"]["added_layers_mb"],
         results["footprint"]["added_layers_mb"] < 400),
    ]
    return [[name, goal, value, "met" if ok else "MISSED"] for name, goal, value, ok in checks]


def markdown(results: dict) -> str:
    m = results["machine"]
    parts = [
        "# Performance benchmark (`make bench-perf`)",
        (f"Run {results['date']}{' (quick mode: one repetition, not figures to quote)' if results['quick'] else ''}"
        f" on {m['cpus_available']} CPUs ({m['cpu']}; {', '.join(m.get('cpu_int8_extensions') or ['no'])} vector "
        f"extensions), Python {m['python']}, ONNX Runtime {m['onnxruntime']}, "
        f"model `{results['model']}` at {results['model_input_size']} px; medians of {results['reps']} interleaved "
        f"repetitions, milliseconds per request (a pair is two images). The machine is shared: 1-minute load "
        f"average {results['load_average'][0]:.1f} at the start, {results['load_average'][1]:.1f} at the end, so "
        "read the ratios (measured side by side) before the absolute times."),
        "## Per image",
        table(["image", "mode", "threads", "decode", "preprocess", "inference", "total", "reference", "ref / ours",
               "floor", "ours / floor"],
              [[r["image"], r["mode"], r["threads"], r["decode_ms"], r["preprocess_ms"], r["inference_ms"],
                r["total_ms"], r["reference_ms"], r["reference_over_ours"], r["floor_ms"], r["ours_over_floor"]]
               for r in results["rows"]]),
        ("Reference: full Pillow decode, `cv2.resize(pixels / 255.0, (448, 448))` in float64, the same network at "
        "448 x 448, batch 1 (a pair is two runs), same thread count. Floor: the JPEG decoder at its reduced scale "
        "(PNG and BMP: full decode) plus the network alone on ready pixels."),
        table(["reference stage (1920 px JPEG, 1 thread)", "ms"],
              [[k, row(results, "1920 px JPEG")[f"reference_{k}_ms"]] for k in ("decode", "preprocess", "inference")]),
        "## Cold start and memory (fresh processes)",
        table(["measure", "value"], [
            ["cold start, spawn to first answer (s), default threads", results["cold_start"]["cold_start_s"]],
            ["cold start, 1 thread (s, best of runs)", results["cold_start"]["cold_start_1_thread_s"]],
            [f"RSS after {results['cold_start']['warm_requests']} mixed requests (MB)",
             results["cold_start"]["rss_after_warm_mb"]],
            ["peak RSS then (MB)", results["cold_start"]["peak_rss_after_warm_mb"]],
            [f"RSS after {results['cold_start']['soak_requests']} more (MB)",
             results["cold_start"]["rss_after_soak_mb"]],
            ["peak RSS then (MB)", results["cold_start"]["peak_rss_after_soak_mb"]],
            ["errors", results["cold_start"]["errors"]],
        ]),
        "## Local server (waitress, 1920 px JPEG, single mode, keep-alive clients)",
        table(["processes", "waitress threads", "ORT threads", "clients", "requests", "req/s", "p50 ms", "p95 ms",
               "p99 ms", "errors"],
              [[r["processes"], r["threads"], r["ort_threads"] or "default", r["clients"], r["requests"], r["rps"],
                r["p50_ms"], r["p95_ms"], r["p99_ms"], r["errors"]] for r in results["server"]]),
        "## AWS Lambda cost (x86, 1920 px JPEG single-mode request: JSON + base64 + decode + network)",
        table(["memory MB", "vCPUs", "ms per image (modelled)", "$ per million", "product page $ per million"],
              [[r["memory_mb"], r["vcpus"], r["ms_per_image"], r["usd_per_million"], r["reference_usd_per_million"]]
               for r in results["lambda"]]),
        (f"Measured here per request: {results['request_ms']['1']:.1f} ms on 1 thread, "
        f"{results['request_ms']['2']:.1f} ms on 2. Below 1,769 MB the 1-core time is stretched by the CPU share; "
        "above it, interpolated toward the 2-core time. Compute only (the $0.20 per million request fee is extra). "
        f"Default (the stack's LambdaMemorySize): the fastest size under {LATENCY_BUDGET_MS:.0f} ms costing within "
        f"{COST_TIE:.0%} of the cheapest, {recommended_memory(results['lambda'])['memory_mb']} MB; "
        f"product page: ${REFERENCE_PER_MILLION:.1f}."),
        "## Container image",
        f"Service run-time packages {results['footprint']['packages_total_mb']:.0f} MB + service and model "
        f"{results['footprint']['service_and_model_mb']:.0f} MB = {results['footprint']['added_layers_mb']:.0f} MB "
        "on top of the Lambda Python base image (computed from the installed packages; Docker cannot build here). "
        "Largest: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(
            results["footprint"]["packages_mb"].items(), key=lambda kv: -kv[1])[:4]) + ".",
        "## Targets",
        table(["target", "goal", "reached", ""], targets(results)),
    ]
    return "\n\n".join(parts) + "\n"
