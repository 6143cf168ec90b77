"""A small run of the retrieval-quality benchmark (bench/quality): the shipped model ranks a transformed copy above
every unrelated photo, and the benchmark's generator and metrics behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.quality.dataset import generate
from bench.quality.methods import OnnxEmbedding
from bench.quality.metrics import mean_average_precision, summarise, threshold_at_fpr, top1
from bench.quality.sources import SOURCES

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
