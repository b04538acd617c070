"""DSL-FIQA (CVPR 2024) face image quality model, checkpoint-compatible with the official code.

The names below load on first use (PEP 562), so importing a torch-free submodule such as
``engines.dslfiqa.constants`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engines.dslfiqa.checkpoint import CheckpointError, read_state_dict
    from engines.dslfiqa.config import ModelConfig
    from engines.dslfiqa.degradation_encoder import DegradationEncoder
    from engines.dslfiqa.model import DslFiqa, FaceScore, load_dslfiqa
    from engines.dslfiqa.preprocess import crop_offsets, landmark_vector, landmark_vectors
    from engines.dslfiqa.quality_net import QualityNet
    from engines.dslfiqa.random_weights import build_random, random_state_dicts
    from engines.dslfiqa.variants import ModelVariant, get_variant, list_variants

# Public name -> the submodule that defines it.
_SOURCES: dict[str, str] = {
    "CheckpointError": "checkpoint",
    "DegradationEncoder": "degradation_encoder",
    "DslFiqa": "model",
    "FaceScore": "model",
    "ModelConfig": "config",
    "ModelVariant": "variants",
    "QualityNet": "quality_net",
    "build_random": "random_weights",
    "crop_offsets": "preprocess",
    "get_variant": "variants",
    "landmark_vector": "preprocess",
    "landmark_vectors": "preprocess",
    "list_variants": "variants",
    "load_dslfiqa": "model",
    "random_state_dicts": "random_weights",
    "read_state_dict": "checkpoint",
}

__all__ = [
    "CheckpointError",
    "DegradationEncoder",
    "DslFiqa",
    "FaceScore",
    "ModelConfig",
    "ModelVariant",
    "QualityNet",
    "build_random",
    "crop_offsets",
    "get_variant",
    "landmark_vector",
    "landmark_vectors",
    "list_variants",
    "load_dslfiqa",
    "random_state_dicts",
    "read_state_dict",
]


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
