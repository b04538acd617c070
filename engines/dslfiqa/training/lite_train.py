"""Train DSL-FIQA-Lite on the labelled faces of :mod:`engines.dslfiqa.training.lite_data`.

A batch is ``faces_per_batch`` training faces with *all* their variants (the clean copy and
its degraded versions), so the loss can compare degradations of the same content, which is
what best-frame selection needs. Loss = Charbonnier(score, label) (official) +
``rank_weight`` x a pairwise hinge on pairs of the same face whose labels differ by more
than ``rank_gap``. Augmentation: a random crop position (the variant's crop offsets) and a
horizontal flip. AdamW with a cosine schedule over the time box; validation every
``val_every`` steps on the val split's severity ladders (mean per-face, per-family
Spearman correlation of score vs level); the best validation goes to ``out``.

Example:
    >>> history = train_lite(data_dir, out_dir, LiteTrainConfig(minutes=30))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engines.dslfiqa.lite import DslFiqaLite, LiteConfig, save_lite
from engines.dslfiqa.preprocess import landmark_vector
from engines.metrics import srcc


@dataclass(frozen=True)
class LiteTrainConfig:
    """Settings of one ``fqm train lite`` run (defaults reproduce the shipped weights)."""

    minutes: float = 25.0
    max_steps: int | None = None
    faces_per_batch: int = 6
    lr: float = 2e-3
    weight_decay: float = 1e-4
    rank_weight: float = 1.0
    rank_margin: float = 0.05
    rank_gap: float = 0.03
    val_every: int = 100
    source_balance: float = 0.5
    seed: int = 0
    threads: int = 2
    model: LiteConfig = field(default_factory=LiteConfig)


def charbonnier(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + 1e-6).mean()


def rank_loss(
    pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor, margin: float, gap: float
) -> torch.Tensor:
    """Hinge on every ordered pair of the same group whose targets differ by > ``gap``."""
    dt = target[:, None] - target[None, :]
    same = group[:, None] == group[None, :]
    pairs = same & (dt > gap)
    if not pairs.any():
        return pred.sum() * 0
    dp = pred[:, None] - pred[None, :]
    return torch.relu(margin - dp[pairs]).mean()


def _vectors(landmarks: np.ndarray, top: int, left: int, crop: int) -> np.ndarray:
    return landmark_vector(landmarks, top, left, crop)


def prepare_batch(
    images: np.ndarray,
    landmarks: np.ndarray,
    config: LiteConfig,
    rng: np.random.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 faces [B,S,S,3] at ``image_size`` -> normalised crops and landmark vectors.

    ``rng`` None: the centre crop, no flip (evaluation, as ``mode="center"`` scores)."""
    crop, size = config.crop_size, config.image_size
    out = np.empty((len(images), 3, crop, crop), np.float32)
    vecs = np.empty((len(images), 500), np.float32)
    max_off = size - crop
    for i, (im, lm) in enumerate(zip(images, landmarks, strict=True)):
        if rng is None:
            top = left = max_off // 2
            flip = False
        else:
            top, left = (int(v) for v in rng.integers(0, max_off, size=2))
            flip = bool(rng.random() < 0.5)
        c = im[top : top + crop, left : left + crop]
        pts = np.asarray(lm, np.float64)
        if flip:
            c = c[:, ::-1]
            pts = pts.copy()
            pts[:, 0] = (2 * left + crop - 1) - pts[:, 0]
        out[i] = (c.transpose(2, 0, 1).astype(np.float32) / 255.0 - 0.5) / 0.5
        vecs[i] = _vectors(pts, top, left, crop)
    return torch.from_numpy(out), torch.from_numpy(vecs)


def predict(model: DslFiqaLite, images: np.ndarray, landmarks: np.ndarray, batch: int = 64):
    """Centre-crop scores of faces at the model's ``image_size`` (numpy [N])."""
    model.eval()
    scores = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x, v = prepare_batch(
                images[i : i + batch], landmarks[i : i + batch], model.config, None
            )
            scores.append(model(x, v).numpy())
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)


def ladder_metrics(scores: np.ndarray, ladder: dict[str, np.ndarray]) -> dict:
    """Per family: the mean over faces of SRCC(score, -level) on the face's ladder (its
    clean copy + the family's levels); ``mean`` over families; ``real_pair``: the fraction
    of pair faces whose clean copy scores above the real distorted twin."""
    fam, lvl, face = ladder["family"], ladder["level"], ladder["face"]
    out: dict[str, float] = {}
    per_family = {}
    for f in sorted(set(fam) - {"clean", "real-h264"}):
        vals = []
        for k in np.unique(face):
            sel = (face == k) & ((fam == f) | (fam == "clean"))
            if sel.sum() >= 3:
                vals.append(srcc(scores[sel], -lvl[sel]))
        per_family[str(f)] = float(np.nanmean(vals)) if vals else math.nan
    out.update(per_family)
    out["mean"] = float(np.nanmean(list(per_family.values()))) if per_family else math.nan
    real = fam == "real-h264"
    if real.any():
        wins = [
            float(scores[(face == k) & (fam == "clean")][0] > scores[(face == k) & real][0])
            for k in np.unique(face[real])
        ]
        out["real_pair"] = float(np.mean(wins))
    return out


