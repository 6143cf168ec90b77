"""Write a folder's embeddings for the user's own index: .npy (+ a JSON index of rows), .jsonl, or .parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from image_similarity.album.bulk_embed import EmbedRun

FORMATS = (".npy", ".jsonl", ".parquet")


class OutputFormatError(ValueError):
    """The output path names a format this command cannot write (or needs a package that is not installed)."""


def check_output(path: Path) -> None:
    """Fail before any work is done rather than after an hour of embedding."""
    if not path.parent.is_dir():
        raise OutputFormatError(f"{path}: the folder {path.parent} does not exist")
    if path.suffix.lower() not in FORMATS:
        raise OutputFormatError(f"{path}: the output must end in {', '.join(FORMATS)}")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise OutputFormatError(
                "writing .parquet needs pyarrow: pip install pyarrow (or use .npy / .jsonl)"
            ) from exc


def index_path(path: Path) -> Path:
    """The rows of `vectors.npy` are named in `vectors.index.json`."""
    return path.with_suffix(".index.json")


def read_vectors(path: Path) -> tuple[list[str], list[str], np.ndarray, str | None]:
    """What `write_vectors` wrote: (image locations, SHA-256 keys, float32 vectors, model or None for .jsonl)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        index = json.loads(index_path(path).read_text())
        rows = index["rows"]
        return [r["image"] for r in rows], [r["sha256"] for r in rows], np.load(path).astype(np.float32), index["model"]
    if suffix == ".jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        vectors = np.array([line["result"] for line in lines], np.float32).reshape(len(lines), -1)
        return [line["image"] for line in lines], [line["sha256"] for line in lines], vectors, None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        model = (table.schema.metadata or {}).get(b"model", b"").decode() or None
        vectors = np.array(table.column("embedding").to_pylist(), np.float32).reshape(table.num_rows, -1)
        return table.column("image").to_pylist(), table.column("sha256").to_pylist(), vectors, model
    raise OutputFormatError(f"{path}: a vectors file ends in {', '.join(FORMATS)}")


def write_vectors(path: Path, run: EmbedRun, model: str) -> list[Path]:
    """Write `run` to `path` (format from its suffix); return the files written."""
    check_output(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, run.vectors)
        rows = [{"image": loc, "sha256": key} for loc, key in zip(run.locations, run.keys, strict=True)]
        index_path(path).write_text(json.dumps({"model": model, "rows": rows}, indent=1) + "\n")
        return [path, index_path(path)]
    if suffix == ".jsonl":
        with path.open("w") as f:
            for loc, key, vector in zip(run.locations, run.keys, run.vectors, strict=True):
                f.write(json.dumps({"image": loc, "sha256": key, "result": vector.tolist()}) + "\n")
        return [path]
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = run.vectors.shape[1]
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(run.vectors.reshape(-1), pa.float32()), dim)
    table = pa.table({"image": run.locations, "sha256": run.keys, "embedding": vectors})
    pq.write_table(table.replace_schema_metadata({"model": model}), path)
    return [path]
