"""A small run of the retrieval-quality benchmark (bench/quality): the shipped model ranks a transformed copy above
every unrelated photo, and the benchmark's generator and metrics behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.quality import corpus
from bench.quality.__main__ import run
from bench.quality.corpus_set import choose, kinds_for
from bench.quality.dataset import generate
from bench.quality.duplicates_bench import pair_precision_recall
from bench.quality.methods import OnnxEmbedding, PerceptualHash, TinyImage
from bench.quality.metrics import mean_average_precision, summarise, threshold_at_fpr, top1
from bench.quality.report import render
from bench.quality.sources import SOURCES
from bench.quality.transforms import ALL_TRANSFORMS, HARD_TRANSFORMS, crop_hard

MODEL_DIR = Path(__file__).resolve().parents[1] / "functions" / "image_similarity" / "model"
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
                 {"validation": ["skimage"], "test": ["skimage"]})
    text = render(record)
    assert "## Test split: all methods" in text and "## Validation split: all methods" in text
    assert "duplicates pair precision" in text and "threshold (1 % on val)" in text
    transfer = record["results"][0]["test"]["transfer"]["fpr_0.01"]
    assert 0 <= transfer["fpr"] <= 1 and transfer["threshold"] == record["results"][0]["validation"]["calibration"][
        "threshold@1%"]
