"""Degradation-encoder pre-training: dual-set (synthetic + real) contrastive learning.

The official repository ships the DE weights but not the stage that learns them; this is our
design after the paper's idea (docs/training.md has the full rationale):

* **Synthetic set** -- a random :class:`~.degradations.Degradation` recipe applied to two
  *different* pristine faces gives a positive pair: same degradation, different content.
* **Real set** -- two crops of one really degraded picture, or of two nearby frames of one
  degraded video (same codec and settings), give a positive pair.
* **Negatives** -- every other key of the step (synthetic and real share one softmax, so
  each set is contrasted against the other in both directions), a FIFO queue of keys from
  earlier steps, and, for real videos that come with a clean twin (pristine/distorted
  pairs such as carphone), the clean frame at the *same crop*: same content, different
  degradation, the hardest negative for an encoder that leaks content.
* **Loss** -- symmetric InfoNCE (query->key and key->query) at temperature 0.2 on the
  official embedding: the DE's MLP output map flattened and L2-normalised.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from engines.dataset import IMAGE_SUFFIXES, read_image_rgb
from engines.dslfiqa.checkpoint import CheckpointSource
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.preprocess import NORM_MEAN, NORM_STD
from engines.dslfiqa.training.checkpoints import (
    LAST_NAME,
    atomic_save,
    load_into,
    official_state_dict,
    save_weights,
)
from engines.dslfiqa.training.config import ContrastiveTrainConfig, ModelConfig
from engines.dslfiqa.training.degradations import Degradation, sample_degradation

CHECKPOINT_FORMAT = "fqm-dslfiqa-degradation-train/1"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".ts")


# ---------------------------------------------------------------------------- images
def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, then resize to ``size`` (area down, bilinear up)."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = np.ascontiguousarray(image[top : top + s, left : left + s])
    if s == size:
        return sq
    t = torch.from_numpy(sq).permute(2, 0, 1)[None].float()
    mode = "area" if s > size else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    t = F.interpolate(t, size=(size, size), mode=mode, **kw)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def to_input(crop: np.ndarray) -> torch.Tensor:
    """uint8 [C,C,3] -> normalised float32 [3,C,C] (DSL_FIQA.md 2.2)."""
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0
    return (x - NORM_MEAN) / NORM_STD


def read_video_frames(
    path: str | Path, max_frames: int | None = None, every: int = 1
) -> list[np.ndarray]:
    """Decoded RGB frames of a video file (every ``every``-th, at most ``max_frames``)."""
    from pipelines.av_source import AvFileSource

    frames: list[np.ndarray] = []
    with AvFileSource(path) as source:
        for i, frame in enumerate(source.frames()):
            if i % every == 0:
                frames.append(np.array(frame.image))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path}: no frames decoded")
    return frames


@dataclass(frozen=True)
class RealClip:
    """Really degraded pictures that share one degradation: a degraded video's frames, or one
    image (a clip of length 1). ``clean`` (same length) are the pristine twins, if known."""

    frames: Sequence[np.ndarray]
    clean: Sequence[np.ndarray] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError(f"real clip {self.name!r} has no frames")
        if self.clean is not None and len(self.clean) != len(self.frames):
            raise ValueError(
                f"real clip {self.name!r}: {len(self.frames)} degraded frames but "
                f"{len(self.clean)} clean ones; pairs must be frame-aligned"
            )


def clip_from_video(
    path: str | Path, size: int, clean: str | Path | None = None, max_frames: int | None = None
) -> RealClip:
    frames = [square_resize(f, size) for f in read_video_frames(path, max_frames)]
    twins = None
    if clean is not None:
        twins = [square_resize(f, size) for f in read_video_frames(clean, max_frames)]
        n = min(len(frames), len(twins))
        frames, twins = frames[:n], twins[:n]
    return RealClip(tuple(frames), tuple(twins) if twins is not None else None, Path(path).name)


def images_in(folder: str | Path) -> list[Path]:
    root = Path(folder)
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class LazyImages(Sequence[np.ndarray]):
    """Image files decoded and resized to ``size`` squares on access (a dataset's worth of
    512x512 faces does not fit in memory)."""

    def __init__(self, paths: Sequence[str | Path], size: int):
        self.paths = [Path(p) for p in paths]
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        return square_resize(read_image_rgb(self.paths[index]), self.size)


# ---------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class ContrastiveBatch:
    queries: torch.Tensor  # [N,3,C,C]
    keys: torch.Tensor  # [N,3,C,C]; keys[i] is the positive of queries[i]
    negatives: torch.Tensor  # [M,3,C,C] extra keys that are nobody's positive
    labels: tuple[str, ...]  # what each pair is, for logs


class DualSetSampler:
    """Builds contrastive batches from pristine faces and real degraded clips.

    Deterministic: batch ``step`` depends only on (seed, step).

    Args:
        pristine: high-quality faces, uint8 RGB squares of side ``image_size``.
        real: real degraded clips (frames of side ``image_size``); may be empty.
        image_size / crop_size: as :class:`ModelConfig`.
    """

    def __init__(
        self,
        pristine: Sequence[np.ndarray],
        real: Sequence[RealClip],
        image_size: int,
        crop_size: int,
        config: ContrastiveTrainConfig,
    ):
        if not pristine:
            raise ValueError("the contrastive stage needs at least one pristine face")
        self.pristine = pristine
        self.real = list(real)
        self.image_size = image_size
        self.crop_size = crop_size
        self.config = config

    def _crop(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        h, w = image.shape[:2]
        top = int(rng.integers(0, h - self.crop_size + 1))
        left = int(rng.integers(0, w - self.crop_size + 1))
        return image[top : top + self.crop_size, left : left + self.crop_size], top, left

    def synthetic_pair(
        self, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, Degradation]:
        deg = sample_degradation(rng)
        n = len(self.pristine)
        a = int(rng.integers(0, n))
        b = (a + int(rng.integers(1, n))) % n if n > 1 else a  # a different face when possible
        qa, _, _ = self._crop(deg.apply(self.pristine[a]), rng)
        kb, _, _ = self._crop(deg.apply(self.pristine[b]), rng)
        return qa, kb, deg

    def real_pair(
        self, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        clip = self.real[int(rng.integers(0, len(self.real)))]
        n = len(clip.frames)
        f = int(rng.integers(0, n))
        d = self.config.real_neighbour_frames
        g = int(np.clip(f + rng.integers(-d, d + 1), 0, n - 1))
        q, top, left = self._crop(clip.frames[f], rng)
        k, _, _ = self._crop(clip.frames[g], rng)
        neg = None
        if clip.clean is not None:
            c = self.crop_size
            neg = clip.clean[f][top : top + c, left : left + c]
        return q, k, neg, f"{clip.name}[{f}~{g}]"

    def batch(self, step: int) -> ContrastiveBatch:
        rng = np.random.default_rng([self.config.seed, step])
        qs, ks, negs, labels = [], [], [], []
        for _ in range(self.config.synthetic_per_batch):
            q, k, deg = self.synthetic_pair(rng)
            qs.append(q)
            ks.append(k)
            labels.append(deg.describe())
        if self.real:
            for _ in range(self.config.real_per_batch):
                q, k, neg, label = self.real_pair(rng)
                qs.append(q)
                ks.append(k)
                labels.append(label)
                if neg is not None:
                    negs.append(neg)
        c = self.crop_size
        return ContrastiveBatch(
            torch.stack([to_input(q) for q in qs]),
            torch.stack([to_input(k) for k in ks]),
            torch.stack([to_input(n) for n in negs]) if negs else torch.zeros(0, 3, c, c),
            tuple(labels),
        )


# ---------------------------------------------------------------------------- loss
def embed(de: DegradationEncoder, x: torch.Tensor) -> torch.Tensor:
    """Official contrastive embedding: ``mlp(fea)`` flattened and L2-normalised [B, D]."""
    _, out = de(x)
    return F.normalize(out.flatten(1), dim=1)


def info_nce(
    q: torch.Tensor,
    k: torch.Tensor,
    negatives: torch.Tensor | None,
    queue: torch.Tensor | None,
    temperature: float,
) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``q`` must pick ``k[i]`` among all keys, negatives and the
    queue, and ``k[i]`` must pick ``q[i]`` the same way. All inputs L2-normalised [*, D]."""
    extra = [t for t in (negatives, queue) if t is not None and len(t)]
    labels = torch.arange(len(q), device=q.device)
    keys = torch.cat([k, *extra]) if extra else k
    queries = torch.cat([q, *extra]) if extra else q
    loss_qk = F.cross_entropy(q @ keys.T / temperature, labels)
    loss_kq = F.cross_entropy(k @ queries.T / temperature, labels)
    return (loss_qk + loss_kq) / 2


