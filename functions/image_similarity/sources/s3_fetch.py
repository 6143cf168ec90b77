"""Fetch an image from `s3://bucket/key` with boto3, mapping S3's errors onto clear 4xx messages."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from image_similarity.core.errors import bad_request, bucket_not_allowed, reason, s3_urls_off, unusable_image
from image_similarity.core.settings import FetchSettings

# S3's general purpose bucket naming rules, https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html:
# 3-63 characters of lower case letters, digits, dots and hyphens, starting and ending with a letter or digit; no two
# adjacent dots, not an IP address, not starting with `xn--`, `sthree-` or `amzn-s3-demo-`, not ending with `-s3alias`,
# `--ol-s3`, `.mrap`, `--x-s3` or `--table-s3` (access points, directory and table buckets, never a plain bucket).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
FORBIDDEN_BUCKET = re.compile(
    r"\.\.|^\d+\.\d+\.\d+\.\d+$|^(xn--|sthree-|amzn-s3-demo-)|(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$"
)
MAX_KEY_BYTES = 1024
NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
DENIED = {"AccessDenied", "403", "AllAccessDisabled", "InvalidObjectState", "AccountProblem"}


@lru_cache(maxsize=1)
def default_client():
    # boto3 is imported on the first s3:// request, not at start: it is a tenth of a second of every cold start.
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2}))


def parse_s3_url(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise bad_request("invalid S3 URL: expected s3://bucket/key") from exc
    bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
    if not BUCKET_NAME.match(bucket) or FORBIDDEN_BUCKET.search(bucket):
        raise bad_request("the S3 URL's bucket name breaks S3's naming rules: expected s3://bucket/key")
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise bad_request("the S3 URL needs an object key of 1 to 1024 bytes: s3://bucket/key")
    return bucket, key


def fetch_s3(url: str, settings: FetchSettings, client=None) -> bytes:
    bucket, key = parse_s3_url(url)
    if settings.buckets_parameter and not settings.allowed_buckets:
        raise s3_urls_off(settings.buckets_parameter)
    if settings.allowed_buckets and bucket not in settings.allowed_buckets:
        raise bucket_not_allowed(bucket)
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    # Messages name the bucket (checked above) but never the key: it is the caller's text, and may hold anything.
    where = f"the object in bucket {bucket!r}"
    client = client or default_client()
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
        if obj.get("ContentLength", 0) > settings.max_bytes:
            raise unusable_image(f"{where} is larger than the {settings.max_bytes} byte limit")
        data = obj["Body"].read(settings.max_bytes + 1)
    except NoCredentialsError as exc:
        raise unusable_image("s3:// URLs need AWS credentials, and none were found") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in NOT_FOUND:
            raise unusable_image(f"{where} does not exist") from exc
        if code in DENIED:
            raise unusable_image(f"access to {where} was denied") from exc
        raise unusable_image(f"could not read {where}", detail=code or "S3 error") from exc
    except BotoCoreError as exc:
        raise unusable_image(f"could not read {where}", detail=reason(exc)) from exc
    if len(data) > settings.max_bytes:
        raise unusable_image(f"{where} is larger than the {settings.max_bytes} byte limit")
    return data
