"""A batch run's contract: its execution input (defaults, rules), its batches, and what the state machine computes
from the input, as Step Functions JSONata fields.

The input (docs/BATCH.md, "On AWS"):
    {"input_bucket": "...", "input_prefix": "...", "output_bucket": "...", "output_prefix": "...",
     "max_concurrency": 100, "tolerated_failure_percentage": 1, "inventory_manifest": "s3://.../manifest.json"}
Only the two buckets are required. Under the output prefix a run writes `parts/<execution>/` (the worker's Parquet
parts), `runs/<execution>/map-run/` (Step Functions' ResultWriter: the map run's manifest and per-batch results) and
`runs/<execution>/run.json` (the run manifest). tests/infra/test_infra_batch.py evaluates these fields.
"""

from __future__ import annotations

import json

# Sized in docs/BATCH.md ("Batch size"): per-batch costs (a Lambda request, a child execution, a Parquet PUT) are
# noise at 500, a part is ~1 MB, and 500 listing items (~200 bytes each) stay far below the 256 KiB input cap.
ITEMS_PER_BATCH = 500
BYTES_PER_BATCH = 200 * 1024
DEFAULTS = {"input_prefix": "", "output_prefix": "", "max_concurrency": 100, "tolerated_failure_percentage": 1}
# The two Distributed Maps (state names and map run labels): one lists a prefix, one reads an S3 Inventory report.
PREFIX_MAP, INVENTORY_MAP = MAP_LABELS = ("EmbedPrefix", "EmbedInventory")
MAX_CONCURRENCY_LIMIT = 10_000  # a Distributed Map's own ceiling on parallel child executions
_BUCKET = r"/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/"
_MANIFEST = r"/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.*manifest\.json$/"

INPUT_RULES = (
    "Execution input: input_bucket and output_bucket are required S3 bucket names; input_prefix and output_prefix "
    "are optional strings; max_concurrency an optional integer from 1 to "
    f"{MAX_CONCURRENCY_LIMIT} (default {DEFAULTS['max_concurrency']}); tolerated_failure_percentage an optional "
    f"number from 0 to 100 (default {DEFAULTS['tolerated_failure_percentage']}); inventory_manifest an optional "
    "s3://bucket/.../manifest.json of an S3 Inventory report of input_bucket (read instead of listing input_prefix)."
)

# JSONata: whether the execution input follows INPUT_RULES.
VALID_INPUT = f"""{{% (
  $in := $states.input;
  $isBucket := function($v) {{ $type($v) = "string" and $contains($v, {_BUCKET}) }};
  $optionalText := function($v) {{ $not($exists($v)) or $type($v) = "string" }};
  $optionalNumber := function($v, $low, $high, $integer) {{
    $not($exists($v)) or ($type($v) = "number" and $v >= $low and $v <= $high and ($not($integer) or $v = $floor($v)))
  }};
  $isBucket($in.input_bucket) and $isBucket($in.output_bucket)
  and $optionalText($in.input_prefix) and $optionalText($in.output_prefix)
  and $optionalNumber($in.max_concurrency, 1, {MAX_CONCURRENCY_LIMIT}, true)
  and $optionalNumber($in.tolerated_failure_percentage, 0, 100, false)
  and ($not($exists($in.inventory_manifest))
       or ($type($in.inventory_manifest) = "string" and $contains($in.inventory_manifest, {_MANIFEST})))
) %}}"""

# JSONata: the run's settings, from the defaults, the execution input and the execution's name. Every key of the
# output prefix is built here, once: the worker writes `parts_prefix`'s layout from the same two values.
SETTINGS = """{% (
  $run := $merge([DEFAULTS, $states.input]);
  $prefix := $replace($run.output_prefix, /^\\/+|\\/+$/, "");
  $base := $prefix = "" ? "" : $prefix & "/";
  $execution := $states.context.Execution.Name;
  $manifest := $run.inventory_manifest ? $substringAfter($run.inventory_manifest, "s3://") : "";
  $merge([$run, {
    "output_prefix": $prefix,
    "execution_name": $execution,
    "parts": "s3://" & $run.output_bucket & "/" & $base & "parts/" & $execution & "/",
    "results_prefix": $base & "runs/" & $execution & "/map-run",
    "run_manifest_key": $base & "runs/" & $execution & "/run.json",
    "inventory_bucket": $manifest ? $substringBefore($manifest, "/") : "",
    "inventory_key": $manifest ? $substringAfter($manifest, "/") : ""
  }])
) %}""".replace("DEFAULTS", json.dumps(DEFAULTS))

# JSONata: the run manifest (runs/<execution>/run.json), written once the map run has succeeded (within its tolerated
# failures, possibly after a redrive): what ran, on what, with which settings, and where it went.
RUN_MANIFEST = """{% $string({
  "execution": $states.input.execution_name,
  "execution_arn": $states.context.Execution.Id,
  "state_machine_arn": $states.context.StateMachine.Id,
  "started": $states.context.Execution.StartTime,
  "finished": $now(),
  "input": {
    "bucket": $states.input.input_bucket,
    "prefix": $states.input.inventory_manifest ? null : $states.input.input_prefix,
    "inventory_manifest": $states.input.inventory_manifest
  },
  "output": {"parts": $states.input.parts, "map_run": $states.input.map_run.ResultWriterDetails},
  "map_run_arn": $states.input.map_run.MapRunArn,
  "settings": {
    "items_per_batch": ITEMS_PER_BATCH,
    "max_concurrency": $states.input.max_concurrency,
    "tolerated_failure_percentage": $states.input.tolerated_failure_percentage
  }
}) %}""".replace("ITEMS_PER_BATCH", str(ITEMS_PER_BATCH))
