"""One interface for scoring faces, whatever runs the network (torch, ONNX Runtime, TensorRT).

A :class:`QualityEngine` takes a batch of aligned faces (uint8 RGB [N,512,512,3] and float32
landmarks [N,68,2]) and returns :class:`QualityScores`: a score per face plus one frozen
:class:`EngineInfo` naming the model variant, crop mode, backend, device and precision.
Callers that cut crops themselves call ``score_crops`` with crops and landmark vectors.

The crop protocol is the existing one (:mod:`engines.dslfiqa.preprocess`): this module only
calls it per face (:func:`prepare_faces`) and averages crop scores as ``DslFiqa.score_face``
does, so every backend sees exactly the inputs the torch reference sees.

This module is torch-free at import time (torch is imported only to resize faces for a
variant smaller than 512, as ``resize_face`` does).

Example:
    >>> from engines.backends import open_engine  # doctest: +SKIP
    >>> engine = open_engine(model, backend="auto", mode="center")  # doctest: +SKIP
    >>> out = engine.score_faces(faces_uint8, landmarks68)  # doctest: +SKIP
    >>> out.scores, out.info.backend, out[0].variant  # doctest: +SKIP
    (array([0.61, 0.58], dtype=float32), 'onnxruntime', 'dslfiqa')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engines.dslfiqa.constants import CROP_MODES, IMAGE_SIZE, NUM_FACE_LANDMARKS, OFFICIAL_SEED
from engines.dslfiqa.preprocess import (
    crop_images,
    crop_offsets,
    crop_score_mean,
    landmark_vectors,
    normalize_image,
    resize_face,
)
from engines.dslfiqa.variants import ModelVariant

__all__ = [
    "CropEngine",
    "EngineInfo",
    "FaceQuality",
    "PreparedFaces",
    "QualityEngine",
    "QualityScores",
    "check_faces",
    "check_mode",
    "make_rng",
    "prepare_faces",
    "score_in_chunks",
    "scores_from_crops",
]

Rng = np.random.RandomState


@dataclass(frozen=True)
class EngineInfo:
    """What produced a score: model variant, crop mode, backend and how it ran.

    Attributes:
        variant: model variant name (``dslfiqa``, ``dslfiqa-tiny``, ``custom:...``).
        mode: crop mode (``official``, ``fixed5``, ``center``).
        backend: registry name of the backend (``torch``, ``onnxruntime``, ``tensorrt``).
        device: where it ran (``cpu``, ``cuda:0``, or the ONNX Runtime providers).
        precision: ``fp32``, ``fp16`` or ``bf16``.
    """

    variant: str
    mode: str
    backend: str
    device: str
    precision: str = "fp32"


@dataclass(frozen=True)
class FaceQuality:
    """The score of one face, with the crops it came from and what produced it."""

    score: float
    crop_scores: np.ndarray
    crops_top_left: np.ndarray
    info: EngineInfo

    @property
    def variant(self) -> str:
        return self.info.variant

    @property
    def mode(self) -> str:
        return self.info.mode

    @property
    def backend(self) -> str:
        return self.info.backend


@dataclass(frozen=True)
class QualityScores:
    """Scores of a batch of N faces, each from K crops (K = 20, 5 or 1 by mode).

    Attributes:
        scores: [N] float32, the mean of each face's crop scores (sequential float32 sum / K).
        crop_scores: [N,K] float32.
        crops_top_left: [N,K,2] int64 crop offsets (top, left) in the variant's image size.
        info: what produced them (one for the whole batch).
    """

    scores: np.ndarray
    crop_scores: np.ndarray
    crops_top_left: np.ndarray
    info: EngineInfo

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.crop_scores.shape[0] != n or self.crops_top_left.shape[:2] != (
            n,
            self.crop_scores.shape[1],
        ):
            raise ValueError(
                f"scores [{n}], crop_scores {self.crop_scores.shape} and crops_top_left "
                f"{self.crops_top_left.shape} must be [N], [N,K], [N,K,2]"
            )

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, i: int) -> FaceQuality:
        return FaceQuality(
            score=float(self.scores[i]),
            crop_scores=self.crop_scores[i],
            crops_top_left=self.crops_top_left[i],
            info=self.info,
        )


@dataclass(frozen=True)
class PreparedFaces:
    """Network inputs for N faces: crops [N*K,3,S,S], vectors [N*K,500], offsets [N,K,2]."""

    crops: np.ndarray
    vectors: np.ndarray
    offsets: np.ndarray


@runtime_checkable
class QualityEngine(Protocol):
    """A loaded, warmed-up DSL-FIQA scorer on one backend.

    ``variant`` is the input contract (sizes, normalisation); ``info`` names the variant,
    the default crop mode, the backend, the device and the precision. ``max_batch`` is the
    number of crops per forward (faces x crops per face are split into chunks of it).
    """

    @property
    def variant(self) -> ModelVariant: ...

    @property
    def info(self) -> EngineInfo: ...

    @property
    def max_batch(self) -> int: ...

    # How the backend was chosen (open_engine sets it; auto lists what it skipped and why).
    selection: str

    def score_crops(self, crops: Any, landmark_vectors: Any) -> np.ndarray:
        """Prepared crops [B,3,S,S] float32 in [-1,1] + vectors [B,500] -> float32 [B]."""
        ...

    def score_faces(
        self,
        images: Any,
        landmarks: Any,
        *,
        mode: str | None = None,
        rng: int | Rng | None = None,
    ) -> QualityScores:
        """Aligned faces uint8 [N,512,512,3] + landmarks [N,68,2] -> :class:`QualityScores`."""
        ...

    def close(self) -> None:
        """Release the session, device memory or temporary files; idempotent."""
        ...


def make_rng(seed: int | Rng | None) -> Rng:
    """The legacy RandomState the ``official`` crops are drawn from (``None`` = seed 20)."""
    if isinstance(seed, np.random.RandomState):
        return seed
    return np.random.RandomState(OFFICIAL_SEED if seed is None else seed)


def check_faces(images: Any, landmarks: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a batch of aligned faces; a single face ([512,512,3] + [68,2]) becomes N=1.

    Raises:
        ValueError: wrong shapes or dtype, saying what was expected.
    """
    imgs = np.asarray(images)
    pts = np.asarray(landmarks)
    if imgs.ndim == 3:
        imgs, pts = imgs[None], pts[None]
    if imgs.ndim != 4 or imgs.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(
            f"faces must be aligned uint8 RGB [N,{IMAGE_SIZE},{IMAGE_SIZE},3], got {imgs.shape}"
        )
    if imgs.dtype != np.uint8:
        raise ValueError(f"faces must be uint8 pixels, got {imgs.dtype}; pass the decoded image")
    if pts.shape != (len(imgs), NUM_FACE_LANDMARKS, 2) or pts.dtype.kind != "f":
        raise ValueError(
            f"landmarks must be float [{len(imgs)},{NUM_FACE_LANDMARKS},2] (x, y) pixels in "
            f"the aligned face, got {pts.dtype} {pts.shape}"
        )
    return imgs, pts


