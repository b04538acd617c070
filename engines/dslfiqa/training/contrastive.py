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
  official embedding: the DE's MLP output map flattened and L2-normalised, with keys of the
  same degradation source masked out of the negatives, plus the soft proximity term that
  pulls real degradations toward the synthetic ones they resemble (:mod:`.dual_set`).
* **Keys** -- from the trained encoder itself, or from an optional momentum (EMA) copy.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import av
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
    read_training_state,
    save_weights,
)
from engines.dslfiqa.training.config import ContrastiveTrainConfig, ModelConfig
from engines.dslfiqa.training.degradations import Degradation, sample_degradation
from engines.dslfiqa.training.dual_set import (
    CLEAN_PREFIX,
    REAL_PREFIX,
    SYNTHETIC_PREFIX,
    DualSetConfig,
    ema_update,
    false_negative_mask,
    soft_proximity_loss,
)

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
    """Decoded RGB frames of a video file (every ``every``-th, at most ``max_frames``).

    Decoded here with PyAV rather than through ``pipelines``: engines take pictures, and
    this is data preparation for training, not a stream (no timeouts, reconnects or
    decimation by time to honour). The pictures are the ones a stream source produces from
    the same file (first video stream, every picture in order, ``rgb24``). Unlike a
    stream source it does not skip corrupt packets: a damaged training clip is an error.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read as video, is damaged, or holds no picture.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threading: about twice as fast on H.264
            for i, frame in enumerate(container.decode(stream)):
                if i % every == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(
            f"{path}: not a readable video ({exc}); check that it is a complete video file "
            "in a format FFmpeg reads"
        ) from exc
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
    """A really degraded clip; with ``clean``, its frame-aligned pristine twin.

    Twins must have the same picture size and as many frames (up to ``max_frames``): frame
    ``i`` of one must show frame ``i`` of the other, or the "same content" negatives are not.

    Raises:
        ValueError: the pair differs in size or length.
    """
    raw = read_video_frames(path, max_frames)
    twins = None
    if clean is not None:
        clean_raw = read_video_frames(clean, max_frames)
        check_frame_aligned(clean, clean_raw, path, raw)
        twins = tuple(square_resize(f, size) for f in clean_raw)
    frames = tuple(square_resize(f, size) for f in raw)
    return RealClip(frames, twins, Path(path).name)


def check_frame_aligned(
    clean: str | Path,
    clean_frames: Sequence[np.ndarray],
    distorted: str | Path,
    frames: Sequence[np.ndarray],
) -> None:
    """Raise ``ValueError`` unless two decoded clips can be frame-aligned twins."""
    (h1, w1), (h2, w2) = clean_frames[0].shape[:2], frames[0].shape[:2]
    if (h1, w1) != (h2, w2):
        raise ValueError(
            f"--pair {clean} {distorted}: pictures are {w1}x{h1} and {w2}x{h2}; a pair must be "
            "the same video at the same size (frame-aligned twins)"
        )
    if len(clean_frames) != len(frames):
        raise ValueError(
            f"--pair {clean} {distorted}: {len(clean_frames)} and {len(frames)} frames; a pair "
            "must be the same video frame for frame (trim them to the same frames, or lower "
            "--max-frames to the shorter one)"
        )


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
    # Degradation source of each pair ("syn:<recipe>", "real:<clip>") and of each negative
    # ("clean:<clip>"): pairs of one source are not each other's negatives.
    groups: tuple[str, ...] = ()
    negative_groups: tuple[str, ...] = ()


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
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str, int]:
        index = int(rng.integers(0, len(self.real)))
        clip = self.real[index]
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
        return q, k, neg, f"{clip.name}[{f}~{g}]", index

    def batch(self, step: int) -> ContrastiveBatch:
        rng = np.random.default_rng([self.config.seed, step])
        qs, ks, negs, labels, groups, neg_groups = [], [], [], [], [], []
        for _ in range(self.config.synthetic_per_batch):
            q, k, deg = self.synthetic_pair(rng)
            qs.append(q)
            ks.append(k)
            labels.append(deg.describe())
            groups.append(SYNTHETIC_PREFIX + deg.describe())
        if self.real:
            for _ in range(self.config.real_per_batch):
                q, k, neg, label, index = self.real_pair(rng)
                qs.append(q)
                ks.append(k)
                labels.append(label)
                source = f"{index}:{self.real[index].name}"
                groups.append(REAL_PREFIX + source)
                if neg is not None:
                    negs.append(neg)
                    neg_groups.append(CLEAN_PREFIX + source)
        c = self.crop_size
        return ContrastiveBatch(
            torch.stack([to_input(q) for q in qs]),
            torch.stack([to_input(k) for k in ks]),
            torch.stack([to_input(n) for n in negs]) if negs else torch.zeros(0, 3, c, c),
            tuple(labels),
            tuple(groups),
            tuple(neg_groups),
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
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``q`` must pick ``k[i]`` among all keys, negatives and the
    queue, and ``k[i]`` must pick ``q[i]`` the same way. All inputs L2-normalised [*, D].

    ``mask`` (bool [N, N + len(negatives) + len(queue)], see
    :func:`~.dual_set.false_negative_mask`) removes the True entries from both directions'
    softmax; it must leave the diagonal (the positives) alone."""
    extra = [t for t in (negatives, queue) if t is not None and len(t)]
    labels = torch.arange(len(q), device=q.device)
    keys = torch.cat([k, *extra]) if extra else k
    queries = torch.cat([q, *extra]) if extra else q
    logits_qk = q @ keys.T / temperature
    logits_kq = k @ queries.T / temperature
    if mask is not None:
        logits_qk = logits_qk.masked_fill(mask, float("-inf"))
        logits_kq = logits_kq.masked_fill(mask, float("-inf"))
    loss_qk = F.cross_entropy(logits_qk, labels)
    loss_kq = F.cross_entropy(logits_kq, labels)
    return (loss_qk + loss_kq) / 2


