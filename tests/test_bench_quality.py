"""A small run of the retrieval-quality benchmark (bench/quality): the shipped model ranks a transformed copy above
every unrelated photo, and the benchmark's generator and metrics behave."""

from __future__ import annotations

import json
from pathlib import Path

import calibrate
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from bench.quality import corpus, hygiene
from bench.quality.__main__ import CURVE_MARGINS, run
from bench.quality.corpus_set import choose, kinds_for
from bench.quality.dataset import BenchSet, encode, generate
from bench.quality.duplicates_bench import (
    album,
    found_by_kind,
    measure_duplicates,
    measure_library,
    pair_precision_recall,
    planted_originals,
)
from bench.quality.methods import OnnxEmbedding, PerceptualHash, TinyImage
from bench.quality.metrics import mean_average_precision, summarise, threshold_at_fpr, top1
from bench.quality.report import render
from bench.quality.sources import SOURCES, load_rgb
from bench.quality.transforms import ALL_TRANSFORMS, HARD_TRANSFORMS, crop_hard

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "functions" / "image_similarity" / "model"
FEW = tuple(s for s in SOURCES if s.name in ("chelsea", "coffee", "astronaut", "rocket", "china"))


@pytest.fixture(scope="module")
def small_bench():
    return generate(FEW, transforms=("crop", "screen"), variants=1)


def test_shipped_model_ranks_each_transformed_copy_above_every_unrelated_photo(small_bench):
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    model = OnnxEmbedding("shipped", path=MODEL_DIR / manifest["file"], size=manifest["input"]["size"])
    originals, copies = model.embed(small_bench.originals), model.embed(small_bench.copies)
    scores = originals @ copies.T
    own = scores[small_bench.labels, np.arange(len(small_bench.copies))]
    unrelated = np.where(np.arange(len(FEW))[:, None] == small_bench.labels[None, :], -np.inf, scores).max(axis=0)
    assert (own > unrelated).all(), list(zip(small_bench.kinds, own.round(3), unrelated.round(3), strict=True))


def test_embedding_decodes_one_batch_at_a_time_and_keeps_the_vectors_of_one_pass(small_bench, monkeypatch):
    """Memory stays at one batch of pixels whatever the number of images (all decoded first, the test split's
    copies held about 7 GB at 448 px); the vectors are those of every image in its own batch."""
    from bench.quality import methods

    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    model = OnnxEmbedding("shipped", path=MODEL_DIR / manifest["file"], size=manifest["input"]["size"])
    files = (small_bench.originals + small_bench.copies) * 2  # 30 images: two batches of 16 and 14
    decoded, real_decode, real_run = [0], methods.to_model_input, model.session.run

    def decode(*args, **kwargs):
        decoded[0] += 1
        return real_decode(*args, **kwargs)

    def run(outputs, feed):
        batch = next(iter(feed.values()))
        assert decoded[0] <= batch.shape[0] + sum(len(b) for b in batches)  # nothing decoded ahead of its batch
        batches.append(batch)
        return real_run(outputs, feed)

    batches: list[np.ndarray] = []
    monkeypatch.setattr(methods, "to_model_input", decode)
    monkeypatch.setattr(model, "session", type("Session", (), {"run": staticmethod(run)})())
    vectors = model.embed(files)
    assert [len(b) for b in batches] == [methods.EMBED_BATCH, len(files) - methods.EMBED_BATCH]
    monkeypatch.undo()
    one_by_one = np.concatenate([model.embed([f]) for f in files])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


def test_generator_is_seeded_and_a_subset_reproduces_the_full_sets_copies(small_bench):
    again = generate(FEW[:2], transforms=("screen",), variants=1)
    screen_copies = [c for c, k, label in zip(small_bench.copies, small_bench.kinds, small_bench.labels, strict=True)
                     if k == "screen" and label < 2]
    assert again.copies == screen_copies


def test_metrics_reward_the_right_ranking_and_punish_a_wrong_one():
    labels = np.array([0, 0, 1, 1])
    right = np.array([[0.9, 0.8, 0.1, 0.2], [0.2, 0.1, 0.9, 0.7]])
    assert mean_average_precision(right, labels) == 1.0 and top1(right, labels) == 1.0
    wrong = right[::-1]
    assert mean_average_precision(wrong, labels) < 0.6 and top1(wrong, labels) == 0.0
    assert summarise(right, labels)["tpr@1%"] == 1.0


