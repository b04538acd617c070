"""Named DSL-FIQA model variants: architecture config + input contract + licence (torch-free).

Each variant is a frozen :class:`ModelVariant`, in the spirit of timm's pretrained configs:
it carries the :class:`~engines.dslfiqa.config.ModelConfig` that builds the networks and
everything a runtime or the CLI needs to feed them (aligned-face size, the size the crops are
cut from, crop size, normalisation, colour order, crop modes), the licence of its weights and
the checkpoint file names. Runtimes read these numbers from here instead of repeating them.

Example:
    >>> from engines.dslfiqa.variants import get_variant, list_variants
    >>> list_variants()
    ['dslfiqa', 'dslfiqa-tiny', 'dslfiqa-lite']
    >>> v = get_variant("dslfiqa")
    >>> (v.input_size, v.image_size, v.crop_size, v.mean, v.color_order)
    (512, 512, 384, (0.5, 0.5, 0.5), 'RGB')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engines.dslfiqa.config import ModelConfig
from engines.dslfiqa.constants import (
    CROP_MODES,
    IMAGE_SIZE,
    NORM_MEAN,
    NORM_STD,
    NUM_FACE_LANDMARKS,
    NUM_LANDMARK,
)
from engines.dslfiqa.lite_config import LITE_ARCH, LiteConfig

CHECKPOINT_FILES: tuple[str, str] = ("DE.pt", "IQA.pt")
DEFAULT_VARIANT = "dslfiqa"
# DSL_FIQA.md states no licence for the released checkpoints.
OFFICIAL_LICENSE = "official DSL-FIQA checkpoints: see the upstream repository's licence"
OWN_WEIGHTS_LICENSE = "no released weights: only checkpoints you train yourself"
LITE_LICENSE = (
    "Apache-2.0, fqm's own weights shipped in the package (docs/model-card-lite.md); "
    "trained on fetched media whose own licences are listed in monitor/assets.toml"
)


class UnknownVariantError(ValueError):
    """A variant name that is not registered."""


@dataclass(frozen=True, kw_only=True)
class ModelVariant:
    """One named model: how to build it, what it takes, and what its weights are.

    Attributes:
        name: registry name (``dslfiqa``, ``dslfiqa-tiny``, ``dslfiqa-lite``).
        description: one line for listings.
        config: the architecture sizes that build DE and IQA: a ``ModelConfig`` (the
            official module tree) or, for ``arch="lite"``, a
            :class:`~engines.dslfiqa.lite_config.LiteConfig`.
        arch: ``dslfiqa`` (the official module tree and key names, any size: ``DslFiqa``)
            or ``lite`` (DSL-FIQA-Lite's smaller modules: ``DslFiqaLite``). Both take the
            same inputs and give the same output.
        input_size: side of the aligned face the scorer is given (512, as alignment makes it).
        image_size: side the face is resized to before cropping (``config.image_size``).
        crop_size: network input side (``config.crop_size``).
        mean / std: per-channel normalisation of pixels scaled to [0,1]: ``(x - mean) / std``.
        color_order: channel order of the network input.
        crop_modes: crop modes ``score_face`` supports for this variant.
        num_landmarks: length of the landmark index vector input.
        face_landmarks: landmark points per face (iBUG 68).
        license: licence of the weights.
        checkpoint_files: file names of the DE and IQA state_dicts in a weights folder.
    """

    name: str
    description: str
    config: ModelConfig | LiteConfig
    arch: Literal["dslfiqa", "lite"] = "dslfiqa"
    input_size: int = IMAGE_SIZE
    image_size: int
    crop_size: int
    mean: tuple[float, float, float] = (NORM_MEAN,) * 3
    std: tuple[float, float, float] = (NORM_STD,) * 3
    color_order: Literal["RGB"] = "RGB"
    crop_modes: tuple[str, ...] = CROP_MODES
    num_landmarks: int = NUM_LANDMARK
    face_landmarks: int = NUM_FACE_LANDMARKS
    license: str
    checkpoint_files: tuple[str, str] = field(default=CHECKPOINT_FILES)

    def __post_init__(self) -> None:
        problems = self.inconsistencies()
        if problems:
            raise ValueError(f"model variant {self.name!r} is inconsistent: {'; '.join(problems)}")

    def inconsistencies(self) -> list[str]:
        """Where the input contract disagrees with the config or the protocol (empty = none)."""
        cfg = self.config
        out = []
        if self.image_size != cfg.image_size:
            out.append(f"image_size {self.image_size} != config.image_size {cfg.image_size}")
        if self.crop_size != cfg.crop_size:
            out.append(f"crop_size {self.crop_size} != config.crop_size {cfg.crop_size}")
        if not self.crop_size < self.image_size <= self.input_size:
            out.append(
                f"sizes must satisfy crop < image <= input, got "
                f"{self.crop_size}/{self.image_size}/{self.input_size}"
            )
        unknown = sorted(set(self.crop_modes) - set(CROP_MODES))
        if unknown:
            out.append(f"unknown crop modes {unknown}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            out.append(f"mean {self.mean} / std {self.std} must be 3 values, std > 0")
        if (self.arch == LITE_ARCH) != isinstance(cfg, LiteConfig):
            out.append(f"arch {self.arch!r} does not match a {type(cfg).__name__}")
        try:
            cfg.validate()
        except ValueError as exc:
            out.append(f"config: {exc}")
        return out

    @property
    def max_offset(self) -> int:
        """Crop offsets are drawn in [0, max_offset) (official 128: 0..127)."""
        return self.image_size - self.crop_size

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        *,
        name: str | None = None,
        description: str = "",
        license: str = OWN_WEIGHTS_LICENSE,
    ) -> ModelVariant:
        """The variant of ``config`` (sizes read from it); unnamed, an unregistered one of
        your own (e.g. a custom training run)."""
        return cls(
            name=name or f"custom:{config.name}",
            description=description or f"unregistered model config {config.name!r}",
            config=config,
            image_size=config.image_size,
            crop_size=config.crop_size,
            license=license,
        )


# The registry: an explicit dict, in listing order.
VARIANTS: dict[str, ModelVariant] = {
    v.name: v
    for v in (
        ModelVariant.from_config(
            ModelConfig.official(),
            name="dslfiqa",
            description="DSL-FIQA (CVPR 2024) as released: ViT-B/16-384, 20 random 384 crops",
            license=OFFICIAL_LICENSE,
        ),
        ModelVariant.from_config(
            ModelConfig.tiny(),
            name="dslfiqa-tiny",
            description="same keys as dslfiqa, tiny widths, 64 crops of a 96 face: CPU smoke tests",
        ),
        ModelVariant(
            name="dslfiqa-lite",
            description="DSL-FIQA-Lite: the same structure with a CNN backbone, one 128 crop "
            "of a 144 face; real time on a CPU, weights shipped (docs/model-card-lite.md)",
            config=LiteConfig(),
            arch=LITE_ARCH,
            image_size=LiteConfig().image_size,
            crop_size=LiteConfig().crop_size,
            license=LITE_LICENSE,
        ),
    )
}


def list_variants() -> list[str]:
    """Names of the registered variants, in registry order."""
    return list(VARIANTS)


def get_variant(name: str | ModelVariant) -> ModelVariant:
    """The registered variant called ``name`` (a :class:`ModelVariant` is returned as is).

    Raises:
        UnknownVariantError: the name is not registered; the message lists the known ones.
    """
    if isinstance(name, ModelVariant):
        return name
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownVariantError(
            f"unknown model variant {name!r}; known variants: {', '.join(VARIANTS)}"
        ) from None


def config_from_dict(data: dict) -> ModelConfig | LiteConfig:
    """A model config read back from JSON: ``LiteConfig`` when marked ``"arch": "lite"``,
    else the official structure's ``ModelConfig``."""
    if data.get("arch") == "lite":
        return LiteConfig.from_dict(dict(data))
    return ModelConfig.from_dict(data)


def variant_for_config(config: ModelConfig) -> ModelVariant:
    """The registered variant built from ``config``, else an unregistered one for it."""
    for v in VARIANTS.values():
        if v.config == config:
            return v
    return ModelVariant.from_config(config)
