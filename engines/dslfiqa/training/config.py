"""Training settings. ``ModelConfig`` (the model sizes) lives in :mod:`engines.dslfiqa.config`
and is re-exported here for existing imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engines.dslfiqa.config import ModelConfig as ModelConfig

FlipMode = Literal["official", "horizontal", "none"]
FLIP_MODES: tuple[str, ...] = ("official", "horizontal", "none")


@dataclass(frozen=True)
class QualityTrainConfig:
    """Quality-network training; defaults are ``train_iqa.py``'s (DSL_FIQA.md 9).

    Attributes:
        epochs: 500 official.
        batch_size: 16 official, incomplete last batch dropped.
        lr / weight_decay: Adam, 1e-5 / 1e-5 official.
        cosine_t_max / eta_min: ``CosineAnnealingLR(T_max=50, eta_min=0)`` stepped every
            iteration (official; the rate therefore oscillates with a period of 100 steps).
        charbonnier_eps: loss = mean(sqrt((pred - mos)^2 + eps)), eps 1e-6 official.
        flip: ``official`` flips the CHW array along axis 1 (rows, i.e. vertically) with
            probability ``flip_p`` = 0.7 and leaves the landmark vector alone, as the official
            code does; ``horizontal`` flips columns instead; ``none`` disables it.
        seed: every random choice (order, crops, flips, dropout) derives from it, so a resumed
            run continues the same stream.
        save_every: also write ``last.pt`` every this many steps (0 = at epoch ends only).
        log_every: a progress line on stderr every this many steps.
    """

    epochs: int = 500
    batch_size: int = 16
    lr: float = 1e-5
    weight_decay: float = 1e-5
    cosine_t_max: int = 50
    eta_min: float = 0.0
    charbonnier_eps: float = 1e-6
    flip: FlipMode = "official"
    flip_p: float = 0.7
    seed: int = 20
    save_every: int = 0
    log_every: int = 10
    max_steps: int | None = None
    device: str = "cpu"


@dataclass(frozen=True)
class ContrastiveTrainConfig:
    """Degradation-encoder contrastive stage (our design, docs/training.md).

    Attributes:
        temperature: InfoNCE temperature; 0.2 as the official loss module.
        queue_size: negatives kept from earlier steps (official config 2048); 0 = in-batch only.
        synthetic_per_batch / real_per_batch: anchor-positive pairs of each set per step.
        lr: Adam learning rate (not given by the official code; our choice).
        steps: optimisation steps.
        real_neighbour_frames: a real positive is a different crop of a frame at most this
            many frames away in the same video (the codec settings are shared).
    """

    steps: int = 20000
    synthetic_per_batch: int = 12
    real_per_batch: int = 4
    temperature: float = 0.2
    queue_size: int = 2048
    lr: float = 1e-4
    weight_decay: float = 0.0
    real_neighbour_frames: int = 4
    seed: int = 0
    save_every: int = 1000
    log_every: int = 10
    device: str = "cpu"
