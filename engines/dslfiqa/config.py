"""DSL-FIQA architecture sizes: the official model, and a tiny one for tests (torch-free).

``ModelConfig.official()`` is the released architecture (DSL_FIQA.md 1 and 3); its
state_dicts are the official DE.pt / IQA.pt. ``ModelConfig.tiny()`` keeps the same module
tree and key names with small widths and a 96-pixel face / 64-pixel crop, so a training step
runs on a CPU in milliseconds; its checkpoints only load into a model built from the same
config. Named, user-facing variants (sizes plus input contract and licence) are in
:mod:`engines.dslfiqa.variants`. This module imports torch only inside ``build_*``, so the
CLI can read sizes without paying for it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engines.dslfiqa.constants import CROP_SIZE, DE_CONVS, DE_POOL, FEATURE_BLOCKS, IMAGE_SIZE

if TYPE_CHECKING:
    from engines.dslfiqa.degradation_encoder import DegradationEncoder
    from engines.dslfiqa.quality_net import QualityNet

# Written beside the weights by training (engines.dslfiqa.training.checkpoints.save_weights).
MODEL_CONFIG_NAME = "model_config.json"


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
        from engines.dslfiqa.degradation_encoder import DegradationEncoder

        self.validate()
        return DegradationEncoder(convs=self.de_convs, pool=self.de_pool)

    def build_iqa(self) -> QualityNet:
        from engines.dslfiqa.quality_net import QualityNet

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