def prepare_faces(
    variant: ModelVariant,
    images: Any,
    landmarks: Any,
    mode: str,
    rng: int | Rng | None = None,
) -> PreparedFaces:
    """Cut each face's crops and landmark vectors with the official preprocessing.

    Per face, exactly what ``DslFiqa.score_face`` does: resize to the variant's image size,
    draw the mode's offsets, normalise, crop, build the landmark vectors. For ``official``
    one RandomState is drawn from across the faces in order (an int seeds a fresh stream, so
    face 0 gets the crops ``score_face(seed=that int)`` gets); other modes ignore ``rng``.
    """
    if mode not in variant.crop_modes:
        raise ValueError(
            f"unknown crop mode {mode!r} for {variant.name}; choose one of {variant.crop_modes}"
        )
    imgs, pts = check_faces(images, landmarks)
    state = make_rng(rng) if mode == "official" else None
    crops, vectors, offsets = [], [], []
    for image, face_pts in zip(imgs, pts, strict=True):
        image, face_pts = resize_face(image, face_pts, variant.image_size)
        off = crop_offsets(mode, state, image_size=variant.image_size, crop_size=variant.crop_size)  # type: ignore[arg-type]
        crops.append(crop_images(normalize_image(image), off, variant.crop_size))
        vectors.append(landmark_vectors(face_pts, off, variant.crop_size))
        offsets.append(off)
    return PreparedFaces(
        crops=np.concatenate(crops), vectors=np.concatenate(vectors), offsets=np.stack(offsets)
    )


