"""Alignment to DSL-FIQA's input: a 512x512 face with level eyes and its 68 points.

Two rules (``AlignRule``), both composed into ONE affine and sampled once (bilinear) instead
of resampling three times as the official code does, which loses less detail:

``"eyes"`` (the default): a square around the face box's centre, its side the box's larger
side enlarged by ``margin`` times it on every side, NOT clipped to the image (whatever lies
outside the frame is black), scaled uniformly to 512x512 and rotated about its centre so
that the line through the two eye centres (the means of iBUG points 36-41 and 42-47) is
level. The face keeps its aspect ratio, and its roll in the aligned image is 0.

``"official"``: the official custom-image script (DSL_FIQA.md §2.1), for parity: the box
enlarged by ``margin`` on every side (README: 1.0, script default: 0.8) and clipped to the
image, that crop resized to 512x512 (each axis by its own factor), then rotated about the
crop's centre so that the iBUG points 38 and 47 are level.

Why "eyes" is the default (docs/faces/README.md has the measurements): point 38 is on the
upper lid of the subject's right eye and 47 on the lower lid of the left one, so levelling
that diagonal tilts every face, whatever its head roll, by -8.8° to -11.1° on average on the
test clips, while the faces DSL-FIQA was trained on (GFIQA-20k, CGFIQA-40k) are aligned with
level eyes. And clipping a box that runs past the frame, then resizing to a square,
stretches the face (up to +25 % vertically on franck.mp4, whose face fills its 288-line
frame); padding keeps its proportions.

Known differences from the official script in both rules, by design: the box is
BlazeFace's (tighter than MTCNN's, no forehead), so the same margin gives a slightly tighter
crop; and the 68 points are the mesh's points mapped through the affine rather than
FaceXFormer re-run on the aligned image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from monitor.faces.warp import image_to_crop, warp_crop

ALIGNED_SIZE = 512
#: Box enlargement per side, as a fraction of the box's width/height (official script: 0.8).
DEFAULT_MARGIN = 0.8
#: ``"eyes"``: eye centres level, box padded; ``"official"``: the official script's rule.
AlignRule = Literal["eyes", "official"]
DEFAULT_RULE: AlignRule = "eyes"
#: The iBUG points whose line the official rule levels (kept for parity).
OFFICIAL_EYE_POINTS = (38, 47)
#: iBUG points of the subject's right eye (image left) and left eye (image right).
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)


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


def eye_centres(ibug68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centres (means of the 6 iBUG points) of the image-left and image-right eyes."""
    p = np.asarray(ibug68, np.float64)
    return p[RIGHT_EYE].mean(0), p[LEFT_EYE].mean(0)


def alignment_matrix(
    xyxy: np.ndarray,
    ibug68: np.ndarray,
    width: int,
    height: int,
    margin: float = DEFAULT_MARGIN,
    rule: AlignRule = DEFAULT_RULE,
) -> np.ndarray:
    """The affine mapping aligned-image pixels to frame pixels (see the module docstring)."""
    x1, y1, x2, y2 = np.asarray(xyxy, np.float64)
    bw, bh = x2 - x1, y2 - y1
    if rule == "eyes":
        side = max(bw, bh) * (1 + 2 * margin)
        cx1, cy1 = (x1 + x2 - side) / 2, (y1 + y2 - side) / 2
        sx = sy = side / ALIGNED_SIZE
        a, b = eye_centres(ibug68)
    elif rule == "official":
        cx1, cy1 = max(x1 - margin * bw, 0.0), max(y1 - margin * bh, 0.0)
        cx2, cy2 = min(x2 + margin * bw, float(width)), min(y2 + margin * bh, float(height))
        sx, sy = (cx2 - cx1) / ALIGNED_SIZE, (cy2 - cy1) / ALIGNED_SIZE
        a, b = (np.asarray(ibug68[i], np.float64) for i in OFFICIAL_EYE_POINTS)
    else:
        raise ValueError(f"rule must be 'eyes' or 'official', got {rule!r}")
    # resize: aligned (u, v) -> frame (cx1 + u * sx, cy1 + v * sy)
    resize = np.array([[sx, 0.0, cx1], [0.0, sy, cy1], [0.0, 0.0, 1.0]])
    # Eye angle measured in the resized crop, where the rotation happens.
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
    image: np.ndarray,
    xyxy: np.ndarray,
    ibug68: np.ndarray,
    margin: float = DEFAULT_MARGIN,
    rule: AlignRule = DEFAULT_RULE,
) -> AlignedFace:
    """Aligns one face of an RGB frame, given its box and its 68 points in frame pixels.

    ``rule``: ``"eyes"`` (eye centres level, box padded; the default) or ``"official"`` (the
    official script's points 38/47 and clipped box, for parity); see the module docstring.
    """
    if not np.all(np.isfinite(ibug68)):
        raise ValueError("align_face needs the face's 68 landmarks (got NaN: no mesh found)")
    h, w = image.shape[:2]
    m = alignment_matrix(xyxy, ibug68, w, h, margin, rule)
    return AlignedFace(
        image=warp_crop(image, m, ALIGNED_SIZE),
        landmarks=image_to_crop(ibug68, m).astype(np.float32),
        matrix=m,
    )
