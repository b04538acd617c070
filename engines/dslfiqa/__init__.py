"""DSL-FIQA (CVPR 2024) face image quality model, checkpoint-compatible with the official code."""

from engines.dslfiqa.checkpoint import CheckpointError, read_state_dict
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.model import DslFiqa, FaceScore, load_dslfiqa
from engines.dslfiqa.preprocess import crop_offsets, landmark_vector, landmark_vectors
from engines.dslfiqa.quality_net import QualityNet

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
