"""The official test-time input protocol: normalisation, 384 crops, landmark index vectors.

Everything here is numpy and exact: crop offsets and landmark vectors match the official
data loader bit for bit (DSL_FIQA.md sections 2.2-2.4). The sizes default to the official
512 face / 384 crop; a smaller variant (``dslfiqa-tiny``) passes its own, after
:func:`resize_face` brought the aligned 512 face to its ``image_size``.
"""

from __future__ import annotations

import numpy as np

# The protocol numbers live in the torch-free constants module; re-exported here.
from engines.dslfiqa.constants import (
    CROP_MODES,
    CROP_SIZE,
    MINMAX_EPS,
    NORM_MEAN,
    NORM_STD,
    NUM_CROPS_OFFICIAL,
    NUM_LANDMARK,
    OFFICIAL_SEED,
    CropMode,
)
from engines.dslfiqa.constants import IMAGE_SIZE as IMAGE_SIZE
from engines.dslfiqa.constants import MAX_OFFSET as MAX_OFFSET
from engines.dslfiqa.constants import NUM_FACE_LANDMARKS as NUM_FACE_LANDMARKS


def normalize_image(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [H,W,3] -> float32 CHW in [-1,1] (x/255 - 0.5) / 0.5, as the official loader."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {image_rgb.shape}")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image_rgb.dtype}; pass the decoded image")
    x = image_rgb.astype(np.float32) / np.float32(255)
    x = (x - np.float32(NORM_MEAN)) / np.float32(NORM_STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def resize_face(
    image: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Area-resize a square uint8 RGB face to ``size`` and scale its (x, y) landmarks.

    What training does to the 512 faces for a variant with a smaller ``image_size`` (and so
    what scoring must do); returns the inputs unchanged when the face already has that size.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, landmarks
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(size, size), mode="area")
    out = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    scale = np.array([size / w, size / h])
    return out, np.asarray(landmarks, dtype=np.float64) * scale


def crop_offsets(
    mode: CropMode = "official",
    seed: int | np.random.RandomState | None = OFFICIAL_SEED,
    num_crops: int = NUM_CROPS_OFFICIAL,
    image_size: int = IMAGE_SIZE,
    crop_size: int = CROP_SIZE,
) -> np.ndarray:
    """Crop (top, left) offsets [K,2] int64 for an aligned face of side ``image_size``.

    ``official``: ``num_crops`` pairs drawn top-then-left with numpy's legacy RNG
    (``RandomState``, the generator behind ``np.random.seed``), each in
    [0, image_size - crop_size - 1] ([0, 127] official). ``seed`` is an int (a fresh stream,
    20 = the official first image), or a ``RandomState`` to continue a stream across images
    as the official scripts do; the global RNG is never touched.
    ``fixed5``: the four corners and the centre. ``center``: the centre crop only.
    """
    max_offset = image_size - crop_size
    if max_offset < 1:
        raise ValueError(f"crop {crop_size} leaves no room in a {image_size} face")
    if mode == "official":
        rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
        pairs = [(rng.randint(0, max_offset), rng.randint(0, max_offset)) for _ in range(num_crops)]
        return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    mid = max_offset // 2
    if mode == "center":
        return np.array([[mid, mid]], dtype=np.int64)
    if mode == "fixed5":
        return np.array(
            [[0, 0], [0, max_offset], [max_offset, 0], [max_offset, max_offset], [mid, mid]],
            dtype=np.int64,
        )
    raise ValueError(f"unknown crop mode {mode!r}; choose one of {CROP_MODES}")


def crop_images(
    image_chw: np.ndarray, offsets: np.ndarray, crop_size: int = CROP_SIZE
) -> np.ndarray:
    """Normalised [3,512,512] + offsets [K,2] -> crops [K,3,384,384] float32 (official sizes)."""
    c = crop_size
    _, h, w = image_chw.shape
    if h < c or w < c:
        raise ValueError(f"image is {h}x{w}; this model needs at least {c}x{c}")
    offsets = np.asarray(offsets).reshape(-1, 2)
    if offsets.min(initial=0) < 0 or np.any(offsets + c > (h, w)):
        raise ValueError(f"crop offsets {offsets.tolist()} reach outside the {h}x{w} image")
    return np.stack([image_chw[:, t : t + c, lft : lft + c] for t, lft in offsets.tolist()])


def landmark_vector(
    landmarks_xy: np.ndarray, top: int, left: int, crop_size: int = CROP_SIZE
) -> np.ndarray:
    """Landmark index vector [500] float32 for one crop (official test path).

    Indices of the landmarks with ``top <= y <= top+384`` and ``left <= x <= left+384``
    (inclusive, one pixel past the crop, as the official loader; 384 = ``crop_size``), padded
    with ``len(landmarks)+1``, min-max scaled to [-1,1] in float64, then cast to float32.
    """
    pts = np.asarray(landmarks_xy)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected landmarks [N,2] as (x, y) pixels, got shape {pts.shape}")
    x, y = pts[:, 0], pts[:, 1]
    c = crop_size
    inside = (y >= top) & (y <= top + c) & (x >= left) & (x <= left + c)
    visible = np.flatnonzero(inside)
    if visible.size >= NUM_LANDMARK:
        # Official: a random sample without replacement; unreachable with 68 landmarks.
        raise ValueError(f"{visible.size} visible landmarks; at most {NUM_LANDMARK - 1} supported")
    v = np.full(NUM_LANDMARK, len(pts) + 1, dtype=np.float64)
    v[: visible.size] = visible
    v = (v - v.min()) / (v.max() - v.min() + MINMAX_EPS) * 2 - 1
    return v.astype(np.float32)


def landmark_vectors(
    landmarks_xy: np.ndarray, offsets: np.ndarray, crop_size: int = CROP_SIZE
) -> np.ndarray:
    """[K,500] float32 landmark vectors, one per crop offset."""
    return np.stack(
        [landmark_vector(landmarks_xy, t, lft, crop_size) for t, lft in offsets.tolist()]
    )


def crop_score_mean(crop_scores: np.ndarray) -> float:
    """A face's score from its crop scores: sequential float32 sum / K, as the official script."""
    total = np.float32(0)
    for s in np.asarray(crop_scores, dtype=np.float32):
        total = np.float32(total + s)
    return float(total / np.float32(len(crop_scores)))