def test_threshold_lets_through_at_most_the_asked_share_of_unrelated_pairs():
    negatives = np.linspace(0, 1, 1000)
    threshold = threshold_at_fpr(negatives, 0.01)
    assert np.mean(negatives > threshold) <= 0.01 < np.mean(negatives >= threshold - 0.002)


# ---- the development corpus, the harder copies, the split report (issue 13) --------------------------------------

def _photo(seed: int, side: int = 320) -> Image.Image:
    rng = np.random.default_rng(seed)
    field = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
    return Image.fromarray(field).resize((side, side * 3 // 4), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("kind", sorted(HARD_TRANSFORMS))
def test_each_hard_transform_is_seeded_and_changes_the_picture(kind):
    image = _photo(1)
    first = HARD_TRANSFORMS[kind](image, np.random.default_rng(5))
    again = HARD_TRANSFORMS[kind](image, np.random.default_rng(5))
    other = HARD_TRANSFORMS[kind](image, np.random.default_rng(6))
    assert first.mode == "RGB" and min(first.size) >= 16
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_deep_crops_keep_30_to_50_percent_of_the_area():
    image = _photo(2, 400)
    for seed in range(20):
        out = crop_hard(image, np.random.default_rng(seed))
        share = out.width * out.height / (image.width * image.height)
        assert 0.25 <= share <= 0.55, share


def _fake_package(root: Path, name: str, pictures: dict[str, Image.Image]) -> None:
    base = root / "x" / name / "data"
    base.mkdir(parents=True)
    for file, picture in pictures.items():
        picture.save(base / file)
    (root / "x" / name / ".done").write_text("1")


def test_corpus_drops_small_flat_and_duplicate_files_and_keeps_a_shared_picture_in_test_only(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CORPUS_DIR", tmp_path)
    shared = _photo(10)
    _fake_package(tmp_path, "train-pkg", {"a.png": shared, "b.png": _photo(11), "tiny.png": _photo(12, 64),
                                          "flat.png": Image.new("RGB", (300, 200), (90, 90, 90))})
    _fake_package(tmp_path, "test-pkg", {"c.png": shared.resize((280, 210)), "d.png": _photo(13)})
    packages = (corpus.Package("train-pkg", "1", "train", "k", "l", ("data/",)),
                corpus.Package("test-pkg", "1", "test", "k", "l", ("data/",)))
    kept = {(e.split, Path(e.path).name) for e in corpus.build(packages)}
    assert kept == {("train", "b.png"), ("test", "c.png"), ("test", "d.png")}


def test_corpus_refuses_the_wallpaper_packages_the_independent_evaluation_uses():
    with pytest.raises(SystemExit, match="never be used"):
        corpus.fetch(corpus.Package("gnome-backgrounds", "1", "train", "k", "l", ("x/",)))


def test_set_plan_takes_every_source_alike_and_cycles_every_kind():
    entries = [corpus.Entry("test", s, f"{s}/{i}.png") for s in ("a", "b") for i in range(10)] + [
        corpus.Entry("test", "c", "c/0.png")]
    picked = choose(entries, 9, seed=1)
    counts = {s: sum(e.source == s for e in picked) for s in "abc"}
    assert counts == {"a": 4, "b": 4, "c": 1}
    kinds = [k for row in kinds_for(len(ALL_TRANSFORMS), 2, seed=1) for k in row]
    assert sorted(set(kinds)) == sorted(ALL_TRANSFORMS) and all(kinds.count(k) == 2 for k in ALL_TRANSFORMS)


def test_duplicate_pairs_precision_and_recall():
    ids = np.array([0, 0, 0, 1, 1, 2])
    # one right group of three (3 true pairs) and one group mixing 1 and 2 (1 pair, wrong); the 1-1 pair is missed
    result = pair_precision_recall([[0, 1, 2], [4, 5]], ids)
    assert result["pairs_true"] == 4 and result["pairs_found"] == 4
    assert result["precision"] == 0.75 and result["recall"] == 0.75


def test_split_report_runs_end_to_end_on_a_tiny_corpus(small_bench):
    sets = {"validation": small_bench, "test": generate(FEW[:4], transforms=("crop", "flip"), variants=1)}
    record = run(sets, [TinyImage("tiny image 16x16", note="shipped stand-in"), PerceptualHash("pHash", note="b")],
                 {name: ["skimage"] * len(bench.originals) for name, bench in sets.items()}, dropped={"test": [1]})
    assert record["splits"]["test"] | {"sources": []} == {"originals": 3, "copies": 6, "sources": [],
                                                           "dropped_originals": 1, "dropped_copies": 2}
    duplicates = record["results"][0]["duplicates"]
    assert duplicates["default"]["images"] == 3 + 2 and duplicates["calibration"]["images"] == 5 + 4
    assert duplicates["default"]["margin"] == duplicates["calibration"]["margin"] in calibrate.MARGIN_GRID
    assert duplicates["calibrated_on_test"] in calibrate.MARGIN_GRID
    assert [c["margin"] for c in duplicates["curve"]] == list(CURVE_MARGINS)
    assert [d["images"] for d in duplicates["validation"]] == [5 + 4] * len(CURVE_MARGINS)  # 5 originals, 2 copied
    # the shipped model's default includes the pixel check, measured on both albums, and is reported without it too
    assert duplicates["default"]["pixel_check"] and duplicates["validation_check"]["pixel_check"]
    assert not duplicates["without_check"]["pixel_check"] and not any(c["pixel_check"] for c in duplicates["curve"])
    assert duplicates["without_check"]["margin"] == duplicates["default"]["margin"]
    assert duplicates["default"]["recall"] >= duplicates["without_check"]["recall"]  # the check only adds pairs
    text = render(record)
    assert "## Test split: all methods" in text and "## Validation split: all methods" in text
    assert "duplicates pair precision" in text and "threshold (1 % on val)" in text
    assert f"standing out by {duplicates['default']['margin']:.3f}; or its pixels agree" in text
    assert "margin 0.120" in text and "without the pixel check (`--no-pixel-check`)" in text
    # `duplicates --against`: the test split's 3 originals (one dropped) hold a library of 1, the rest are new
    library = duplicates["library"]["test"]
    assert library["default"]["library"] == 1 and library["default"]["new"] == 6 + 2
    assert library["default"]["copies_of_library"] == 2 and library["default"]["pixel_check"]
    assert not library["without_check"]["pixel_check"] and set(duplicates["library"]) == {"validation", "test"}
    assert "## `duplicates --against`" in text and "`--no-pixel-check`: from the 0.1 % threshold alone" in text
    transfer = record["results"][0]["test"]["transfer"]["fpr_0.01"]
    assert 0 <= transfer["fpr"] <= 1 and transfer["threshold"] == record["results"][0]["validation"]["calibration"][
        "threshold@1%"]


def test_the_library_measure_counts_a_look_alikes_report_as_wrong_and_a_missed_copy_against_recall():
    """Six orthogonal originals, two copies each, the copy of its original exactly. Original 5 is a look-alike of
    original k (the same vector); one copy of each library original is moved to score 0.9 (below the threshold)."""
    originals = np.eye(6, 8, dtype=np.float32)
    bench = BenchSet(originals=[b""] * 6, names=list("abcdef"), copies=[b""] * 12, labels=np.repeat(np.arange(6), 2),
                     kinds=np.array(["crop", "screen"] * 6))
    library = planted_originals(bench)
    assert len(library) == 3
    look_alike_of = library[0]
    outside = [i for i in range(6) if i not in library]
    originals[outside[0]] = originals[look_alike_of]
    copies = originals[bench.labels].copy()
    cos = 2 * 0.9 - 1
    for i in library:
        copies[2 * i + 1] = cos * originals[i] + np.sqrt(1 - cos**2) * np.eye(8, dtype=np.float32)[7]
    found = measure_library(bench, originals, copies, 0.95, 0.99, pixel_check=False)
    # reported: the 3 crop copies of library originals (right), outside[0] and its 2 copies (wrong: its look-alike)
    assert found["reports"] == 6 and found["precision"] == 0.5
    assert found["copies_of_library"] == 6 and found["recall"] == 0.5
    assert found["found_by_kind"] == {"crop": 1.0, "screen": 0.0}


def test_found_by_kind_counts_a_copy_only_in_its_own_originals_group():
    ids = np.array([0, 1, 2, 0, 0, 1])
    kinds = np.array(["", "", "", "crop", "screen", "crop"])
    # copy 3 (crop of 0) is with 0; copy 4 (screen of 0) is alone; copy 5 (crop of 1) sits with 2, not with 1
    assert found_by_kind([[0, 3], [2, 5]], ids, kinds) == {"crop": 0.5, "screen": 0.0}


# ---- corpus hygiene: same-picture originals (bench/quality/hygiene.py) --------------------------------------------

def _skimage(name: str) -> Image.Image:
    return load_rgb(next(s for s in SOURCES if s.name == name))


def test_a_mirrored_recoloured_crop_is_the_same_picture_and_other_pictures_are_not():
    astronaut = _skimage("astronaut").resize((400, 400))
    edited = ImageOps.mirror(astronaut.crop((40, 30, 380, 360))).resize((250, 243))
    edited = ImageEnhance.Brightness(edited).enhance(1.3)
    assert hygiene.same_picture(encode(astronaut, "PNG"), encode(edited, "JPEG"))
    assert not hygiene.same_picture(encode(astronaut, "PNG"), encode(_skimage("coffee"), "PNG"))


def test_the_same_window_with_other_content_in_half_of_it_is_not_the_same_picture():
    """Two pages of one settings dialog share their frame and half their pixels: look-alikes, not one picture."""
    first = _skimage("astronaut").resize((400, 300))
    second = first.copy()
    second.paste(_skimage("coffee").resize((200, 300)), (200, 0))
    assert not hygiene.same_picture(encode(first, "PNG"), encode(second, "PNG"))
    assert hygiene.same_picture(encode(first, "PNG"), encode(first, "JPEG"))


def test_candidates_are_near_neighbours_and_the_later_original_of_a_pair_is_dropped():
    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1], [-1, 0]], np.float32)
    assert (0, 1) in hygiene.candidate_pairs(vectors, neighbours=1)
    assert hygiene.dropped([(0, 3), (1, 3), (0, 1)]) == [1, 3]