# ---------------------------------------------------------------------------- trainer
class DegradationTrainer:
    """Trains the degradation encoder (conv trunk + MLP head) contrastively.

    Output folder: ``DE.pt`` (official key format), ``model_config.json``, ``last.pt``.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        config: ContrastiveTrainConfig,
        sampler: DualSetSampler,
        out_dir: str | Path,
        init_de: CheckpointSource | None = None,
        log: TextIO | None = None,
    ):
        self.model_config = model_config
        self.config = config
        self.sampler = sampler
        self.out_dir = Path(out_dir)
        self._stream = log
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        self.de = model_config.build_de()
        if init_de is not None:
            load_into(self.de, init_de, "DE")
        self.de.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.de.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        dim = model_config.de_dim * model_config.de_pool[0] * model_config.de_pool[1]
        self.queue = torch.zeros(0, dim, device=self.device)
        self.step = 0

    def log(self, msg: str) -> None:
        print(f"[fqm train degradation] {msg}", file=self._stream or sys.stderr, flush=True)

    def loss(self, batch: ContrastiveBatch) -> torch.Tensor:
        q = embed(self.de, batch.queries.to(self.device))
        k = embed(self.de, batch.keys.to(self.device))
        neg = embed(self.de, batch.negatives.to(self.device)) if len(batch.negatives) else None
        self._last_keys = k.detach()
        return info_nce(q, k, neg, self.queue, self.config.temperature)

    def train_step(self, batch: ContrastiveBatch) -> float:
        self.de.train()
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.config.queue_size > 0:  # FIFO: newest keys first, oldest dropped
            self.queue = torch.cat([self._last_keys, self.queue])[: self.config.queue_size]
        self.step += 1
        return float(loss.detach())

    def save_last(self) -> Path:
        state = {
            "format": CHECKPOINT_FORMAT,
            "de": official_state_dict(self.de),
            "optimizer": self.optimizer.state_dict(),
            "queue": self.queue.cpu(),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.config),
        }
        path = self.out_dir / LAST_NAME
        atomic_save(state, path)
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        path = Path(path) if path is not None else self.out_dir / LAST_NAME
        if not path.is_file():
            return False
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not an fqm degradation-training checkpoint")
        if ModelConfig.from_dict(state["model_config"]) != self.model_config:
            raise ValueError(f"{path} was written for another model config; use a new --out")
        load_into(self.de, state["de"], "DE")
        self.optimizer.load_state_dict(state["optimizer"])
        self.queue = state["queue"].to(self.device)
        self.step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        self.log(f"resumed from {path} at step {self.step}")
        return True

    def fit(self) -> list[float]:
        cfg = self.config
        self.log(
            f"{len(self.sampler.pristine)} pristine faces, {len(self.sampler.real)} real clips, "
            f"{cfg.steps - self.step} steps to go (model {self.model_config.name})"
        )
        losses: list[float] = []
        t0, s0 = time.perf_counter(), self.step
        while self.step < cfg.steps:
            loss = self.train_step(self.sampler.batch(self.step))
            losses.append(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {self.step}; lower --lr")
            if cfg.log_every and self.step % cfg.log_every == 0:
                rate = (self.step - s0) / max(time.perf_counter() - t0, 1e-9)
                self.log(
                    f"step {self.step}/{cfg.steps} loss {loss:.4f} "
                    f"queue {len(self.queue)} {rate:.2f} steps/s"
                )
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save_last()
                save_weights(self.de, self.out_dir / "DE.pt", self.model_config)
        self.save_last()
        save_weights(self.de, self.out_dir / "DE.pt", self.model_config)
        return losses
