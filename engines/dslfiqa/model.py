"""DSL-FIQA end to end: checkpoints in, a quality score per face out.

``DslFiqa`` is the export graph (crops + landmark vectors -> scores, any batch size, no
Python loop over the batch) plus the official test protocol around it (``score_face``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engines.dslfiqa.checkpoint import CheckpointError, CheckpointSource, load_strict
from engines.dslfiqa.config import ModelConfig
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.preprocess import (
    IMAGE_SIZE,
    NUM_FACE_LANDMARKS,
    NUM_LANDMARK,
    OFFICIAL_SEED,
    CropMode,
    crop_images,
    crop_offsets,
    crop_score_mean,
    landmark_vectors,
    normalize_image,
    resize_face,
)
from engines.dslfiqa.quality_net import QualityNet
from engines.dslfiqa.swin import SwinBlock, relative_position_index, shifted_window_mask

# Crops per forward in score_face: bounds activation memory. On CPU batching does not raise
# throughput (compute-bound); on a GPU a larger value may.
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class FaceScore:
    """Result of :meth:`DslFiqa.score_face`.

    ``score`` is the mean of ``crop_scores`` (sequential float32 sum / K, as official);
    ``crops_top_left`` [K,2] are the crop offsets used, in order.
    """

    score: float
    crop_scores: np.ndarray
    crops_top_left: np.ndarray
    mode: str


def crop_size_of(iqa: QualityNet) -> int:
    """Side of the square crops a quality network takes: token grid x ViT patch size."""
    return iqa.grid * iqa.vit.patch_embed.proj.kernel_size[0]


class FaceQualityModel(nn.Module):
    """What every model of the family offers around its ``de`` (degradation encoder) and
    ``iqa`` (quality network): ``forward(crops, landmarks)``, ``score_crops`` and
    ``score_face``, sized by ``config`` (``crop_size``, ``image_size``) and chunked by
    ``max_batch``. Subclasses set those four attributes."""

    #: The crop mode ``score_face`` uses when none is given.
    default_mode: CropMode = "official"

    @property
    def crop_size(self) -> int:
        return self.config.crop_size

    @property
    def image_size(self) -> int:
        """Side of the face the crops are cut from (512 official; the input is resized)."""
        return self.config.image_size

    @property
    def device(self) -> torch.device:
        return self.iqa.conv1.weight.device

    def forward(self, crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Normalised crops [B,3,384,384] + landmark vectors [B,500] -> scores [B]."""
        return self.iqa(crops, self.de.forward_features(crops), landmarks)

    def score_crops(
        self, crops: torch.Tensor | np.ndarray, landmark_vectors: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """Score already-prepared crops in one forward; returns float32 scores [B] on CPU.

        Args:
            crops: [B,3,S,S] float32, RGB normalised to [-1,1] (DSL_FIQA.md 2.2-2.3);
                S = ``crop_size`` (384 official).
            landmark_vectors: [B,500] float32 landmark index vectors (DSL_FIQA.md 2.4).
        """
        x = torch.as_tensor(crops, dtype=torch.float32)
        lm = torch.as_tensor(landmark_vectors, dtype=torch.float32)
        c = self.crop_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, c, c):
            raise ValueError(f"crops must be [B,3,{c},{c}], got {tuple(x.shape)}")
        if lm.shape != (x.shape[0], NUM_LANDMARK):
            raise ValueError(
                f"landmark_vectors must be [{x.shape[0]},{NUM_LANDMARK}], got {tuple(lm.shape)}"
            )
        with torch.inference_mode():
            return self(x.to(self.device), lm.to(self.device)).float().cpu()

    def score_face(
        self,
        image512: np.ndarray,
        landmarks68: np.ndarray,
        mode: CropMode | None = None,
        seed: int | np.random.RandomState | None = OFFICIAL_SEED,
    ) -> FaceScore:
        """Score one aligned face with the official test protocol (or a cheaper crop mode).

        Args:
            image512: aligned face, uint8 RGB [512,512,3] (resized to ``image_size`` first
                when the variant is smaller, landmarks with it).
            landmarks68: [68,2] (x, y) pixels in ``image512``.
            mode: ``official`` (20 random crops, numpy legacy RNG), ``fixed5`` (corners +
                centre) or ``center`` (one crop); ``None``: the model's ``default_mode``.
            seed: ``official`` only; an int starts a fresh stream (20 = the official scripts'
                first image), a ``RandomState`` continues a stream across faces.
        """
        if image512.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"expected an aligned {IMAGE_SIZE}x{IMAGE_SIZE} face, got {image512.shape[:2]}"
            )
        pts = np.asarray(landmarks68)
        if pts.shape != (NUM_FACE_LANDMARKS, 2):
            raise ValueError(f"expected landmarks [68,2] (x, y), got shape {pts.shape}")
        mode = self.default_mode if mode is None else mode
        image, pts = resize_face(image512, pts, self.image_size)
        c = self.crop_size
        offsets = crop_offsets(mode, seed, image_size=self.image_size, crop_size=c)
        crops = crop_images(normalize_image(image), offsets, c)
        vectors = landmark_vectors(pts, offsets, c)
        scores = torch.cat(
            [
                self.score_crops(crops[i : i + self.max_batch], vectors[i : i + self.max_batch])
                for i in range(0, len(offsets), self.max_batch)
            ]
        ).numpy()
        return FaceScore(
            score=crop_score_mean(scores),
            crop_scores=scores,
            crops_top_left=offsets,
            mode=mode,
        )