def sharpness_baseline(ladder: dict[str, np.ndarray], crop: int) -> np.ndarray:
    """The baseline score: variance of the Laplacian of the centre crop's luma."""
    from engines.dslfiqa.training.degradations import laplacian_variance

    s = ladder["images"].shape[1]
    o = (s - crop) // 2
    return np.array([laplacian_variance(im[o : o + crop, o : o + crop]) for im in ladder["images"]])


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def train_lite(
    data_dir: str | Path,
    out: str | Path,
    config: LiteTrainConfig = LiteTrainConfig(),
    log: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Train from ``data_dir/train.npz`` (validating on ``val.npz``), write the best
    weights to ``out`` and ``train_log.json`` (config, loss curve, validations)."""
    data_dir, out = Path(data_dir), Path(out)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    train = _load(data_dir / "train.npz")
    if (data_dir / "train_stills.npz").is_file():
        stills = _load(data_dir / "train_stills.npz")
        train = {k: np.concatenate([train[k], stills[k]]) for k in train if k in stills}
    val = _load(data_dir / "val.npz") if (data_dir / "val.npz").is_file() else None
    mc = config.model
    if train["images"].shape[1] != mc.image_size:
        raise ValueError(
            f"{data_dir}/train.npz holds {train['images'].shape[1]}-pixel faces, the model "
            f"takes {mc.image_size}: rebuild the data for this config"
        )
    model = mc.build()
    groups = train["group"]
    members = {int(g): np.flatnonzero(groups == g) for g in np.unique(groups)}
    keys = np.array(sorted(members))
    # Face groups are drawn with replacement: with probability source_balance a source is
    # picked uniformly first (so the few photos are not drowned by 400 video frames).
    if "source" in train:
        src_of = np.array([train["source"][members[int(k)][0]] for k in keys])
        names, counts = np.unique(src_of, return_counts=True)
        per_source = {n: 1.0 / (len(names) * c) for n, c in zip(names, counts, strict=True)}
        p = (1 - config.source_balance) / len(keys) + config.source_balance * np.array(
            [per_source[s] for s in src_of]
        )
    else:
        p = np.full(len(keys), 1.0 / len(keys))
    p = p / p.sum()
    labels = torch.from_numpy(train["label"].astype(np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    budget = config.minutes * 60
    start = time.monotonic()
    history: dict = {"config": _config_dict(config), "steps": [], "val": []}
    best = -math.inf
    step = 0
    window: list[tuple[float, float]] = []
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= budget or (config.max_steps is not None and step >= config.max_steps):
            break
        frac = elapsed / budget
        if config.max_steps is not None:
            frac = max(frac, step / config.max_steps)
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        chosen = rng.choice(keys, size=config.faces_per_batch, replace=False, p=p)
        idx = np.concatenate([members[int(k)] for k in chosen])
        x, v = prepare_batch(train["images"][idx], train["landmarks"][idx], mc, rng)
        model.train()
        pred = model(x, v)
        target = labels[idx]
        reg = charbonnier(pred, target)
        rank = rank_loss(
            pred, target, torch.from_numpy(groups[idx]), config.rank_margin, config.rank_gap
        )
        loss = reg + config.rank_weight * rank
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        window.append((reg.item(), rank.item()))
        if step % 25 == 0:
            r, k = np.mean(window, axis=0)
            window = []
            history["steps"].append(
                {
                    "step": step,
                    "seconds": round(time.monotonic() - start, 1),
                    "lr": lr,
                    "charbonnier": float(r),
                    "rank": float(k),
                }
            )
            log(
                f"step {step} {time.monotonic() - start:.0f}s lr {lr:.2e} "
                f"charbonnier {r:.4f} rank {k:.4f}"
            )
        if val is not None and step % config.val_every == 0:
            best = _validate(model, val, history, step, best, out, log)
    if val is not None and (not history["val"] or history["val"][-1]["step"] != step):
        best = _validate(model, val, history, step, best, out, log)
    elif val is None:
        save_lite(model, out)
    history["train_seconds"] = round(time.monotonic() - start, 1)
    history["steps_done"] = step
    history["train_samples"] = len(labels)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_log.json").write_text(json.dumps(history, indent=1) + "\n")
    return history


def _validate(model, val, history, step, best, out, log) -> float:
    scores = predict(model, val["images"], val["landmarks"])
    metrics = ladder_metrics(scores, val)
    history["val"].append({"step": step, **metrics})
    log(
        f"val step {step}: mean SRCC {metrics['mean']:.3f} "
        + " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if k != "mean")
    )
    if metrics["mean"] > best:
        save_lite(model, out)
        history["best"] = {"step": step, **metrics}
        return metrics["mean"]
    return best


def _config_dict(config: LiteTrainConfig) -> dict:
    d = asdict(config)
    d["model"] = config.model.to_dict()
    return d


def evaluate_lite(model: DslFiqaLite, data_dir: str | Path, split: str = "test") -> dict:
    """Ladder metrics of ``model`` and of the sharpness baseline on ``<split>.npz``, per
    source (clip) and over all of it."""
    ladder = _load(Path(data_dir) / f"{split}.npz")
    scores = predict(model, ladder["images"], ladder["landmarks"])
    base = sharpness_baseline(ladder, model.config.crop_size)
    result: dict = {"faces": len(np.unique(ladder["face"])), "images": len(scores)}
    result["all"] = {
        "lite": ladder_metrics(scores, ladder),
        "sharpness": ladder_metrics(base, ladder),
    }
    for src in np.unique(ladder["source"]):
        sel = ladder["source"] == src
        part = {k: v[sel] for k, v in ladder.items()}
        result[str(src)] = {
            "lite": ladder_metrics(scores[sel], part),
            "sharpness": ladder_metrics(base[sel], part),
        }
    return result
