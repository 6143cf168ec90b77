"""`image-similarity duplicates` on the generated album: the complete JSON result (groups, kept copy, facts,
byte-identical copies, every skipped file with its reason), the keep rules, camera-size and non-API formats, and the
HTML report's content. The report in a real browser is tests/album/test_report_browser.py."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from image_similarity.adapters import cli
from image_similarity.core.settings import DUPLICATE_MARGIN, DUPLICATE_THRESHOLD

GROUP_KEYS = {"keep", "images"}
IMAGE_KEYS = {"path", "similarity", "identical", "width", "height", "bytes", "format", "taken"}


@dataclass(frozen=True)
class Run:
    status: int
    out: str
    err: str


def run_in_process(service, args: list[str]) -> Run:
    """The CLI in this process on the session's service, with its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setattr(cli.common, "default_service", lambda: service)
        try:
            status = cli.main(args)
        except SystemExit as exited:
            status = exited.code
    return Run(status, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def result(album, service, shared_cache, tmp_path_factory) -> tuple[Run, dict, Path]:
    folder = tmp_path_factory.mktemp("result")
    run = run_in_process(service, ["duplicates", str(album.root), "--json", str(folder / "dups.json"),
                                   "--cache", str(shared_cache)])
    return run, json.loads((folder / "dups.json").read_text()), folder


def by_keep(document: dict) -> dict[str, dict]:
    return {Path(group["keep"]).name: group for group in document["groups"]}


def test_the_json_has_the_documented_shape_and_counts(result, album):
    run, document, _ = result
    assert run.status == 1  # some files were skipped, and said so
    assert document["model_version"] == cli.common.default_service().model_version
    assert document["threshold"] == DUPLICATE_THRESHOLD and document["keep_rule"] == "largest"
    assert document["margin"] == DUPLICATE_MARGIN
    scanned = sum(len(g) for g in album.groups.values()) + len(album.loners) + len(album.broken)
    assert document["scanned"] == scanned == 14  # readme.txt is not an image name: never counted
    assert document["embedded"] == scanned - len(album.broken)
    for group in document["groups"]:
        assert set(group) == GROUP_KEYS
        assert group["images"][0]["path"] == group["keep"]
        for image in group["images"]:
            assert set(image) == IMAGE_KEYS


def test_exactly_the_planted_groups_are_found(result, album):
    _, document, _ = result
    found = sorted(sorted(image["path"] for image in group["images"]) for group in document["groups"])
    assert found == sorted(album.groups.values())
    assert document["images_in_groups"] == 9


def test_the_margin_option_reaches_the_grouping_and_the_json(album, service, shared_cache, tmp_path):
    """A margin of 1, no certain threshold and no pixel check leave only the byte-identical copy grouped: no
    near-copy scores 1 above its background, nor 1 itself."""
    out = tmp_path / "dups.json"
    run = run_in_process(service, ["duplicates", str(album.root), "--json", str(out), "--margin", "1",
                                   "--certain", "1", "--no-pixel-check", "--cache", str(shared_cache)])
    document = json.loads(out.read_text())
    assert run.status == 1 and document["margin"] == 1.0 and document["certain"] == 1.0
    assert document["pixel_check"] is False
    assert [[image["identical"] for image in group["images"]] for group in document["groups"]] == [[False, True]]
    refused = run_in_process(service, ["duplicates", str(album.root), "--margin", "-0.1"])
    assert refused.status == 2 and "the margin is a difference of similarity scores" in refused.err


def test_the_pixel_check_alone_finds_the_edited_copies(album, service, shared_cache, tmp_path):
    """With the similarity rule shut (margin 1, certain 1), the pixel check still groups each planted copy with its
    photo -- a small re-compressed JPEG, a PNG edit, the cat in four formats -- and nothing else."""
    out = tmp_path / "dups.json"
    run_in_process(service, ["duplicates", str(album.root), "--json", str(out), "--margin", "1", "--certain", "1",
                             "--cache", str(shared_cache)])
    document = json.loads(out.read_text())
    assert document["pixel_check"] is True
    found = sorted(sorted(image["path"] for image in group["images"]) for group in document["groups"])
    assert found == sorted(album.groups.values())


def test_every_skipped_file_is_listed_with_its_reason(result, album):
    run, document, _ = result
    skipped = {item["path"]: item["reason"] for item in document["skipped"]}
    assert set(skipped) == set(album.broken)
    for path, phrase in album.broken.items():
        assert phrase in skipped[path]
        assert f"{path}: " in run.err  # reported as it happened too
    assert "Traceback" not in run.err
    assert "14 files scanned, 11 embedded, 3 skipped; 3 groups of duplicates (9 images)" in run.err


def test_the_byte_identical_copy_and_the_camera_size_photo(result):
    _, document, _ = result
    coffee = by_keep(document)["IMG_0001.jpg"]
    kept, *others = coffee["images"]
    assert kept == {"path": coffee["keep"], "similarity": 1.0, "identical": False, "width": 12000, "height": 8400,
                    "bytes": Path(coffee["keep"]).stat().st_size, "format": "JPEG", "taken": "2024-05-01T10:00:00"}
    copy = next(image for image in others if image["path"].endswith("copy of IMG_0001.jpg"))
    assert copy["identical"] is True and copy["similarity"] == 1.0
    small = next(image for image in others if image["path"].endswith("IMG_0001-small.jpg"))
    assert small["identical"] is False and DUPLICATE_THRESHOLD <= small["similarity"] < 1.0
    assert (small["width"], small["height"], small["taken"]) == (1200, 840, "2024-06-01T09:30:00")


def test_non_api_formats_are_read_and_named(result):
    _, document, _ = result
    cat = by_keep(document)["cat.tiff"]  # all 451 x 300: the least compressed (uncompressed TIFF) is kept
    formats = {Path(image["path"]).suffix: image["format"] for image in cat["images"]}
    assert formats == {".tiff": "TIFF", ".webp": "WEBP", ".gif": "GIF", ".heic": "HEIC"}
    gif = next(image for image in cat["images"] if image["format"] == "GIF")
    assert gif["similarity"] > 0.95  # the first frame (the cat), not the second (a rocket)
    astronaut = by_keep(document)["astronaut.jpg"]  # 24 MP JPEG beats the 16.7 MP PNG
    png = astronaut["images"][1]
    assert (png["format"], png["width"], png["height"]) == ("PNG", 5000, 3333)


def test_the_listing_marks_the_kept_copy_first(result):
    run, document, _ = result
    blocks = [block.splitlines() for block in run.out.strip().split("\n\n")]
    assert len(blocks) == len(document["groups"])
    for block, group in zip(blocks, document["groups"], strict=True):
        assert block[0] == f"keep  1.0000  {group['keep']}"
    assert any(line.startswith("same  1.0000  ") for block in blocks for line in block)


def test_the_report_lands_beside_the_json_with_summary_and_kept_copies(result):
    run, document, folder = result
    page = (folder / "dups.html").read_text()
    assert f"report: {folder / 'dups.html'}" in run.err
    freed = sum(image["bytes"] for group in document["groups"] for image in group["images"][1:])
    assert freed == document["reclaimable_bytes"]
    summary = re.search(r'<div class="summary">(.*?)</div>', page, re.DOTALL)[1]
    assert "<b>3 groups</b>, <b>9 images</b>" in summary
    assert f"<b>{freed / 1e6:.1f} MB</b>" in summary
    assert "3 skipped files" in summary and "decompression bomb" in summary
    assert page.count('<figure class="keep">') == 3 and page.count("badge keep") == 3
    assert page.count('src="data:image/jpeg;base64,') == 9
    assert "copy of IMG_0001.jpg" in page and "identical</span>" in page


@pytest.mark.parametrize(("rule", "kept"), [
    ("largest", {"coffee": "IMG_0001.jpg", "astronaut": "astronaut.jpg"}),
    ("oldest", {"coffee": "IMG_0001.jpg", "astronaut": "astronaut.jpg"}),  # EXIF dates; the PNG has none: file time
    ("newest", {"coffee": "IMG_0001-small.jpg", "astronaut": "astronaut-edit.png"}),
    ("path-order", {"coffee": "IMG_0001-small.jpg", "astronaut": "astronaut-edit.png"}),
])
def test_keep_rules_choose_the_copy(album, service, shared_cache, tmp_path, rule, kept):
    out = tmp_path / "d.json"
    run_in_process(service, ["duplicates", str(album.root / "2024"), str(album.root / "2023"), "--keep", rule,
                             "--json", str(out), "--cache", str(shared_cache)])
    keeps = sorted(Path(group["keep"]).name for group in json.loads(out.read_text())["groups"])
    assert keeps == sorted(kept.values())


def test_the_report_goes_to_a_temp_folder_without_json(album, service, shared_cache):
    run = run_in_process(service, ["duplicates", str(album.root / "formats"), "--cache", str(shared_cache)])
    assert run.status == 0
    report = Path(re.search(r"report: (\S+)", run.err)[1])
    assert report.name == "duplicates.html" and report.parent.name.startswith("image-similarity-")
    assert report.read_text().count('class="group"') == 1


def test_json_to_stdout_leaves_stdout_pure_json(album, service, shared_cache, tmp_path):
    run = run_in_process(service, ["duplicates", str(album.root / "formats"), "--json", "-", "--html",
                                   str(tmp_path / "r.html"), "--cache", str(shared_cache)])
    assert json.loads(run.out)["groups"][0]["keep"].endswith("cat.tiff")
