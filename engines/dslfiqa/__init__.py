"""DSL-FIQA (CVPR 2024) face image quality model, checkpoint-compatible with the official code.

The names below load on first use (PEP 562), so importing a torch-free submodule such as
``engines.dslfiqa.constants`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engines.dslfiqa.checkpoint import CheckpointError, read_state_dict
    from engines.dslfiqa.degradation_encoder import DegradationEncoder
    from engines.dslfiqa.model import DslFiqa, FaceScore, load_dslfiqa
    from engines.dslfiqa.preprocess import crop_offsets, landmark_vector, landmark_vectors
    from engines.dslfiqa.quality_net import QualityNet

# Public name -> the submodule that defines it.
_SOURCES: dict[str, str] = {
    "CheckpointError": "checkpoint",
    "DegradationEncoder": "degradation_encoder",
    "DslFiqa": "model",
    "FaceScore": "model",
    "QualityNet": "quality_net",
    "crop_offsets": "preprocess",
    "landmark_vector": "preprocess",
    "landmark_vectors": "preprocess",
    "load_dslfiqa": "model",
    "read_state_dict": "checkpoint",
}

__all__ = [
    "CheckpointError",
    "DegradationEncoder",
    "DslFiqa",
    "FaceScore",
    "QualityNet",
    "crop_offsets",
    "landmark_vector",
    "landmark_vectors",
    "load_dslfiqa",
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