def scores_from_crops(
    crop_scores: np.ndarray, offsets: np.ndarray, info: EngineInfo
) -> QualityScores:
    """Group flat crop scores [N*K] by face and average them as the official script does."""
    n, k = offsets.shape[:2]
    per_face = np.asarray(crop_scores, dtype=np.float32).reshape(n, k)
    means = np.array([crop_score_mean(row) for row in per_face], dtype=np.float32)
    return QualityScores(scores=means, crop_scores=per_face, crops_top_left=offsets, info=info)


def score_in_chunks(engine: QualityEngine, prepared: PreparedFaces) -> np.ndarray:
    """Run ``engine.score_crops`` over ``prepared`` in chunks of ``engine.max_batch`` crops."""
    step = max(1, engine.max_batch)
    parts: Sequence[np.ndarray] = [
        np.asarray(engine.score_crops(prepared.crops[i : i + step], prepared.vectors[i : i + step]))
        for i in range(0, len(prepared.crops), step)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def check_mode(variant: ModelVariant, mode: str) -> str:
    """``mode`` if the variant supports it, else a ValueError listing the supported ones."""
    if mode not in CROP_MODES or mode not in variant.crop_modes:
        raise ValueError(
            f"unknown crop mode {mode!r} for {variant.name}; choose one of {variant.crop_modes}"
        )
    return mode


class CropEngine:
    """``score_faces`` for a backend that implements ``score_crops``: the shared half.

    Subclasses set ``variant``, ``info`` (with the default mode) and ``max_batch`` and
    implement ``score_crops`` and ``close``. ``official`` crops without an ``rng`` are drawn
    from the engine's own RandomState (seeded at open), which continues across calls.
    """

    variant: ModelVariant
    info: EngineInfo
    max_batch: int
    selection: str = ""
    _rng: Rng

    def score_crops(self, crops: Any, landmark_vectors: Any) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def score_faces(
        self,
        images: Any,
        landmarks: Any,
        *,
        mode: str | None = None,
        rng: int | Rng | None = None,
    ) -> QualityScores:
        """Aligned faces uint8 [N,512,512,3] + landmarks [N,68,2] -> :class:`QualityScores`.

        Args:
            images: N aligned faces (or one [512,512,3]), uint8 RGB.
            landmarks: [N,68,2] float (x, y) pixels in the aligned faces.
            mode: crop mode; ``None`` = the engine's (``info.mode``).
            rng: ``official`` only: an int (fresh stream) or a RandomState to draw from;
                ``None`` = the engine's own stream.
        """
        chosen = check_mode(self.variant, mode or self.info.mode)
        prepared = prepare_faces(
            self.variant, images, landmarks, chosen, self._rng if rng is None else rng
        )
        flat = score_in_chunks(self, prepared)  # type: ignore[arg-type]
        info = self.info if chosen == self.info.mode else replace(self.info, mode=chosen)
        return scores_from_crops(flat, prepared.offsets, info)

    def __enter__(self) -> CropEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
