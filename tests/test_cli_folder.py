"""Folder-scale CLI: `embed DIR --out` (formats, a broken file, resuming by content hash) and `duplicates` (planted
groups found exactly, JSON and HTML report), locally and through the API with --remote."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import encode
from image_similarity.adapters import cli
from image_similarity.album.duplicates import find_groups, similar_pairs
from image_similarity.album.vector_cache import VectorCache
from PIL import Image, ImageEnhance
from skimage import data

# Distinct photos and scans bundled with scikit-image: each is the original of one planted group or a loner.
GROUP_SOURCES = ("astronaut", "chelsea", "coffee", "rocket")
LONER_SOURCES = ("camera", "moon", "hubble_deep_field", "page", "brick")
# Small images keep the tests fast, but not thumbnails: at 192 px the 3/4 re-save is 144 px wide and scores 0.87
# against the crop with model v4, below its 0.1 % threshold (0.8828), so complete linkage rightly leaves it out.
SIDE = 256


def photo(name: str) -> Image.Image:
    pixels = getattr(data, name)()
    image = Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)).convert("RGB")
    image.thumbnail((SIDE, SIDE))
    return image


def variants(image: Image.Image) -> dict[str, bytes]:
    """What an album collects: the original, a downscaled re-save, a lightly cropped and brightened edit."""
    w, h = image.size
    edited = ImageEnhance.Brightness(image.crop((w // 20, h // 20, w - w // 20, h - h // 20))).enhance(1.1)
    return {
        "original.jpg": encode(image, "JPEG", quality=92),
        "small.jpg": encode(image.resize((w * 3 // 4, h * 3 // 4)), "JPEG", quality=75),
        "edited.png": encode(edited, "PNG"),
    }


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> tuple[Path, list[list[str]]]:
    """A folder with subfolders: 4 planted groups of 3, 5 unrelated images, a broken JPEG and a text file."""
    root = tmp_path_factory.mktemp("album")
    groups = []
    for name in GROUP_SOURCES:
        folder = root / name
        folder.mkdir()
        paths = []
        for file_name, content in variants(photo(name)).items():
            (folder / file_name).write_bytes(content)
            paths.append(str(folder / file_name))
        groups.append(sorted(paths))
    (root / "misc").mkdir()
    for name in LONER_SOURCES:
        (root / "misc" / f"{name}.jpg").write_bytes(encode(photo(name), "JPEG", quality=90))
    (root / "misc" / "broken.jpg").write_bytes(encode(photo("coins"), "JPEG")[:300])
    (root / "misc" / "notes.txt").write_text("not an image, and not named like one: never tried")
    return root, sorted(groups)


@pytest.fixture
def run_cli(monkeypatch, service, tmp_path):
    """The CLI on the session's service, with the cache under this test's tmp_path unless a test says otherwise."""
    monkeypatch.setattr(cli.common, "default_service", lambda: service)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return cli.main


@pytest.fixture
def embedded_count(monkeypatch, service) -> list[int]:
    """How many images the model has embedded since the test started."""
    counts = [0]
    real = service.embedder.embed

    def counting(images: np.ndarray) -> np.ndarray:
        counts[0] += len(images)
        return real(images)

    monkeypatch.setattr(service.embedder, "embed", counting)
    return counts


def images_in(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.suffix in (".jpg", ".png") and p.name != "broken.jpg")


def test_embed_a_folder_skips_and_reports_the_broken_file(album, run_cli, tmp_path, capsys, service):
    root, _ = album
    out = tmp_path / "vectors.npy"
    assert run_cli(["embed", str(root), "--out", str(out), "--batch-size", "4"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"misc/broken\.jpg: the JPEG image .*could not be", err)
    assert "notes.txt" not in err
    assert "17 images embedded (0 from cache), 1 skipped" in err
    index = json.loads(out.with_suffix(".index.json").read_text())
    assert sorted(row["image"] for row in index["rows"]) == images_in(root)
    vectors = np.load(out)
    assert vectors.shape == (17, 512) and vectors.dtype == np.float32
    first = Path(index["rows"][0]["image"]).read_bytes()
    np.testing.assert_allclose(vectors[0], service.embed_images([first])[0], atol=1e-5)


def test_a_rerun_embeds_only_new_content(album, run_cli, tmp_path, capsys, embedded_count):
    root, _ = album
    cache = tmp_path / "cache"
    assert run_cli(["embed", str(root), "--out", str(tmp_path / "a.npy"), "--cache", str(cache)]) == 1
    assert embedded_count[0] == 17
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "copy-of-coffee.jpg").write_bytes((root / "coffee" / "original.jpg").read_bytes())  # same content
    (extra / "new.jpg").write_bytes(encode(photo("clock"), "JPEG"))
    capsys.readouterr()
    assert run_cli(["embed", str(root), str(extra), "--out", str(tmp_path / "b.jsonl"), "--cache", str(cache)]) == 1
    assert embedded_count[0] == 17 + 1
    assert "19 images embedded (18 from cache), 1 skipped" in capsys.readouterr().err
    first = np.load(tmp_path / "a.npy")
    lines = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    np.testing.assert_array_equal(np.array([line["result"] for line in lines[:17]], np.float32), first)


def test_an_interrupted_run_resumes_where_it_stopped(album, run_cli, tmp_path, monkeypatch, service):
    root, _ = album
    args = [
        "embed",
        str(root),
        "--out",
        str(tmp_path / "v.npy"),
        "--cache",
        str(tmp_path / "cache"),
        "--batch-size",
        "4",
    ]
    real, embedded = service.embedder.embed, []

    def interrupted_in_the_third_batch(images: np.ndarray) -> np.ndarray:
        if sum(embedded) >= 8:
            raise KeyboardInterrupt
        embedded.append(len(images))
        return real(images)

    monkeypatch.setattr(service.embedder, "embed", interrupted_in_the_third_batch)
    assert run_cli(args) == 130  # Ctrl-C: the shell's code for SIGINT, no traceback
    assert sum(embedded) == 8 and not (tmp_path / "v.npy").exists()
    (cache_file,) = (tmp_path / "cache").rglob("vectors-512.bin")
    with cache_file.open("ab") as f:
        f.write(b"\x00" * 100)  # a record torn by the interruption
    resumed: list[int] = []
    monkeypatch.setattr(service.embedder, "embed", lambda images: resumed.append(len(images)) or real(images))
    assert run_cli(args) == 1
    assert sum(resumed) == 17 - 8
    assert np.load(tmp_path / "v.npy").shape == (17, 512)


def test_jsonl_and_parquet_hold_the_same_vectors_as_npy(album, run_cli, tmp_path):
    root, _ = album
    for name in ("v.npy", "v.jsonl", "v.parquet"):
        run_cli(["embed", str(root / "coffee"), str(root / "misc" / "page.jpg"), "--out", str(tmp_path / name)])
    npy = np.load(tmp_path / "v.npy")
    jsonl = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    table = pq.read_table(tmp_path / "v.parquet")
    assert [line["image"] for line in jsonl] == table.column("image").to_pylist()
    assert [line["sha256"] for line in jsonl] == table.column("sha256").to_pylist()
    np.testing.assert_array_equal(np.array([line["result"] for line in jsonl], np.float32), npy)
    np.testing.assert_array_equal(np.array(table.column("embedding").to_pylist(), np.float32), npy)
    assert table.schema.metadata[b"model"].startswith(b"local-")


def test_an_unknown_output_format_is_refused_before_any_work(run_cli, tmp_path, capsys, embedded_count, cat_jpeg):
    (tmp_path / "cat.jpg").write_bytes(cat_jpeg)
    with pytest.raises(SystemExit) as exited:
        run_cli(["embed", str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "vectors.csv")])
    assert exited.value.code == 2
    assert ".npy, .jsonl, .parquet" in capsys.readouterr().err
    assert embedded_count[0] == 0


def test_embed_a_folder_without_out_prints_json_lines(album, run_cli, capsys):
    root, _ = album
    assert run_cli(["embed", str(root / "chelsea")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == sorted(str(p) for p in (root / "chelsea").iterdir())
    assert all(len(line["result"]) == 512 for line in lines)


def test_duplicates_finds_exactly_the_planted_groups(album, run_cli, tmp_path, capsys):
    root, planted = album
    report, groups_json = tmp_path / "report.html", tmp_path / "groups.json"
    assert run_cli(["duplicates", str(root), "--json", str(groups_json), "--html", str(report)]) == 1
    found = json.loads(groups_json.read_text())
    assert sorted(sorted(image["path"] for image in group["images"]) for group in found["groups"]) == planted
    out, err = capsys.readouterr()
    assert "4 groups of duplicates (12 images)" in err and "broken.jpg" in err
    assert len([block for block in out.strip().split("\n\n") if block]) == 4
    page = report.read_text()
    assert page.count('class="group"') == 4
    assert page.count('src="data:image/jpeg;base64,') == 12
    for group in planted:
        for path in group:
            assert path in page
    scores = [float(s) for s in re.findall(r'class="score">([0-9.]+)<', page)]
    assert len(scores) == 12 and all(0 <= s <= 1 for s in scores)
    assert scores[::3] == [1.0] * 4  # each group's first image against itself
    thumbnail = re.search(r'src="data:image/jpeg;base64,([^"]+)"', page)[1]
    assert max(Image.open(io.BytesIO(base64.b64decode(thumbnail))).size) <= 200


def test_a_strict_threshold_splits_the_groups(album, run_cli, tmp_path):
    root, _ = album
    out = tmp_path / "groups.json"
    run_cli(["duplicates", str(root), "--threshold", "0.9999", "--json", str(out), "--html", str(tmp_path / "r.html")])
    assert json.loads(out.read_text())["groups"] == []


def test_remote_embed_and_duplicates_go_through_the_api(album, run_cli, tmp_path, api_server):
    root, planted = album
    remote = ["--remote", f"{api_server}/image-similarity"]
    assert run_cli(["embed", str(root / "rocket"), "--out", str(tmp_path / "remote.npy"), *remote]) == 0
    assert run_cli(["embed", str(root / "rocket"), "--out", str(tmp_path / "local.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "remote.npy"), np.load(tmp_path / "local.npy"), atol=1e-5)
    out = tmp_path / "groups.json"
    assert run_cli(["duplicates", str(root), "--json", str(out), "--html", str(tmp_path / "r.html"), *remote]) == 1
    groups = json.loads(out.read_text())["groups"]
    assert sorted(sorted(image["path"] for image in group["images"]) for group in groups) == planted


def test_compare_remote_matches_local(run_cli, tmp_path, capsys, api_server, cat_jpeg, coffee_png):
    (tmp_path / "cat.jpg").write_bytes(cat_jpeg)
    (tmp_path / "coffee.png").write_bytes(coffee_png)
    images = [str(tmp_path / "cat.jpg"), str(tmp_path / "coffee.png")]
    assert run_cli(["compare", *images]) == 0
    local = json.loads(capsys.readouterr().out)["similarity"]
    assert run_cli(["compare", *images, "--remote", f"{api_server}/image-similarity"]) == 0
    assert json.loads(capsys.readouterr().out)["similarity"] == local


# --- the core pieces on generated vectors --------------------------------------------------------------------------


def test_blockwise_pair_search_equals_brute_force():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors[150:] = vectors[:150] + rng.normal(scale=0.6, size=(150, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = 0.5 + 0.5 * vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    expected = {(i, j) for i, j in zip(*np.nonzero(scores >= 0.8), strict=True) if i < j}
    for block_elements in (1, 1000, 300 * 300):  # one row per block, several rows, everything at once
        first, second, found = similar_pairs(vectors, 0.8, block_elements)
        assert set(zip(first.tolist(), second.tolist(), strict=True)) == expected
        np.testing.assert_allclose(found, scores[first, second], atol=1e-5)
    assert 100 < len(expected) < 300 * 299 / 2


def test_matches_are_grouped_and_loners_are_left_out():
    a, b, c = np.eye(3, dtype=np.float32)
    near_a = np.array([0.97, 0.243, 0], np.float32)  # cos 0.97 with a, 0.243 with b
    vectors = np.stack([a, b, near_a, c, c])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    groups = find_groups(vectors, 0.95)
    assert [g.members for g in groups] == [[0, 2], [3, 4]]


def test_a_chain_of_matches_does_not_merge_unrelated_ends():
    # x0 ~ x1 ~ x2 ~ x3 ~ x4 each a step apart: neighbours match, the two ends are unrelated.
    angles = np.radians([0, 20, 40, 60, 80])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    threshold = 0.5 + 0.5 * np.cos(np.radians(25))  # one step matches, two steps do not
    groups = find_groups(vectors, threshold)
    assert all(len(g.members) <= 2 for g in groups)
    for group in groups:  # complete linkage: every two members of a group match
        scores = 0.5 + 0.5 * vectors[group.members] @ vectors[group.members].T
        assert scores.min() >= threshold - 1e-6
    members = [m for g in groups for m in g.members]
    assert len(members) == len(set(members)) == 4  # pairs (0, 1) and (2, 3): x4 matches only x3, taken first


def test_the_cache_keeps_vectors_across_instances_and_models(tmp_path):
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    keys = ["00" * 32, "ab" * 31 + "00"]  # digests ending in a zero byte survive the round trip
    VectorCache(tmp_path, "local-m1", 4).add(keys, vectors)
    again = VectorCache(tmp_path, "local-m1", 4)
    np.testing.assert_array_equal(again.get(keys[1]), vectors[1])
    assert len(again) == 2
    assert VectorCache(tmp_path, "local-m2", 4).get(keys[0]) is None
