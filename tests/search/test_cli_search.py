"""`image-similarity index`, `search` and `duplicates --against-collection`, locally (the local store in
IMAGE_SIMILARITY_DATA_DIR) and with --remote."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import waitress.server
from helpers import encode
from image_similarity.adapters import cli
from image_similarity.adapters.local_server import API_PATH
from image_similarity.adapters.wsgi import ServiceApp
from image_similarity.core.settings import LIBRARY_MATCH_THRESHOLD
from image_similarity.search.api import CollectionRoutes
from image_similarity.search.local_store import LocalStore
from PIL import Image


@pytest.fixture
def folder(tmp_path, photos):
    album = tmp_path / "album"
    (album / "trip").mkdir(parents=True)
    for name in ("chelsea", "coffee", "astronaut"):
        (album / "trip" / f"{name}.jpg").write_bytes(encode(photos[name], "JPEG", quality=90))
    (album / "broken.jpg").write_bytes(b"not an image")
    return album


@pytest.fixture
def local_cli(monkeypatch, service, tmp_path):
    monkeypatch.setattr(cli.common, "default_service", lambda: service)
    monkeypatch.setenv("IMAGE_SIMILARITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return cli.main


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_index_then_search_finds_each_image_first(local_cli, folder, capsys, service):
    assert local_cli(["index", str(folder), "--collection", "album"]) == 1  # the broken file is skipped
    assert "3 images in collection album, 1 skipped" in capsys.readouterr().err
    cat = str(folder / "trip" / "chelsea.jpg")
    assert local_cli(["search", cat, "--collection", "album", "-k", "2"]) == 0
    (answer,) = lines(capsys.readouterr().out)
    assert answer["image"] == cat
    assert answer["matches"][0]["id"] == cat and len(answer["matches"]) == 2
    assert answer["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    store = LocalStore(folder.parent / "data")
    assert store.describe("album").count == 3 and store.describe("album").model_version == service.model_version


def test_index_again_reuses_the_embed_cache_and_replaces_nothing_twice(local_cli, folder, capsys, service,
                                                                        monkeypatch):
    local_cli(["index", str(folder / "trip"), "--collection", "album"])
    embedded = []
    original = service.embedder.embed
    monkeypatch.setattr(service.embedder, "embed", lambda batch: embedded.append(len(batch)) or original(batch))
    assert local_cli(["index", str(folder / "trip"), "--collection", "album"]) == 0
    assert embedded == []  # every vector came from the cache
    assert LocalStore(folder.parent / "data").describe("album").count == 3


def test_search_min_similarity_and_several_images(local_cli, folder, capsys):
    local_cli(["index", str(folder / "trip"), "--collection", "album"])
    capsys.readouterr()
    assert local_cli(["search", str(folder / "trip"), "--collection", "album", "--min-similarity", "0.99"]) == 0
    answers = lines(capsys.readouterr().out)
    assert len(answers) == 3 and all(len(a["matches"]) == 1 and a["matches"][0]["id"] == a["image"]
                                     for a in answers)


@pytest.mark.parametrize(("argv", "words"), [
    (["search", "x.jpg", "--collection", "Bad_Name"], "invalid collection name"),
    (["index", ".", "--collection", "ab"], "invalid collection name"),
])
def test_bad_collection_names_are_usage_errors(local_cli, argv, words, capsys):
    with pytest.raises(SystemExit) as stop:
        local_cli(argv)
    assert stop.value.code == 2 and words in capsys.readouterr().err


def test_searching_a_missing_collection_says_so(local_cli, folder, capsys):
    with pytest.raises(SystemExit) as stop:
        local_cli(["search", str(folder / "trip" / "coffee.jpg"), "--collection", "nothing-here"])
    assert stop.value.code == 2 and "no collection named nothing-here" in capsys.readouterr().err


def test_k_out_of_range_is_refused(local_cli, capsys):
    with pytest.raises(SystemExit):
        local_cli(["search", "x.jpg", "--collection", "album", "-k", "101"])
    assert "k is between 1 and 100" in capsys.readouterr().err


@pytest.fixture
def remote_api(service, tmp_path, monkeypatch) -> Iterator[tuple[str, LocalStore]]:
    """A real server on 127.0.0.1 serving the collection routes from its own store: (API URL, that store)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = LocalStore(tmp_path / "server-data")
    routes = CollectionRoutes(service, store)
    server = waitress.server.create_server(ServiceApp(service, API_PATH, collections=lambda: routes),
                                           host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}{API_PATH}", store
    server.close()


def test_remote_index_and_search_go_through_the_api(remote_api, folder, capsys):
    url, store = remote_api
    assert cli.main(["index", str(folder / "trip"), "--collection", "remote", "--remote", url]) == 0
    assert store.describe("remote").count == 3
    coffee = str(folder / "trip" / "coffee.jpg")
    capsys.readouterr()
    assert cli.main(["search", coffee, "--collection", "remote", "--remote", url, "-k", "1"]) == 0
    assert lines(capsys.readouterr().out)[0]["matches"][0]["id"] == coffee


@pytest.fixture
def new_photos(tmp_path, photos):
    """New photos: a smaller, recompressed copy of a photo in the collection, and one the collection lacks."""
    new = tmp_path / "new"
    new.mkdir()
    (new / "cat-copy.jpg").write_bytes(encode(Image.fromarray(photos["chelsea"]).resize((300, 200)), "JPEG",
                                              quality=70))
    (new / "rocket.jpg").write_bytes(encode(photos["rocket"], "JPEG", quality=90))
    return new


