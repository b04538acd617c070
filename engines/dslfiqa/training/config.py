"""Model sizes and training settings: the official values, and a tiny model for tests.

``ModelConfig.official()`` is the released architecture (DSL_FIQA.md 1 and 3); its
state_dicts are the official DE.pt / IQA.pt. ``ModelConfig.tiny()`` keeps the same module
tree and key names with small widths and a 96-pixel crop, so a training step runs on a CPU
in milliseconds; its checkpoints only load into a model built from the same config.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from engines.dslfiqa.degradation_encoder import DE_CONVS, DE_POOL, DegradationEncoder
from engines.dslfiqa.preprocess import CROP_SIZE, IMAGE_SIZE
from engines.dslfiqa.quality_net import QualityNet
from engines.dslfiqa.vit import FEATURE_BLOCKS

FlipMode = Literal["official", "horizontal", "none"]
FLIP_MODES: tuple[str, ...] = ("official", "horizontal", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture sizes of both networks plus the image/crop size they are trained on.

    ``image_size`` is the side of the aligned face the crops are cut from (the 512x512 faces
    are resized to it when it is smaller); ``crop_size`` is the network input side.
    """

    name: str = "official"
    image_size: int = IMAGE_SIZE
    crop_size: int = CROP_SIZE
    patch_size: int = 16
    embed_dim: int = 768
    dim_mlp: int = 768
    num_heads: tuple[int, int] = (4, 4)
    window_size: int = 4
    depths: tuple[int, int] = (2, 2)
    num_tab: int = 2
    vit_depth: int = 12
    vit_heads: int = 12
    feature_blocks: tuple[int, ...] = FEATURE_BLOCKS
    decoder_heads: int = 8
    decoder_depth: int = 3
    landmark_hidden: int | None = None
    de_convs: tuple[tuple[int, int, int], ...] = DE_CONVS
    de_pool: tuple[int, int] = DE_POOL

    @classmethod
    def official(cls) -> ModelConfig:
        return cls()

    @classmethod
    def tiny(cls) -> ModelConfig:
        """Same depths and state_dict keys as the official model, small widths: 64-pixel
        crops of 96-pixel faces, 8x8 tokens, width 32, 2x2 degradation tokens of width 32."""
        return cls(
            name="tiny",
            image_size=96,
            crop_size=64,
            patch_size=8,
            embed_dim=32,
            dim_mlp=64,
            num_heads=(2, 2),
            vit_heads=2,
            decoder_heads=2,
            landmark_hidden=32,
            de_convs=((3, 8, 1), (8, 8, 1), (8, 16, 2), (16, 16, 1), (16, 32, 2), (32, 32, 1)),
            de_pool=(2, 2),
        )

    @property
    def is_official(self) -> bool:
        return dataclasses.replace(self, name="official") == ModelConfig()

    @property
    def de_dim(self) -> int:
        return self.de_convs[-1][1]

    def validate(self) -> None:
        """Raise ``ValueError`` for sizes the architecture cannot run with."""
        grid, rest = divmod(self.crop_size, self.patch_size)
        if rest:
            raise ValueError(f"crop_size {self.crop_size} is not a multiple of {self.patch_size}")
        if self.crop_size > self.image_size:
            raise ValueError(f"crop_size {self.crop_size} > image_size {self.image_size}")
        if grid % self.window_size:
            raise ValueError(f"token grid {grid} is not a multiple of window {self.window_size}")
        cells = self.de_pool[0] * self.de_pool[1]
        if (grid * grid) % cells:
            raise ValueError(
                f"{grid * grid} image tokens are not a multiple of {cells} degradation tokens"
            )
        if max(self.feature_blocks) >= self.vit_depth:
            raise ValueError(f"feature_blocks {self.feature_blocks} beyond depth {self.vit_depth}")

    def build_de(self) -> DegradationEncoder:
        self.validate()
        return DegradationEncoder(convs=self.de_convs, pool=self.de_pool)

    def build_iqa(self) -> QualityNet:
        self.validate()
        return QualityNet(
            embed_dim=self.embed_dim,
            dim_mlp=self.dim_mlp,
            num_heads=self.num_heads,
            window_size=self.window_size,
            depths=self.depths,
            num_tab=self.num_tab,
            img_size=self.crop_size,
            patch_size=self.patch_size,
            vit_depth=self.vit_depth,
            vit_heads=self.vit_heads,
            feature_blocks=self.feature_blocks,
            decoder_dim=self.de_dim,
            decoder_heads=self.decoder_heads,
            decoder_depth=self.decoder_depth,
            landmark_hidden=self.landmark_hidden,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields {unknown}; known: {sorted(known)}")

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(**{k: tup(v) for k, v in data.items()})


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
