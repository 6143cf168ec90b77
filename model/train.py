"""Train the copy-detection head on the development corpus's train split; every stage is cached.

    python model/train.py [--retrain]   # views -> features -> whitening -> fine-tunes -> model/copy_head.npz

Stages (each skipped when its output exists under CORPUS_DIR/train/<package list>/; a fine-tune checkpoints the best
epoch after each one, 10-18 minutes apart on one core):
1. views: per train original (loaded at most 512 px on its longest side, as the benchmark's), its centre square and
   VIEW_STREAMS x AUG_VIEWS seeded copies (bench/quality/transforms.py, all kinds, the hard ones twice as often), as
   the model's 224 x 224 uint8 input.
2. features: per fine-tune, the frozen trunk (ImageNet weights up to its last frozen stage) on every view, kept as
   float16.
3. whitening: the ImageNet head, GeM pooled, then a 512-d learned whitening fitted in closed form on the
   (original, copy) pairs: directions in which a copy differs from its original are shrunk, the rest kept.
4. fine-tunes (FINETUNES, progressive unfreezing): stages 5 to 7, the head, the GeM exponent and the projection from
   step 3; then stage 4 as well, from the first's result. Each trains with a multi-positive InfoNCE loss (every view
   of an image is a positive of every other; the rest of the batch are negatives); each epoch pairs every image's
   centre square with COPIES_PER_STEP of its copies drawn afresh; the learning rate follows a cosine from the
   fine-tune's rate to 0. The epoch kept is the one with the best validation mAP (validation split, cached
   features): no test image is ever seen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from build import HEAD_WEIGHTS, export, load_backbone, load_head
from copydetect import EMBEDDING_DIM, FROZEN_STAGES, CopyHead, FrozenTrunk
from image_similarity.core.images import centre_square, to_model_input

from bench.quality.corpus import CORPUS_DIR, corpus_key, load_corpus, split
from bench.quality.corpus_set import load_set
from bench.quality.metrics import summarise
from bench.quality.transforms import ALL_TRANSFORMS, HARD_TRANSFORMS, jpeg

TRAIN_SEED = 1301
N_TRAIN = 2516  # all the train originals (stage_views refuses a split of another size)
AUG_VIEWS = 2  # per stream
VIEW_STREAMS = 4  # 1 clean + 8 copies per image
SIZE = 224
CHUNK = 100
BATCH_IMAGES = 96
COPIES_PER_STEP = 2  # of an image's 8 copies, drawn afresh each epoch (model/MODEL_CARD.md)
TEMPERATURE = 0.05
PROJECTION_LR_SCALE = 1.0  # 4 (the projection at 2e-3) measured the same: 0.7279 against 0.7284 (model/MODEL_CARD.md)
WORK = CORPUS_DIR / "train" / corpus_key()[:12]  # the views are of this package list's train split


@dataclass(frozen=True)
class Finetune:
    frozen: int  # stages 1..frozen keep ImageNet's weights; their output is cached
    epochs: int  # an epoch is 7,548 views: 9-12 min on 1 core from stage 5 on, 13-17 min from stage 4 on
    learning_rate: float  # cosine-decayed to 0 over the fine-tune


# Each starts from the one before (the first from the whitening). Stages 4-7 trained from the whitening instead (5
# epochs, 5e-4) measured validation mAP 0.854 against 0.856 (model/MODEL_CARD.md).
FINETUNES = (Finetune(4, 5, 5e-4), Finetune(FROZEN_STAGES, 4, 3e-4))


def _kinds() -> tuple[list[str], np.ndarray]:
    names = list(ALL_TRANSFORMS)
    weights = np.array([2.0 if n in HARD_TRANSFORMS else 1.0 for n in names])
    return names, weights / weights.sum()


def _views_of(job: tuple[int, str, int]) -> np.ndarray:
    from bench.quality.corpus import Entry

    index, path, stream = job
    image = Entry("", "", path).load()  # longest side at most 512 px, as the benchmark's originals
    # Each stream has seeds of its own (stream 0 keeps v4's): adding streams leaves the earlier ones' views as they
    # are.
    rng = np.random.default_rng([TRAIN_SEED, index, stream] if stream else [TRAIN_SEED, index])
    names, weights = _kinds()
    views = [centre_square(image, SIZE)] if stream == 0 else []
    for _ in range(AUG_VIEWS):
        copy = ALL_TRANSFORMS[names[rng.choice(len(names), p=weights)]](image, rng)
        views.append(centre_square(jpeg(copy, int(rng.integers(70, 96))), SIZE))
    return np.stack(views)


def _view_dir(stream: int) -> Path:
    return WORK / ("views" if stream == 0 else f"views_{stream}")


def stage_views(workers: int) -> list[list[Path]]:
    """Per stream, its chunk files of (images, views, 224, 224, 3) uint8."""
    entries = split(load_corpus(), "train")
    if len(entries) != N_TRAIN:  # a stale N_TRAIN would train on a seeded sample of the split without a word
        raise SystemExit(f"the train split has {len(entries)} originals and N_TRAIN says {N_TRAIN}: set N_TRAIN")
    # A seeded order whose prefixes are stable: a larger N_TRAIN re-uses the earlier chunks but the last partial one.
    order = np.random.default_rng(TRAIN_SEED).permutation(len(entries))[:N_TRAIN]
    paths = [entries[i].path for i in order]
    streams = []
    with ProcessPoolExecutor(workers) as pool:
        for stream in range(VIEW_STREAMS):
            out = _view_dir(stream)
            out.mkdir(parents=True, exist_ok=True)
            chunks = []
            for c in range(0, len(paths), CHUNK):
                target = out / f"{c // CHUNK:04d}.npy"
                chunks.append(target)
                if target.exists():
                    continue
                start = time.perf_counter()
                jobs = [(c + i, p, stream) for i, p in enumerate(paths[c:c + CHUNK])]
                views = np.stack(list(pool.map(_views_of, jobs)))
                np.save(target, views)
                elapsed = time.perf_counter() - start
                print(f"views {out.name}/{target.name}: {len(views)} images x {views.shape[1]} views in "
                      f"{elapsed:.0f} s ({len(views) / elapsed:.2f} images/s)", flush=True)
            streams.append(chunks)
    return streams


class TrunkRunner:
    """The frozen trunk through ONNX Runtime: about twice torch's speed on these CPUs, and it is never trained. Its
    outputs live in `dir`: they depend on where the trunk ends."""

    def __init__(self, threads: int, frozen: int):
        import onnxruntime as ort

        self.dir = WORK / f"stage{frozen}"
        path = self.dir / "trunk.onnx"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            export(FrozenTrunk(load_backbone(SIZE), frozen).eval(), path, "features", SIZE)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = [self.session.run(None, {"images": np.ascontiguousarray(pixels[i:i + 32])})[0].astype(np.float16)
               for i in range(0, len(pixels), 32)]
        return np.concatenate(out)


def stage_features(streams: list[list[Path]], trunk: TrunkRunner) -> np.ndarray:
    """(images, views, channels, height, width) float16: view 0 the centre square, then every stream's copies."""
    target = trunk.dir / f"features_{N_TRAIN}x{1 + AUG_VIEWS * VIEW_STREAMS}.npy"
    if not target.exists():
        per_stream = []
        for stream, chunks in enumerate(streams):
            parts = []
            for chunk in chunks:
                part = trunk.dir / ("features" if stream == 0 else f"features_{stream}") / chunk.name
                if not part.exists():
                    part.parent.mkdir(exist_ok=True)
                    start = time.perf_counter()
                    views = np.load(chunk)
                    n, v = views.shape[:2]
                    f = trunk(views.reshape(n * v, SIZE, SIZE, 3))
                    np.save(part, f.reshape(n, v, *f.shape[1:]))
                    elapsed = time.perf_counter() - start
                    print(f"features {part.parent.name}/{part.name}: {n * v} views in {elapsed:.0f} s "
                          f"({n * v / elapsed:.1f} views/s)", flush=True)
                parts.append(np.load(part))
            per_stream.append(np.concatenate(parts))
        np.save(target, np.concatenate(per_stream, axis=1))
    return np.load(target)


