"""S3 locations as the batch commands take them (`s3://bucket/prefix/`), and the error for ones they cannot use.
Kept free of pyarrow and boto3 so that the command line starts fast."""

from __future__ import annotations

from image_similarity.sources.s3_fetch import BUCKET_NAME


class BatchInputError(ValueError):
    """A batch location or event the worker cannot use (the user's or the state machine's input, not an image)."""


def is_s3_url(text: str) -> bool:
    return text.lower().startswith("s3://")


def parse_s3_prefix(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> (bucket, "some/prefix/"); the prefix may be empty (the whole bucket)."""
    if not is_s3_url(url):
        raise BatchInputError(f"{url!r} is not an S3 location: expected s3://bucket/prefix/")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not BUCKET_NAME.match(bucket):
        raise BatchInputError(f"invalid S3 bucket name {bucket!r}: expected s3://bucket/prefix/")
    return bucket, prefix


def parts_prefix(output_prefix: str, run_name: str) -> str:
    """Where a run's parts go under the output prefix: `<output_prefix>/parts/<run>/` (AWS: the execution name)."""
    return "/".join(p for p in (output_prefix.strip("/"), "parts", run_name) if p) + "/"