# ---------------------------------------------------------------------------- trainer
class DegradationTrainer:
    """Trains the degradation encoder (conv trunk + MLP head) contrastively.

    Output folder: ``DE.pt`` (official key format), ``model_config.json``, ``last.pt``.
    ``dual_set`` holds the cross-set settings (soft proximity, momentum key encoder,
    false-negative masking); ``None`` means :class:`~.dual_set.DualSetConfig`'s defaults.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        config: ContrastiveTrainConfig,
        sampler: DualSetSampler,
        out_dir: str | Path,
        init_de: CheckpointSource | None = None,
        log: TextIO | None = None,
        dual_set: DualSetConfig | None = None,
    ):
        self.model_config = model_config
        self.config = config
        self.dual_set = dual_set if dual_set is not None else DualSetConfig()
        self.dual_set.validate()
        self.sampler = sampler
        self.out_dir = Path(out_dir)
        self._stream = log
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        self.de = model_config.build_de()
        if init_de is not None:
            load_into(self.de, init_de, "DE")
        self.de.to(self.device)
        # Momentum key encoder: starts as a copy of the query encoder, never optimised.
        self.de_key: DegradationEncoder | None = None
        if self.dual_set.momentum > 0:
            self.de_key = copy.deepcopy(self.de).requires_grad_(False)
        self.optimizer = torch.optim.Adam(
            self.de.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        dim = model_config.de_dim * model_config.de_pool[0] * model_config.de_pool[1]
        self.queue = torch.zeros(0, dim, device=self.device)
        self.queue_groups: list[str] = []  # degradation source of each queue entry
        self.step = 0
        self.last_parts: dict[str, float] = {}

    def log(self, msg: str) -> None:
        print(f"[fqm train degradation] {msg}", file=self._stream or sys.stderr, flush=True)

    def _key_embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.de_key is None:
            return embed(self.de, x)
        self.de_key.train(self.de.training)
        with torch.no_grad():
            return embed(self.de_key, x)

    def loss(self, batch: ContrastiveBatch) -> torch.Tensor:
        """InfoNCE (false negatives masked) + ``proximity_weight`` x soft proximity."""
        ds = self.dual_set
        q = embed(self.de, batch.queries.to(self.device))
        k = self._key_embed(batch.keys.to(self.device))
        has_neg = len(batch.negatives) > 0
        neg = self._key_embed(batch.negatives.to(self.device)) if has_neg else None
        self._last_keys = k.detach()
        mask = None
        if ds.mask_false_negatives and batch.groups:
            extra = list(batch.negative_groups) if has_neg else []
            if len(extra) != (len(neg) if neg is not None else 0):
                extra = [f"{CLEAN_PREFIX}#{i}" for i in range(len(neg) if neg is not None else 0)]
            mask = false_negative_mask(batch.groups, extra + self.queue_groups, self.device)
        nce = info_nce(q, k, neg, self.queue, self.config.temperature, mask)
        prox = q.new_zeros(())
        if ds.proximity_weight > 0 and batch.groups:
            real = torch.tensor([g.startswith(REAL_PREFIX) for g in batch.groups])
            syn = torch.tensor([g.startswith(SYNTHETIC_PREFIX) for g in batch.groups])
            prox = soft_proximity_loss(
                q[real.to(q.device)],
                k[real.to(q.device)],
                k[syn.to(q.device)],
                ds.proximity_temperature,
                self.config.temperature,
            )
        self.last_parts = {"nce": float(nce.detach()), "proximity": float(prox.detach())}
        return nce + ds.proximity_weight * prox

    def train_step(self, batch: ContrastiveBatch) -> float:
        self.de.train()
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.de_key is not None:
            ema_update(self.de_key, self.de, self.dual_set.momentum)
        if self.config.queue_size > 0:  # FIFO: newest keys first, oldest dropped
            size = self.config.queue_size
            self.queue = torch.cat([self._last_keys, self.queue])[:size]
            groups = list(batch.groups) or [""] * len(self._last_keys)
            self.queue_groups = (groups + self.queue_groups)[:size]
        self.step += 1
        return float(loss.detach())

    def save_last(self) -> Path:
        state = {
            "format": CHECKPOINT_FORMAT,
            "de": official_state_dict(self.de),
            "optimizer": self.optimizer.state_dict(),
            "queue": self.queue.cpu(),
            "queue_groups": list(self.queue_groups),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.config),
            "dual_set": asdict(self.dual_set),
        }
        if self.de_key is not None:
            state["de_key"] = official_state_dict(self.de_key)
        path = self.out_dir / LAST_NAME
        atomic_save(state, path)
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        path = Path(path) if path is not None else self.out_dir / LAST_NAME
        state = read_training_state(path, CHECKPOINT_FORMAT, "degradation", self.model_config)
        if state is None:
            return False
        load_into(self.de, state["de"], "DE")
        self.optimizer.load_state_dict(state["optimizer"])
        self.queue = state["queue"].to(self.device)
        # Older checkpoints have no queue groups: unknown sources, masked against nothing.
        self.queue_groups = list(state.get("queue_groups", ["?"] * len(self.queue)))
        if self.de_key is not None:
            load_into(self.de_key, state.get("de_key", state["de"]), "DE")
            self.de_key.requires_grad_(False)
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
                parts = self.last_parts
                self.log(
                    f"step {self.step}/{cfg.steps} loss {loss:.4f} "
                    f"(nce {parts.get('nce', float('nan')):.4f} "
                    f"proximity {parts.get('proximity', float('nan')):.4f}) "
                    f"queue {len(self.queue)} {rate:.2f} steps/s"
                )
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save_last()
                save_weights(self.de, self.out_dir / "DE.pt", self.model_config)
        self.save_last()
        save_weights(self.de, self.out_dir / "DE.pt", self.model_config)
        return losses
