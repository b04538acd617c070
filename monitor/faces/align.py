"""Alignment to DSL-FIQA's input: a 512x512 face with level eyes and its 68 points.

Mirrors the official pre-processing (DSL_FIQA.md §2.1): the face box is enlarged by
``margin`` times its width/height on every side (README: 1.0, script default: 0.8) and
clipped to the image, that crop is resized to 512x512, and the image is rotated about the
crop's centre so that the iBUG eye points 38 and 47 are level. The three steps are composed
into ONE affine and sampled once (bilinear), instead of resampling three times as the
official code does, which loses less detail.

Known differences, by design: the box is BlazeFace's (tighter than MTCNN's, no forehead),
so the same margin gives a slightly tighter crop; and the 68 points are the mesh's points
mapped through the affine rather than FaceXFormer re-run on the aligned image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.faces.warp import image_to_crop, warp_crop

ALIGNED_SIZE = 512
#: Box enlargement per side, as a fraction of the box's width/height (official script: 0.8).
DEFAULT_MARGIN = 0.8
#: The iBUG points whose line is levelled (the official code's choice, kept for parity).
EYE_POINTS = (38, 47)


@dataclass(frozen=True, slots=True, eq=False)
class AlignedFace:
    """A face ready for DSL-FIQA.

    Attributes:
        image: ``uint8 [512, 512, 3]`` RGB.
        landmarks: ``float32 [68, 2]`` iBUG points, (x, y) pixels of ``image``.
        matrix: ``float64 [2, 3]``, maps ``image`` pixels to source-frame pixels.
    """

    image: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype, shape in (
            ("image", np.uint8, (ALIGNED_SIZE, ALIGNED_SIZE, 3)),
            ("landmarks", np.float32, (68, 2)),
            ("matrix", np.float64, (2, 3)),
        ):
            arr = np.array(getattr(self, name), dtype, copy=True)
            if arr.shape != shape:
                raise ValueError(f"AlignedFace.{name} must have shape {shape}, got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


def alignment_matrix(
    xyxy: np.ndarray, ibug68: np.ndarray, width: int, height: int, margin: float = DEFAULT_MARGIN
) -> np.ndarray:
    """The affine mapping aligned-image pixels to frame pixels (see the module docstring)."""
    x1, y1, x2, y2 = np.asarray(xyxy, np.float64)
    bw, bh = x2 - x1, y2 - y1
    cx1, cy1 = max(x1 - margin * bw, 0.0), max(y1 - margin * bh, 0.0)
    cx2, cy2 = min(x2 + margin * bw, float(width)), min(y2 + margin * bh, float(height))
    # resize: aligned (u, v) -> frame (cx1 + u * sx, cy1 + v * sy)
    sx, sy = (cx2 - cx1) / ALIGNED_SIZE, (cy2 - cy1) / ALIGNED_SIZE
    resize = np.array([[sx, 0.0, cx1], [0.0, sy, cy1], [0.0, 0.0, 1.0]])
    # Eye angle measured in the resized crop, where the rotation happens.
    a, b = (np.asarray(ibug68[i], np.float64) for i in EYE_POINTS)
    da = np.array([(b[0] - a[0]) / sx, (b[1] - a[1]) / sy])
    angle = np.arctan2(da[1], da[0])
    c, s = np.cos(angle), np.sin(angle)
    centre = (ALIGNED_SIZE - 1) / 2
    # rotate about the centre: aligned (u, v) -> resized crop; its x axis runs along the eyes.
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, centre], [0.0, 1.0, centre], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, -centre], [0.0, 1.0, -centre], [0.0, 0.0, 1.0]])
    return (resize @ shift @ rot @ unshift)[:2]


def align_face(
    image: np.ndarray, xyxy: np.ndarray, ibug68: np.ndarray, margin: float = DEFAULT_MARGIN
) -> AlignedFace:
    """Aligns one face of an RGB frame, given its box and its 68 points in frame pixels."""
    if not np.all(np.isfinite(ibug68)):
        raise ValueError("align_face needs the face's 68 landmarks (got NaN: no mesh found)")
    h, w = image.shape[:2]
    m = alignment_matrix(xyxy, ibug68, w, h, margin)
    return AlignedFace(
        image=warp_crop(image, m, ALIGNED_SIZE),
        landmarks=image_to_crop(ibug68, m).astype(np.float32),
        matrix=m,
    )
