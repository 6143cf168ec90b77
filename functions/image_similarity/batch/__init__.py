"""Batch embedding: the worker that turns a batch of S3 objects or local files into Parquet rows, the same on
AWS Lambda (one Distributed Map batch per call) and locally (`image-similarity embed s3://bucket/prefix/`)."""
