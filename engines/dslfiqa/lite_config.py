"""DSL-FIQA-Lite's architecture sizes (torch-free, so the variant registry can hold them).

The model itself is in :mod:`engines.dslfiqa.lite`; ``build_*`` import it. A lite weights
folder's ``model_config.json`` is :meth:`LiteConfig.to_json`, marked ``"arch": "lite"`` so
that it is never mistaken for an official-structure :class:`~engines.dslfiqa.config.ModelConfig`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engines.dslfiqa.lite import DslFiqaLite, LiteDegradationEncoder, LiteQualityNet

LITE_ARCH = "lite"


class LiteConfigError(ValueError):
    """A lite config that cannot build a network, or a folder that is not lite weights."""


@dataclass(frozen=True)
class LiteConfig:
    """Sizes of DSL-FIQA-Lite (torch-free; ``build_*`` import the modules).

    Attributes:
        image_size / crop_size: face side after the area resize, and network input side.
        de_convs: ``(in, out, stride)`` per conv-BN-LeakyReLU unit of the degradation encoder.
        de_pool: the degradation token grid (rows, cols); token width = last ``out``.
        stem: width of the backbone's stride-2 stem conv.
        stages: ``(width, blocks)`` per backbone stage; each stage starts with a stride-2
            depthwise-separable block, so the backbone's stride is ``2 * 2**len(stages)``.
        feature_stages: the stages whose maps (average-pooled to the last grid) are
            concatenated, as the official model concatenates four ViT blocks' features.
        embed_dim: width of attention stage 1 (stage 2 runs at half of it).
        heads / mlp_ratio: of the attention stages' MHSA blocks.
        decoder_heads / decoder_depth / decoder_mlp_ratio: the cross-attention decoder.
        landmark_hidden: hidden width of the landmark MLP.
        dropout: of the landmark MLP and the head (official 0.5; training only).
    """

    name: str = "lite"
    image_size: int = 144
    crop_size: int = 128
    de_convs: tuple[tuple[int, int, int], ...] = (
        (3, 16, 1),
        (16, 16, 2),
        (16, 32, 2),
        (32, 48, 2),
        (48, 64, 2),
    )
    de_pool: tuple[int, int] = (2, 2)
    stem: int = 16
    stages: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (96, 2))
    feature_stages: tuple[int, ...] = (1, 2)
    embed_dim: int = 96
    heads: int = 4
    mlp_ratio: int = 2
    decoder_heads: int = 4
    decoder_depth: int = 2
    decoder_mlp_ratio: int = 2
    landmark_hidden: int = 16
    dropout: float = 0.1

    arch = LITE_ARCH  # class constant, written to model_config.json

    @property
    def stride(self) -> int:
        return 2 * 2 ** len(self.stages)

    @property
    def grid(self) -> int:
        return self.crop_size // self.stride

    @property
    def de_dim(self) -> int:
        return self.de_convs[-1][1]

    @property
    def is_official(self) -> bool:
        return False

    def validate(self) -> None:
        """Raise :class:`LiteConfigError` for sizes the architecture cannot run with."""
        if self.crop_size % self.stride:
            raise LiteConfigError(
                f"crop_size {self.crop_size} is not a multiple of the stride {self.stride}"
            )
        if not 0 < self.crop_size < self.image_size:
            raise LiteConfigError(f"need 0 < crop_size < image_size, got {self.crop_size}")
        cells = self.de_pool[0] * self.de_pool[1]
        if (self.grid * self.grid) % cells:
            raise LiteConfigError(
                f"{self.grid**2} image tokens are not a multiple of {cells} degradation tokens"
            )
        if not self.feature_stages or max(self.feature_stages) >= len(self.stages):
            raise LiteConfigError(f"feature_stages {self.feature_stages} beyond {self.stages}")
        half = self.embed_dim // 2
        for width, heads in ((self.embed_dim, self.heads), (half, self.heads)):
            if width % heads:
                raise LiteConfigError(f"width {width} is not a multiple of {heads} heads")
        if self.de_dim % self.decoder_heads:
            raise LiteConfigError(f"de width {self.de_dim} vs {self.decoder_heads} heads")
        if self.de_convs[0][0] != 3:
            raise LiteConfigError("the degradation encoder takes 3 channels")

    def build_de(self) -> LiteDegradationEncoder:
        from engines.dslfiqa.lite import LiteDegradationEncoder

        self.validate()
        return LiteDegradationEncoder(self)

    def build_iqa(self) -> LiteQualityNet:
        from engines.dslfiqa.lite import LiteQualityNet

        self.validate()
        return LiteQualityNet(self)

    def build(self) -> DslFiqaLite:
        """Both halves in one :class:`~engines.dslfiqa.lite.DslFiqaLite` (random init)."""
        from engines.dslfiqa.lite import DslFiqaLite

        return DslFiqaLite(self.build_de(), self.build_iqa(), self)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiteConfig:
        data = dict(data)
        arch = data.pop("arch", None)
        if arch != LITE_ARCH:
            raise LiteConfigError(f"not a lite model config (arch {arch!r}, expected 'lite')")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LiteConfigError(f"unknown lite config fields {unknown}; known: {sorted(known)}")

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(**{k: tup(v) for k, v in data.items()})