class DslFiqa(FaceQualityModel):
    """Degradation encoder + quality network.

    ``config`` gives the sizes the crops are cut with (official: a 512 face, 384 crops); a
    smaller variant's ``score_face`` first resizes the aligned 512 face to its
    ``image_size``, as its training did.

    Example:
        >>> model = load_dslfiqa("ckpt/DE.pt", "ckpt/IQA.pt")  # doctest: +SKIP
        >>> model.score_face(aligned_rgb_512, landmarks68).score  # doctest: +SKIP
        0.61
    """

    def __init__(
        self,
        de: DegradationEncoder,
        iqa: QualityNet,
        max_batch: int = DEFAULT_MAX_BATCH,
        config: ModelConfig | None = None,
    ):
        super().__init__()
        self.de = de
        self.iqa = iqa
        self.max_batch = max_batch
        self.config = ModelConfig.official() if config is None else config
        if crop_size_of(iqa) != self.config.crop_size:
            raise ValueError(
                f"the quality network takes {crop_size_of(iqa)}-pixel crops but config "
                f"{self.config.name!r} says {self.config.crop_size}; pass the ModelConfig "
                "it was built with (config=...)"
            )


def check_structural_buffers(iqa: QualityNet) -> None:
    """Raise if a checkpoint's Swin index/mask buffers differ from the ones the config implies."""
    bad = []
    for name, blk in iqa.named_modules():
        if not isinstance(blk, SwinBlock):
            continue
        expected = relative_position_index(blk.window)
        if not torch.equal(blk.attn.relative_position_index.cpu(), expected):
            bad.append(f"{name}.attn.relative_position_index")
        if blk.attn_mask is not None:
            mask = shifted_window_mask(blk.resolution, blk.window, blk.shift)
            if not torch.equal(blk.attn_mask.cpu(), mask):
                bad.append(f"{name}.attn_mask")
    if bad:
        raise CheckpointError(
            f"IQA checkpoint has Swin buffers that do not match window 4 / shift 2: {bad}; "
            "it was not trained with the official config."
        )


def load_dslfiqa(
    de: CheckpointSource,
    iqa: CheckpointSource,
    device: str | torch.device = "cpu",
    max_batch: int = DEFAULT_MAX_BATCH,
) -> DslFiqa:
    """Build DSL-FIQA from the official DE.pt and IQA.pt (paths or state_dicts), in eval mode.

    Keys are checked strictly (the error lists missing/unexpected/mis-shaped keys);
    ``module.`` prefixes and ``{"state_dict": ...}`` wrappers are accepted.
    """
    with torch.device("meta"):
        de_net, iqa_net = DegradationEncoder(), QualityNet()
    load_strict(de_net, de, "DE")
    load_strict(iqa_net, iqa, "IQA")
    check_structural_buffers(iqa_net)
    return DslFiqa(de_net, iqa_net, max_batch, ModelConfig.official()).to(device).eval()