def stage_validation_features(trunk: TrunkRunner) -> dict[str, np.ndarray]:
    target = trunk.dir / "validation.npz"
    if not target.exists():
        bench = load_set("validation")
        originals = np.stack([to_model_input(d, SIZE) for d in bench.originals])
        copies = np.stack([to_model_input(d, SIZE) for d in bench.copies])
        np.savez(target, originals=trunk(originals), copies=trunk(copies),
                 labels=bench.labels, kinds=bench.kinds)
    return dict(np.load(target))


@torch.no_grad()
def _embed(head: CopyHead, feats: np.ndarray, pooled: bool = False) -> np.ndarray:
    out = []
    for i in range(0, len(feats), 256):
        x = torch.from_numpy(np.asarray(feats[i:i + 256], np.float32))
        out.append((head.pooled(x) if pooled else head(x)).numpy())
    return np.concatenate(out)


def validate(head: CopyHead, val: dict[str, np.ndarray]) -> dict[str, float]:
    head.eval()
    scores = 0.5 + 0.5 * _embed(head, val["originals"]) @ _embed(head, val["copies"]).T
    result = summarise(scores, val["labels"])
    for kind in ("screen_hard", "print_hard", "combo"):
        keep = val["kinds"] == kind
        result[f"top1_{kind}"] = summarise(scores[:, keep], val["labels"][keep])["top1"]
    return result