def test_without_drops_originals_with_their_copies_and_renumbers_the_labels():
    bench = BenchSet([b"o0", b"o1", b"o2"], ["a", "b", "c"], [b"c0", b"c1", b"c2", b"c3"], np.array([0, 1, 1, 2]),
                     np.array(["crop", "flip", "jpeg", "crop"]))
    kept = hygiene.without(bench, [1])
    assert kept.bench.originals == [b"o0", b"o2"] and kept.bench.copies == [b"c0", b"c3"]
    assert kept.bench.labels.tolist() == [0, 1] and kept.bench.kinds.tolist() == ["crop", "crop"]
    assert kept.originals.tolist() == [0, 2] and kept.copies.tolist() == [0, 3]


def test_the_hygiene_record_is_found_once_and_kept_beside_the_set(tmp_path):
    files = [encode(_skimage(name).resize((256, 256)), "PNG") for name in ("astronaut", "coffee", "astronaut")]
    calls = []

    def embed(data: list[bytes]) -> np.ndarray:
        calls.append(len(data))
        return np.eye(3, dtype=np.float32)

    record = hygiene.load_or_find(tmp_path, files, embed)
    assert record["pairs"] == [[0, 2]] and record["dropped"] == [2]
    assert hygiene.load_or_find(tmp_path, files, embed) == record and calls == [3]


