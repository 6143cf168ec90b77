"""Acting on a result: `--move-to` (with `--dry-run` and a JSON log) moves only the copies not kept, keeping their
relative paths, never deletes or overwrites, and `image-similarity undo LOG` puts everything back; `--against` reports
only new photos that match a library folder or a vectors file (album/library_match.py's rule)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from image_similarity.core.settings import DUPLICATE_CERTAIN_THRESHOLD, LIBRARY_MATCH_THRESHOLD
from PIL import Image


@pytest.fixture
def album_copy(album, tmp_path) -> Path:
    """A private copy of the album's two photo groups that the moves may change."""
    root = tmp_path / "photos"
    for folder in ("2024", "formats"):
        shutil.copytree(album.root / folder, root / folder)
    return root


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dry_run_prints_the_moves_and_moves_nothing(album_copy, run_cli, tmp_path, capsys, shared_cache):
    before = files_under(album_copy)
    assert run_cli(["duplicates", str(album_copy), "--move-to", str(tmp_path / "aside"), "--dry-run",
                    "--cache", str(shared_cache), "--html", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert f"would move {album_copy / '2024' / 'copy of IMG_0001.jpg'} -> {tmp_path / 'aside' / '2024'}" in err
    assert "5 files would be moved (dry run: nothing was moved)" in err
    assert files_under(album_copy) == before and not (tmp_path / "aside").exists()


def test_move_to_then_undo_restores_the_album(album_copy, run_cli, tmp_path, capsys, shared_cache):
    before = files_under(album_copy)
    aside, log = tmp_path / "aside", tmp_path / "moves.json"
    assert run_cli(["duplicates", str(album_copy), "--move-to", str(aside), "--log", str(log), "--json",
                    str(tmp_path / "d.json"), "--cache", str(shared_cache)]) == 0
    document = json.loads((tmp_path / "d.json").read_text())
    kept = {group["keep"] for group in document["groups"]}
    moved = {image["path"] for group in document["groups"] for image in group["images"][1:]}
    assert len(moved) == 5 and all(Path(path).exists() for path in kept)
    assert not any(Path(path).exists() for path in moved)
    assert set(files_under(aside)) == {str(Path(p).relative_to(album_copy)) for p in moved}  # relative paths kept
    entries = json.loads(log.read_text())["moves"]
    assert {entry["from"] for entry in entries} == moved
    assert f"undo with: image-similarity undo {log}" in capsys.readouterr().err
    assert run_cli(["undo", str(log)]) == 0
    assert files_under(album_copy) == before
    assert "restored 5 files, 0 not restored" in capsys.readouterr().err


def test_moves_never_overwrite_and_undo_never_overwrites(album_copy, run_cli, tmp_path, capsys, shared_cache):
    aside = tmp_path / "aside"  # paths are relative to the scanned folder, 2024/
    aside.mkdir()
    (aside / "copy of IMG_0001.jpg").write_bytes(b"already here")
    status = run_cli(["duplicates", str(album_copy / "2024"), "--move-to", str(aside), "--log",
                      str(tmp_path / "log.json"), "--cache", str(shared_cache), "--html", str(tmp_path / "r.html")])
    assert status == 1
    assert "already exists" in capsys.readouterr().err
    assert (aside / "copy of IMG_0001.jpg").read_bytes() == b"already here"
    assert (album_copy / "2024" / "copy of IMG_0001.jpg").exists()  # not moved, not deleted
    small = album_copy / "2024" / "IMG_0001-small.jpg"
    assert not small.exists()
    small.write_bytes(b"a new file took its place")
    assert run_cli(["undo", str(tmp_path / "log.json")]) == 1
    assert small.read_bytes() == b"a new file took its place"
    assert "already exists" in capsys.readouterr().err


def test_undo_refuses_a_file_that_is_not_a_move_log(run_cli, tmp_path, capsys):
    (tmp_path / "other.json").write_text('{"groups": []}')
    with pytest.raises(SystemExit) as exited:
        run_cli(["undo", str(tmp_path / "other.json")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().endswith("not a move log written by `image-similarity duplicates --move-to`")


def cropped(source: Path, target: Path) -> None:
    """70 % of the width and height from the top left: it scores between the 0.1 % and the certain thresholds with
    the whole photo, so only its pixels (or, where they cannot be read, the threshold) decide."""
    with Image.open(source) as image:
        image.crop((0, 0, image.width * 7 // 10, image.height * 7 // 10)).convert("RGB").save(target, quality=90)


def test_against_a_library_folder_reports_only_new_matches(album, run_cli, tmp_path, shared_cache):
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(album.root / "2024" / "IMG_0001-small.jpg", new / "from-phone.jpg")  # a copy of a library photo
    cropped(album.root / "2024" / "IMG_0001-small.jpg", new / "cropped.jpg")  # and an edit of it
    shutil.copy(album.root / "formats" / "cat.webp", new / "cat.webp")
    shutil.copy(album.root / "formats" / "cat.webp", new / "cat again.webp")  # duplicates among the new ones only
    shutil.copy(album.root / "misc" / "rocket.jpg", new / "rocket.jpg")
    out = tmp_path / "d.json"
    assert run_cli(["duplicates", str(new), "--against", str(album.root / "2024"), "--json", str(out),
                    "--cache", str(shared_cache)]) == 0
    document = json.loads(out.read_text())
    assert document["against"] == str(album.root / "2024") and document["keep_rule"] == "library"
    assert document["threshold"] == LIBRARY_MATCH_THRESHOLD and document["margin"] is None  # no album to stand out of
    assert document["certain"] == DUPLICATE_CERTAIN_THRESHOLD and document["pixel_check"] is True
    assert document["scanned"] == 5
    coffee = set(album.groups["coffee"])
    reported = {image["path"]: (group["keep"], image) for group in document["groups"] for image in group["images"][1:]}
    assert set(reported) == {str(new / "from-phone.jpg"), str(new / "cropped.jpg")}
    assert reported[str(new / "from-phone.jpg")][0] == str(album.root / "2024" / "IMG_0001-small.jpg")
    assert reported[str(new / "from-phone.jpg")][1]["identical"] is True
    keep, crop = reported[str(new / "cropped.jpg")]
    assert keep in coffee and not crop["identical"]
    assert LIBRARY_MATCH_THRESHOLD <= crop["similarity"] < DUPLICATE_CERTAIN_THRESHOLD  # reported by its pixels
    summary = re.search(r'<div class="summary">(.*?)</div>', out.with_suffix(".html").read_text(), re.DOTALL)[1]
    rule = f"Threshold {LIBRARY_MATCH_THRESHOLD:.3f}, certain from {DUPLICATE_CERTAIN_THRESHOLD:.4f}, pixel check on;"
    assert rule in summary and "margin" not in summary  # the report says which rule decided


def test_against_a_vectors_file_whose_pictures_moved_the_threshold_decides(album, run_cli, tmp_path, shared_cache):
    """The pixel check cannot read a library picture that is gone: the 0.1 % threshold decides instead, as it did
    before the check, and with --no-pixel-check."""
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(album.root / "2024" / "IMG_0001-small.jpg", library / "coffee.jpg")
    shutil.copy(album.root / "misc" / "rocket.jpg", library / "rocket.jpg")
    vectors = tmp_path / "library.jsonl"
    assert run_cli(["embed", str(library), "--out", str(vectors), "--cache", str(shared_cache)]) == 0
    new = tmp_path / "new"
    new.mkdir()
    cropped(library / "coffee.jpg", new / "cropped.jpg")
    shutil.copy(album.root / "misc" / "camera.jpg", new / "camera.jpg")
    shutil.rmtree(library)
    for extra in ([], ["--no-pixel-check"]):
        out = tmp_path / "d.json"
        assert run_cli(["duplicates", str(new), "--against", str(vectors), "--json", str(out),
                        "--cache", str(shared_cache), *extra]) == 0
        document = json.loads(out.read_text())
        assert document["pixel_check"] is not extra and document["certain"] == (None if extra else
                                                                                 DUPLICATE_CERTAIN_THRESHOLD)
        (group,) = document["groups"]
        assert group["keep"] == str(library / "coffee.jpg")
        assert [image["path"] for image in group["images"][1:]] == [str(new / "cropped.jpg")]


def test_against_a_vectors_file_reuses_the_library_vectors(album, run_cli, tmp_path, shared_cache, service,
                                                          monkeypatch):
    vectors = tmp_path / "library.jsonl"
    assert run_cli(["embed", str(album.root / "misc"), str(album.root / "2023"), "--out", str(vectors),
                    "--cache", str(shared_cache)]) == 0
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(album.root / "misc" / "camera.jpg", new / "camera.jpg")
    embedded = []
    real = service.embedder.embed
    monkeypatch.setattr(service.embedder, "embed", lambda batch: embedded.append(len(batch)) or real(batch))
    out = tmp_path / "d.json"
    assert run_cli(["duplicates", str(new), "--against", str(vectors), "--json", str(out), "--no-cache"]) == 0
    assert sum(embedded) == 1  # only the new photo: the library came from the file
    (group,) = json.loads(out.read_text())["groups"]
    assert group["keep"] == str(album.root / "misc" / "camera.jpg")


def test_against_a_vectors_file_of_another_model_is_refused(album, run_cli, tmp_path, capsys):
    vectors = tmp_path / "library.npy"
    assert run_cli(["embed", str(album.root / "misc"), "--out", str(vectors)]) == 0
    index = vectors.with_suffix(".index.json")
    index.write_text(index.read_text().replace('"model": "local-', '"model": "other-'))
    with pytest.raises(SystemExit) as exited:
        run_cli(["duplicates", str(album.root / "formats"), "--against", str(vectors)])
    assert exited.value.code == 2
    assert "holds vectors of other-" in capsys.readouterr().err
