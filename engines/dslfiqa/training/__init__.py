"""Training for DSL-FIQA: the quality network (official recipe) and the degradation encoder
(dual-set contrastive stage, our design). See docs/training.md."""

from engines.dslfiqa.training.checkpoints import load_trained, read_model_config, save_weights
from engines.dslfiqa.training.config import (
    ContrastiveTrainConfig,
    ModelConfig,
    QualityTrainConfig,
)
from engines.dslfiqa.training.contrastive import (
    DegradationTrainer,
    DualSetSampler,
    RealClip,
    info_nce,
)
from engines.dslfiqa.training.degradations import Degradation, sample_degradation
from engines.dslfiqa.training.quality import QualityTrainer, charbonnier

__all__ = [
    "ContrastiveTrainConfig",
    "Degradation",
    "DegradationTrainer",
    "DualSetSampler",
    "ModelConfig",
    "QualityTrainConfig",
    "QualityTrainer",
    "RealClip",
    "charbonnier",
    "info_nce",
    "load_trained",
    "read_model_config",
    "sample_degradation",
    "save_weights",
]