# ---- the duplicates margin (model/calibrate.py) ---------------------------------------------------------------------

def crowded_album_set() -> tuple[BenchSet, np.ndarray, np.ndarray]:
    """200 unrelated originals and a crowd of 60 look-alikes (0.95 with each other), two copies of each original
    (about 0.95 with it): at margin 0 the look-alikes fill the groups, a margin keeps only the copies."""
    rng = np.random.default_rng(0)
    unrelated = rng.normal(size=(200, 64))
    base = rng.normal(size=64)
    crowd = base / np.linalg.norm(base) + 0.33 * rng.normal(size=(60, 64)) / np.sqrt(64)
    originals = np.concatenate([unrelated / np.linalg.norm(unrelated, axis=1, keepdims=True),
                                crowd / np.linalg.norm(crowd, axis=1, keepdims=True)]).astype(np.float32)
    labels = np.repeat(np.arange(len(originals)), 2)
    copies = originals[labels] + 0.3 * rng.normal(size=(len(labels), 64)) / np.sqrt(64)
    copies = (copies / np.linalg.norm(copies, axis=1, keepdims=True)).astype(np.float32)
    bench = BenchSet(originals=[b""] * len(originals), names=[str(i) for i in range(len(originals))],
                     copies=[b""] * len(labels), labels=labels, kinds=np.array(["crop", "screen"] * len(originals)))
    return bench, originals, copies


