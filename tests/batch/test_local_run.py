"""`image-similarity embed s3://bucket/prefix/`: every object under the prefix in moto, unusable ones as error rows,
vectors equal to the single-image API's, and a run that is killed half-way resumes without redoing finished parts."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batch.conftest import BUCKET, UNUSABLE
from helpers import b64
from image_similarity.adapters.cli import batch as batch_cli
from image_similarity.batch.local_run import ParquetFileOutput, S3PrefixOutput, find_items, pending, run
from image_similarity.batch.parts import S3Parts
from image_similarity.batch.worker import Item, ItemReader, Worker


def api_vectors(service, catalogue) -> dict[str, np.ndarray]:
    vectors = {}
    for key, data in catalogue.items():
        if key not in UNUSABLE:
            response = service.handle(json.dumps({"img": b64(data)}))
            vectors[key] = np.array(response.body["result"], np.float32)
    return vectors


def check_rows(table, catalogue, service) -> None:
    rows = table.to_pylist()
    assert sorted(row["key"] for row in rows) == sorted(catalogue)  # each object once, nothing outside the prefix
    expected = api_vectors(service, catalogue)
    for row in rows:
        assert row["bucket"] == BUCKET and row["etag"].startswith('"') and row["model_version"] == service.model_version
        if row["key"] in UNUSABLE:
            assert row["embedding"] is None and row["error"]
        else:
            assert row["error"] is None and row["bytes"] == len(catalogue[row["key"]])
            np.testing.assert_allclose(np.array(row["embedding"], np.float32), expected[row["key"]], atol=1e-5)


def test_embed_an_s3_prefix_into_one_parquet_file(s3, catalogue, run_cli, service, tmp_path, capsys):
    out = tmp_path / "vectors.parquet"
    assert run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", str(out), "--batch-size", "4"]) == 1
    err = capsys.readouterr().err
    assert "9 images embedded, 3 failed" in err and "photos/notes.txt: unsupported image format" in err
    check_rows(pq.read_table(out), catalogue, service)
    assert not out.with_name("vectors.parquet.parts").exists()


def test_embed_an_s3_prefix_into_s3_parts(s3, catalogue, run_cli, service):
    assert run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", "s3://vectors/runs/first/"]) == 1
    parts = S3Parts(s3, "vectors", "runs/first/parts/local/")
    names = parts.names()
    assert names and all(name.endswith(".parquet") for name in names)
    check_rows(pa.concat_tables([parts.read(n) for n in names]), catalogue, service)


def test_an_interrupted_run_resumes_where_it_stopped(s3, catalogue, service, tmp_path):
    items = find_items([f"s3://{BUCKET}/photos/"], s3)
    assert len(items) == len(catalogue)
    out = ParquetFileOutput(tmp_path / "v.parquet")
    reads: list[str] = []
    reader = ItemReader(s3_client=s3)

    def read_until_the_network_drops(item: Item) -> bytes:
        if len(reads) == 6:
            raise ConnectionError("the network went away")  # not an image problem: the run stops
        reads.append(item.key)
        return reader(item)

    worker = Worker(service.embedder, read_until_the_network_drops, model_batch=2, readers=1)
    with pytest.raises(ConnectionError):
        run(pending(items, out), out, worker, part_items=4)
    assert len(out.parts.names()) == 1 and not out.path.exists()  # one whole part (4 objects) survived

    reads.clear()
    todo = pending(items, out)
    assert len(todo) == len(items) - 4
    result = run(todo, out, Worker(service.embedder, reader), part_items=4)
    assert (result.embedded, result.failed) == (5, 3)  # the first part held four good photos
    check_rows(pq.read_table(out.path), catalogue, service)

    # Done means done: a third run reads nothing; a changed object (new ETag) is embedded again, alone.
    assert pending(find_items([f"s3://{BUCKET}/photos/"], s3), out) == []
    s3.put_object(Bucket=BUCKET, Key="photos/coffee.jpg", Body=catalogue["photos/rocket.jpg"])
    (changed,) = pending(find_items([f"s3://{BUCKET}/photos/"], s3), out)
    assert changed.key == "photos/coffee.jpg"


def test_a_resumed_cli_run_only_embeds_what_is_missing(s3, catalogue, run_cli, monkeypatch, tmp_path, capsys):
    out = tmp_path / "vectors.parquet"
    assert run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", str(out)]) == 1
    s3.put_object(Bucket=BUCKET, Key="photos/new/astronaut.jpg", Body=catalogue["photos/astronaut.jpg"])
    capsys.readouterr()
    assert run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", str(out)]) == 0
    assert "1 images embedded, 0 failed (see the `error` column), 12 already done" in capsys.readouterr().err
    keys = pq.read_table(out, columns=["key"]).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == len(catalogue) + 1


def test_s3_output_resumes_from_its_parts(s3, catalogue, run_cli, capsys):
    run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", "s3://vectors/out/"])
    capsys.readouterr()
    run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", "s3://vectors/out/"])
    assert "0 images embedded, 0 failed (see the `error` column), 12 already done" in capsys.readouterr().err


def test_local_folders_can_go_to_s3_parts(s3, catalogue, run_cli, tmp_path):
    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "coffee.jpg").write_bytes(catalogue["photos/coffee.jpg"])
    assert run_cli(["embed", str(tmp_path / "album"), "--out", "s3://vectors/mine/"]) == 0
    parts = S3Parts(s3, "vectors", "mine/parts/local/")
    (row,) = parts.read(parts.names()[0]).to_pylist()
    assert row["bucket"] is None and row["key"].endswith("album/coffee.jpg") and row["error"] is None


@pytest.mark.parametrize(
    "argv, words",
    [
        (["embed", "s3://catalogue/photos/", "--out", "v.npy"], "--out FILE.parquet or --out s3://"),
        (["embed", "s3://catalogue/photos/", "--out", "v.parquet", "--remote", "http://x"], "drop --remote"),
        (["embed", "s3://Bad_Bucket/", "--out", "v.parquet"], "invalid S3 bucket name"),
    ],
)
def test_bad_batch_arguments_exit_2_with_a_message(s3, run_cli, argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_cli(argv)
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_without_out_an_s3_prefix_goes_to_stdout_as_json_lines(s3, catalogue, run_cli, service, capsys):
    assert run_cli(["embed", f"s3://{BUCKET}/photos/"]) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    expected = api_vectors(service, catalogue)
    assert sorted(line["image"] for line in lines) == sorted(f"s3://{BUCKET}/{key}" for key in expected)
    for line in lines:
        key = line["image"][len(f"s3://{BUCKET}/") :]
        np.testing.assert_allclose(np.array(line["result"], np.float32), expected[key], atol=1e-5)
    assert f"s3://{BUCKET}/photos/notes.txt: unsupported image format" in captured.err


def test_an_output_file_of_another_kind_is_refused_not_overwritten(s3, run_cli, tmp_path, capsys):
    out = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"image": ["a.jpg"], "sha256": ["00"]}), out)  # what `embed DIR --out` writes
    with pytest.raises(SystemExit) as exit_:
        run_cli(["embed", f"s3://{BUCKET}/photos/", "--out", str(out)])
    assert exit_.value.code == 2 and "holds other columns" in capsys.readouterr().err
    assert pq.read_table(out).column_names == ["image", "sha256"]


def test_a_single_s3_object_url_still_goes_through_the_api_path():
    def wants(images: list[str], out: str | None = None) -> bool:
        return batch_cli.wants_batch(argparse.Namespace(images=images, out=out))

    assert not wants(["s3://bucket/photo.jpg"]) and not wants(["s3://bucket/photo.jpg"], "v.parquet")
    assert wants(["s3://bucket/photos/"]) and wants(["s3://bucket"])
    assert wants(["folder"], "s3://bucket/out/")


def test_the_s3_client_honours_aws_endpoint_url(aws_env, monkeypatch):
    """S3-compatible stores (MinIO, Ceph, moto's server): boto3 reads AWS_ENDPOINT_URL; nothing is contacted here."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert batch_cli.s3_client().meta.endpoint_url == "http://127.0.0.1:9000"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert batch_cli.s3_client().meta.endpoint_url.startswith("https://s3.")


def test_s3_output_layout_matches_the_aws_job(s3):
    assert S3PrefixOutput("s3://vectors/out/", s3).parts.prefix == "out/parts/local/"
    assert S3PrefixOutput("s3://vectors", s3).parts.prefix == "parts/local/"


def test_the_command_line_and_the_api_handler_do_not_import_pyarrow():
    """pyarrow (a third of a second to import) is loaded by batch runs only, not by every command or cold start."""
    code = ("import sys, image_similarity.adapters.cli, image_similarity.adapters.lambda_handler; "
            "print('pyarrow' in sys.modules)")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False"