def fit_whitening(pooled: np.ndarray, dim: int, shrink: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Learned whitening (Radenovic et al., PAMI 2018) in closed form: `pooled` is (images, views, d), view 0 the
    original. Returns (weight (dim, d), mean (d,)): directions in which a copy differs from its original are shrunk
    (inverse square root of the within-pair covariance, itself shrunk towards its mean eigenvalue: a few thousand
    pairs do not pin down a 1,280 x 1,280 covariance), then the `dim` directions that vary most across images."""
    n, v, d = pooled.shape
    pooled = pooled / np.linalg.norm(pooled, axis=2, keepdims=True)
    mean = pooled.reshape(n * v, d).mean(axis=0)
    diffs = (pooled[:, 1:] - pooled[:, :1]).reshape(-1, d)
    within = diffs.T @ diffs / len(diffs)
    within += np.eye(d) * shrink * np.trace(within) / d
    values, vectors = np.linalg.eigh(within)
    inv_sqrt = vectors @ np.diag(values ** -0.5) @ vectors.T
    centred = (pooled.reshape(n * v, d) - mean) @ inv_sqrt.T
    _, directions = np.linalg.eigh(centred.T @ centred / len(centred))
    return directions[:, ::-1][:, :dim].T @ inv_sqrt, mean


def stage_whitening(head: CopyHead, feats: np.ndarray) -> None:
    n, v = feats.shape[:2]
    pooled = np.concatenate([_embed(head, feats[c:c + CHUNK].reshape(-1, *feats.shape[2:]), pooled=True)
                             for c in range(0, n, CHUNK)]).astype(np.float64).reshape(n, v, -1)
    weight, mean = fit_whitening(pooled, EMBEDDING_DIM)
    with torch.no_grad():
        head.projection.weight.copy_(torch.from_numpy(weight).float())
        head.projection.bias.copy_(torch.from_numpy(-weight @ mean).float())


def info_nce(embeddings: torch.Tensor, groups: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Multi-positive InfoNCE: each view's positives are the other views of its image."""
    logits = embeddings @ embeddings.T / temperature
    eye = torch.eye(len(embeddings), dtype=torch.bool)
    logits = logits.masked_fill(eye, -1e9)
    positive = (groups[:, None] == groups[None, :]) & ~eye
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(log_prob * positive).sum(1).div(positive.sum(1)).mean()


def epoch_views(rng: np.random.Generator, images: int, views: int) -> np.ndarray:
    """(images, 1 + COPIES_PER_STEP) view indices for one epoch: each image's centre square (what a collection
    holds) and copies drawn afresh, so epochs differ."""
    copies = np.argsort(rng.random((images, views - 1)), axis=1)[:, :COPIES_PER_STEP] + 1
    return np.concatenate([np.zeros((images, 1), int), copies], axis=1)


def unfreeze(head: CopyHead, frozen: int) -> CopyHead:
    """`head` with the blocks between stage `frozen` and its first added back, ImageNet's weights: on the trunk that
    ends at stage `frozen` it computes the same embedding as `head` on its own trunk."""
    grown = CopyHead(load_backbone(SIZE), frozen=frozen)
    shift = len(grown.blocks) - len(head.blocks)

    def moved(key: str) -> str:
        if not key.startswith("blocks."):
            return key
        _, index, rest = key.split(".", 2)
        return f"blocks.{int(index) + shift}.{rest}"

    grown.load_state_dict({**grown.state_dict(), **{moved(k): t for k, t in head.state_dict().items()}})
    return grown


def stage_finetune(head: CopyHead, feats: np.ndarray, val: dict[str, np.ndarray], epochs: int,
                   learning_rate: float, checkpoint=None) -> dict:
    torch.manual_seed(TRAIN_SEED)
    rng = np.random.default_rng(TRAIN_SEED)
    projection = list(head.projection.parameters())
    rest = [p for p in head.parameters() if p.requires_grad and all(p is not q for q in projection)]
    optimiser = torch.optim.AdamW([{"params": rest, "lr": learning_rate},
                                   {"params": projection, "lr": learning_rate * PROJECTION_LR_SCALE}],
                                  weight_decay=1e-4)
    n, v = feats.shape[:2]
    steps_per_epoch = len(range(0, n - BATCH_IMAGES // 2, BATCH_IMAGES))  # a short last batch has too few negatives
    total = steps_per_epoch * epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5 * (1 + np.cos(np.pi * step / total)))
    best = {"epoch": 0, **validate(head, val)}
    best_state = {k: t.clone() for k, t in head.state_dict().items()}
    print(f"epoch 0 (as it starts): {json.dumps({k: round(x, 4) for k, x in best.items()})}", flush=True)
    history = [dict(best)]
    for epoch in range(1, epochs + 1):
        head.train()
        for module in head.modules():  # ImageNet batch-norm statistics stay as they are
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        start, losses = time.perf_counter(), []
        order, chosen = rng.permutation(n), epoch_views(rng, n, v)
        for b in range(0, steps_per_epoch * BATCH_IMAGES, BATCH_IMAGES):
            idx = np.sort(order[b:b + BATCH_IMAGES])
            batch = feats[idx[:, None], chosen[idx]]
            x = torch.from_numpy(batch.astype(np.float32)).reshape(-1, *feats.shape[2:])
            groups = torch.arange(len(idx)).repeat_interleave(batch.shape[1])
            loss = info_nce(head(x), groups, TEMPERATURE)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        train_s = time.perf_counter() - start
        result = {"epoch": epoch, "loss": float(np.mean(losses)), "train_s": train_s, **validate(head, val)}
        history.append(result)
        print(f"epoch {epoch} ({train_s:.0f} s + validation {time.perf_counter() - start - train_s:.0f} s): "
              f"{json.dumps({k: round(x, 4) for k, x in result.items()})}", flush=True)
        if result["mAP"] > best["mAP"]:
            best, best_state = result, {k: t.clone() for k, t in head.state_dict().items()}
        if checkpoint is not None:  # the best so far, so a stopped run still leaves a usable head
            checkpoint(best_state, {"best": best, "history": history})
    head.load_state_dict(best_state)
    return {"best": best, "history": history}


def _saver(step: Finetune, target: Path, log_path: Path, run: dict):
    """The checkpoint callback of one fine-tune: its head to `target`, its log to `log_path`; the last fine-tune's log
    is the whole run's (model/train_log.json)."""
    start = time.perf_counter()

    def save(state: dict, log: dict) -> None:
        run["timings"][f"finetune_stage{step.frozen}_s"] = time.perf_counter() - start
        np.savez(target, **{k: t.detach().numpy() for k, t in state.items()})
        log = {**asdict(step), **log}
        whole = {**run, "best": log["best"], "finetunes": [*run["finetunes"], log]}
        log_path.write_text(json.dumps(whole if target == HEAD_WEIGHTS else log, indent=1))

    return save


def trained_head(workers: int = 2) -> tuple[CopyHead, dict]:
    """The fitted head (HEAD_WEIGHTS) and the log of how it was chosen."""
    log_path = HERE / "train_log.json"
    if HEAD_WEIGHTS.exists() and log_path.exists():
        return load_head(HEAD_WEIGHTS), json.loads(log_path.read_text())
    torch.set_num_threads(workers)
    run, head = {"timings": {}, "finetunes": []}, None
    start = time.perf_counter()
    streams = stage_views(workers)
    run["timings"]["views_s"] = time.perf_counter() - start
    for step in FINETUNES:
        trunk = TrunkRunner(workers, step.frozen)
        start = time.perf_counter()
        feats = stage_features(streams, trunk)
        val = stage_validation_features(trunk)
        run["timings"][f"features_stage{step.frozen}_s"] = time.perf_counter() - start
        run.update(train_images=int(feats.shape[0]), views_per_image=int(feats.shape[1]))
        # An earlier fine-tune's result is cached beside its features; the last one's is HEAD_WEIGHTS.
        last = step is FINETUNES[-1]
        target, step_log = (HEAD_WEIGHTS, log_path) if last else (trunk.dir / "head.npz", trunk.dir / "head.json")
        fresh = head is None
        head = CopyHead(load_backbone(SIZE), frozen=step.frozen) if fresh else unfreeze(head, step.frozen)
        done = json.loads(step_log.read_text()) if not last and step_log.exists() else None
        if done is not None and len(done["history"]) == step.epochs + 1:  # finished, not a stopped run's best so far
            run["finetunes"].append(done)
            head = load_head(target, head)
            continue
        if fresh:
            start = time.perf_counter()
            stage_whitening(head, feats)
            run["timings"]["whitening_s"] = time.perf_counter() - start
        save = _saver(step, target, step_log, run)
        log = stage_finetune(head, feats, val, step.epochs, step.learning_rate, save)
        save(head.state_dict(), log)
        run["finetunes"].append({**asdict(step), **log})
    return head.eval(), json.loads(log_path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stage", choices=("views", "all"), default="all")
    parser.add_argument("--retrain", action="store_true",
                        help=f"fit the head again even though {HEAD_WEIGHTS.name} exists (cached stages are re-used)")
    args = parser.parse_args(argv)
    if args.retrain:
        HEAD_WEIGHTS.unlink(missing_ok=True)
    if args.stage == "views":
        stage_views(args.workers)
        return 0
    _, log = trained_head(args.workers)
    print(json.dumps(log["best"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