def test_the_duplicates_margin_is_the_smallest_of_the_grid_with_the_target_precision_and_halves_move_it():
    bench, originals, copies = crowded_album_set()
    found = calibrate.duplicates_margin(bench, originals, copies, 0.85, 1.01)  # no certain tier
    margin = found["margin"]
    assert 0 < margin < calibrate.MARGIN_GRID[-1] and found["precision"] >= calibrate.DUPLICATES_PRECISION
    assert measure_duplicates(bench, originals, copies, 0.85, margin - 0.005, 1.01)["precision"] < (
        calibrate.DUPLICATES_PRECISION)
    assert found["recall"] == measure_duplicates(bench, originals, copies, 0.85, margin, 1.01)["recall"] > 0.5
    halves = calibrate.half_margins(bench, originals, copies, 0.85)
    assert len(halves) == calibrate.HALVES and all(h in calibrate.MARGIN_GRID for h in halves)
    assert min(halves) <= margin + 0.05 and max(halves) >= margin - 0.05


def test_the_certain_threshold_lets_its_share_of_unrelated_album_pairs_through():
    bench, originals, copies = crowded_album_set()
    certain = calibrate.duplicates_certain(bench, originals, copies)
    vectors, ids, _ = album(bench, originals, copies)
    scores = 0.5 + 0.5 * vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    unrelated = scores[np.triu_indices(len(ids), 1)][(ids[:, None] != ids[None, :])[np.triu_indices(len(ids), 1)]]
    allowed = int(calibrate.DUPLICATES_CERTAIN_FPR * len(unrelated))  # 1 of these 134,550 pairs
    assert allowed >= 1 and (unrelated > certain).sum() == allowed and certain in unrelated


def test_the_shipped_thresholds_are_the_calibrated_ones_and_duplicates_uses_them():
    from image_similarity.core import settings

    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    calibration = json.loads((ROOT / "model" / "calibration.json").read_text())
    assert calibration["sha256"] == manifest["sha256"] and calibration["thresholds"] == manifest["thresholds"]
    thresholds = manifest["thresholds"]
    assert thresholds["fpr_0.01"] < thresholds["fpr_0.001"] < 1 and 0 < thresholds["duplicates_margin"] < 0.2
    assert thresholds["fpr_0.01"] == settings.DUPLICATE_THRESHOLD
    assert thresholds["duplicates_margin"] == settings.DUPLICATE_MARGIN
    assert thresholds["duplicates_certain"] == settings.DUPLICATE_CERTAIN_THRESHOLD > thresholds["fpr_0.001"]
    assert calibration["duplicates"]["precision"] >= calibrate.DUPLICATES_PRECISION


def test_the_docs_and_the_contract_publish_the_manifests_thresholds():
    thresholds = json.loads((MODEL_DIR / "manifest.json").read_text())["thresholds"]
    contract = json.loads((ROOT / "functions" / "image_similarity" / "openapi.json").read_text())["info"]["description"]
    for text in ((ROOT / "README.md").read_text(), (ROOT / "docs" / "QUALITY.md").read_text(), contract):
        assert all(f"**{value:g}**" in text for value in thresholds.values())


def test_a_manifest_without_a_threshold_says_how_to_calibrate_it(tmp_path):
    from image_similarity.core import settings

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"thresholds": {"fpr_0.01": 0.8, "fpr_0.001": 0.9}}))
    assert settings._calibrated_threshold("fpr_0.001", manifest) == 0.9
    with pytest.raises(RuntimeError, match=r"no thresholds.duplicates_margin: run `python model/build.py --calib"):
        settings._calibrated_threshold("duplicates_margin", manifest)
