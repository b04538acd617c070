"""Cheap per-face quality signals, computed in microseconds to a few milliseconds.

They cost nothing next to DSL-FIQA and answer the operator's questions directly (too small?
turned away? out of focus? too dark?); the scheduler can also use them to skip hopeless faces
before spending a learned-model call on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ITU-R BT.601 luma weights, as JPEG and most quality tools use.
LUMA = np.array([0.299, 0.587, 0.114])
# Mesh vertices used for the head pose: outer eye corners, forehead top, chin.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER, FOREHEAD, CHIN = 33, 263, 10, 152


@dataclass(frozen=True, slots=True)
class QualitySignals:
    """Signals for one face.

    Attributes:
        face_size: the box's shorter side in frame pixels.
        interocular: distance between the outer eye corners in frame pixels (ISO/IEC
            29794-5 uses the inter-eye distance as its resolution measure).
        yaw, pitch, roll: head pose in degrees from the 3-D mesh; 0 is frontal. yaw > 0:
            the face turns towards the image's right (the subject's left); pitch > 0: chin
            up; roll > 0: the eye line runs downhill to the image's right (clockwise tilt).
        sharpness: variance of the 3x3 Laplacian of the luma over the face region of the
            aligned 512 image; blur and upscaling of small faces both lower it.
        brightness: mean luma (0-255) over the same region.
        contrast: standard deviation of the luma (RMS contrast) over the same region.
    """

    face_size: float
    interocular: float
    yaw: float
    pitch: float
    roll: float
    sharpness: float
    brightness: float
    contrast: float


def head_pose(mesh: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from ``[468, 3]`` mesh points (x, y, z in pixels).

    The face's x axis runs from the right to the left outer eye corner, its y axis from the
    forehead to the chin; the angles are those axes' tilts out of the image plane (yaw,
    pitch) and within it (roll). Rough (the mesh's z is a relative depth), but monotonic and
    near 0 on frontal faces, which is what a quality signal needs.
    """
    m = np.asarray(mesh, np.float64)
    x_axis = m[LEFT_EYE_OUTER] - m[RIGHT_EYE_OUTER]
    y_axis = m[CHIN] - m[FOREHEAD]
    roll = np.degrees(np.arctan2(x_axis[1], x_axis[0]))
    yaw = np.degrees(np.arctan2(x_axis[2], np.hypot(x_axis[0], x_axis[1])))
    pitch = np.degrees(np.arctan2(-y_axis[2], np.hypot(y_axis[0], y_axis[1])))
    return float(yaw), float(pitch), float(roll)


def luma(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float64) @ LUMA


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian; 0 for a flat image, high for sharp detail."""
    g = np.asarray(gray, np.float64)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def quality_signals(
    xyxy: np.ndarray, mesh: np.ndarray, aligned_image: np.ndarray, aligned_landmarks: np.ndarray
) -> QualitySignals:
    """All signals for one face.

    Args:
        xyxy: the face box in the frame.
        mesh: ``[468, 3]`` mesh points in frame pixels.
        aligned_image: the aligned 512x512 face (``AlignedFace.image``).
        aligned_landmarks: its 68 points (``AlignedFace.landmarks``); their bounding box is
            the region the photometric signals are measured on, so background is left out.
    """
    box = np.asarray(xyxy, np.float64)
    m = np.asarray(mesh, np.float64)
    yaw, pitch, roll = head_pose(m)
    size = aligned_image.shape[0]
    lo = np.clip(np.floor(aligned_landmarks.min(0)).astype(int), 0, size - 1)
    hi = np.clip(np.ceil(aligned_landmarks.max(0)).astype(int) + 1, 1, size)
    y = luma(aligned_image[lo[1] : hi[1], lo[0] : hi[0]])
    return QualitySignals(
        face_size=float(min(box[2] - box[0], box[3] - box[1])),
        interocular=float(np.linalg.norm(m[LEFT_EYE_OUTER, :2] - m[RIGHT_EYE_OUTER, :2])),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        sharpness=laplacian_variance(y),
        brightness=float(y.mean()) if y.size else 0.0,
        contrast=float(y.std()) if y.size else 0.0,
    )
