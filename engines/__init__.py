"""Face-quality models (DSL-FIQA), their export and their runtimes (torch, ONNX Runtime, TensorRT).

Knows nothing of video or Kafka: it scores face images.
"""

from engines.dslfiqa import CheckpointError, DslFiqa, FaceScore, load_dslfiqa

__all__ = ["CheckpointError", "DslFiqa", "FaceScore", "load_dslfiqa"]
