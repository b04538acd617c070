"""Face-quality models (DSL-FIQA), their export and their runtimes (torch, ONNX Runtime, TensorRT).

Knows nothing of video or Kafka: it scores face images. The names below load on first use
(PEP 562), so ``engines.dataset``, ``engines.metrics`` and ``engines.dslfiqa.constants`` import
without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engines.dslfiqa import CheckpointError, DslFiqa, FaceScore, load_dslfiqa

__all__ = ["CheckpointError", "DslFiqa", "FaceScore", "load_dslfiqa"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from engines import dslfiqa

    return getattr(dslfiqa, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