def test_duplicates_against_a_collection_lists_each_new_photo_with_its_matches(local_cli, folder, new_photos,
                                                                               capsys, tmp_path, service):
    local_cli(["index", str(folder / "trip"), "--collection", "library"])
    capsys.readouterr()
    out = tmp_path / "matches.json"
    assert local_cli(["duplicates", str(new_photos), "--against-collection", "library", "--json", str(out)]) == 0
    printed, summary = capsys.readouterr()
    document = json.loads(out.read_text())
    (photo,) = document["photos"]  # the rocket matches nothing in the collection
    assert photo["image"] == str(new_photos / "cat-copy.jpg")
    assert [m["id"] for m in photo["matches"]] == [str(folder / "trip" / "chelsea.jpg")]
    assert photo["matches"][0]["similarity"] >= document["threshold"] == LIBRARY_MATCH_THRESHOLD
    assert document["model_version"] == service.model_version and document["against_collection"] == "library"
    assert (document["scanned"], document["embedded"], document["skipped"]) == (2, 2, [])
    assert photo["image"] in printed and str(folder / "trip" / "chelsea.jpg") in printed
    assert "1 photo matches collection library (3 items)" in summary


def test_duplicates_against_a_collection_takes_the_threshold_and_writes_json_to_stdout(local_cli, folder,
                                                                                       new_photos, capsys):
    local_cli(["index", str(folder / "trip"), "--collection", "library"])
    capsys.readouterr()
    assert local_cli(["duplicates", str(new_photos), "--against-collection", "library", "--json", "-",
                      "--threshold", "0.5"]) == 0
    document = json.loads(capsys.readouterr().out)
    cat, rocket = document["photos"]  # sorted by path
    assert (cat["image"], rocket["image"]) == (str(new_photos / "cat-copy.jpg"), str(new_photos / "rocket.jpg"))
    assert all(m["similarity"] >= 0.5 for p in document["photos"] for m in p["matches"])
    assert len(cat["matches"]) == 3  # every item at or above 0.5, best first
    scores = [m["similarity"] for m in cat["matches"]]
    assert scores == sorted(scores, reverse=True) and cat["matches"][0]["id"].endswith("chelsea.jpg")


def test_an_image_already_in_the_collection_is_not_its_own_duplicate(local_cli, folder, new_photos, capsys):
    local_cli(["index", str(folder / "trip"), str(new_photos / "cat-copy.jpg"), "--collection", "library"])
    capsys.readouterr()
    assert local_cli(["duplicates", str(folder / "trip"), str(new_photos), "--against-collection", "library",
                      "--json", "-"]) == 0
    found = {p["image"]: [m["id"] for m in p["matches"]] for p in json.loads(capsys.readouterr().out)["photos"]}
    cat, copy = str(folder / "trip" / "chelsea.jpg"), str(new_photos / "cat-copy.jpg")
    assert found == {cat: [copy], copy: [cat]}  # each finds the other, neither itself; the rest match nothing


def test_duplicates_against_a_missing_collection_stops_before_embedding(local_cli, new_photos, capsys, service,
                                                                        monkeypatch):
    embedded = []
    monkeypatch.setattr(service.embedder, "embed", lambda batch: embedded.append(len(batch)))
    with pytest.raises(SystemExit) as stop:
        local_cli(["duplicates", str(new_photos), "--against-collection", "nothing-here"])
    assert stop.value.code == 2 and "no collection named nothing-here" in capsys.readouterr().err
    assert embedded == []


@pytest.mark.parametrize(("extra", "words"), [
    (["--html", "report.html"], "--against, --html and --move-to go with folders"),
    (["--move-to", "aside"], "--against, --html and --move-to go with folders"),
    (["--against", "."], "--against, --html and --move-to go with folders"),
])
def test_duplicates_against_a_collection_refuses_the_folder_only_options(local_cli, new_photos, extra, words,
                                                                         capsys):
    with pytest.raises(SystemExit) as stop:
        local_cli(["duplicates", str(new_photos), "--against-collection", "library", *extra])
    assert stop.value.code == 2 and words in capsys.readouterr().err


def test_duplicates_against_a_collection_with_a_bad_name_is_a_usage_error(local_cli, new_photos, capsys):
    with pytest.raises(SystemExit) as stop:
        local_cli(["duplicates", str(new_photos), "--against-collection", "Bad_Name"])
    assert stop.value.code == 2 and "invalid collection name" in capsys.readouterr().err


def test_remote_duplicates_against_a_collection_go_through_the_api(remote_api, service, folder, new_photos, capsys):
    url, _ = remote_api
    assert cli.main(["index", str(folder / "trip"), "--collection", "remote", "--remote", url]) == 0
    capsys.readouterr()
    assert cli.main(["duplicates", str(new_photos), "--against-collection", "remote", "--remote", url,
                     "--json", "-"]) == 0
    document = json.loads(capsys.readouterr().out)
    (photo,) = document["photos"]
    assert photo["image"] == str(new_photos / "cat-copy.jpg")
    assert [m["id"] for m in photo["matches"]] == [str(folder / "trip" / "chelsea.jpg")]
    assert document["model_version"] == service.model_version
    with pytest.raises(SystemExit) as stop:
        cli.main(["duplicates", str(new_photos), "--against-collection", "absent", "--remote", url])
    assert stop.value.code == 2 and "404" in capsys.readouterr().err
