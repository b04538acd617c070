"""``FaceDetections``: the immutable container that flows from the detector to the tracker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: MediaPipe's six face keypoints, in the order its detectors emit them. "right"/"left" are
#: the subject's: the right eye is on the image's left in an unmirrored frame.
KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)


def _check(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    ok = array.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(array.shape, shape, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"FaceDetections.{name} must have shape {want}, got {array.shape}")


def _frozen(array: Any, dtype: type) -> np.ndarray:
    """A read-only float copy: callers can never change a container after the fact."""
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class FaceDetections:
    """Faces found in one frame, as parallel arrays (one row per face).

    Attributes:
        xyxy: boxes in pixels, ``float32 [N, 4]`` as (x1, y1, x2, y2).
        scores: detector confidence, ``float32 [N]`` in [0, 1].
        keypoints: the six MediaPipe keypoints (see ``KEYPOINT_NAMES``) in pixels,
            ``float32 [N, 6, 2]`` as (x, y).

    The arrays are copied and made read-only on construction; every operation returns a new
    container.

    Example:
        >>> d = FaceDetections.empty()
        >>> len(d), d.xyxy.shape
        (0, (0, 4))
    """

    xyxy: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", _frozen(self.xyxy, np.float32))
        object.__setattr__(self, "scores", _frozen(self.scores, np.float32))
        object.__setattr__(self, "keypoints", _frozen(self.keypoints, np.float32))
        n = self.xyxy.shape[0] if self.xyxy.ndim == 2 else None
        _check("xyxy", self.xyxy, (None, 4))
        _check("scores", self.scores, (n,))
        _check("keypoints", self.keypoints, (n, NUM_KEYPOINTS, 2))

    @classmethod
    def empty(cls) -> FaceDetections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            keypoints=np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
        )

    @classmethod
    def from_mediapipe(cls, result: Any, width: int, height: int) -> FaceDetections:
        """Converts a MediaPipe Tasks ``FaceDetectorResult`` for an image of this size.

        Boxes come in pixels, keypoints normalised to [0, 1]; both end up in pixels. A
        detection without keypoints gets NaN keypoints rather than a made-up position.
        """
        dets = list(getattr(result, "detections", None) or [])
        if not dets:
            return cls.empty()
        xyxy = np.zeros((len(dets), 4), np.float32)
        scores = np.zeros((len(dets),), np.float32)
        kps = np.full((len(dets), NUM_KEYPOINTS, 2), np.nan, np.float32)
        for i, det in enumerate(dets):
            box = det.bounding_box
            xyxy[i] = (
                box.origin_x,
                box.origin_y,
                box.origin_x + box.width,
                box.origin_y + box.height,
            )
            scores[i] = max((c.score for c in det.categories), default=0.0)
            for k, kp in enumerate((det.keypoints or [])[:NUM_KEYPOINTS]):
                kps[i, k] = (kp.x * width, kp.y * height)
        return cls(xyxy=xyxy, scores=scores, keypoints=kps)

    @classmethod
    def merge(cls, parts: Sequence[FaceDetections]) -> FaceDetections:
        if not parts:
            return cls.empty()
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            keypoints=np.concatenate([p.keypoints for p in parts]),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> FaceDetections:
        """Rows selected by an int, a slice, an index array or a boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return FaceDetections(
            xyxy=self.xyxy[index], scores=self.scores[index], keypoints=self.keypoints[index]
        )

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    def clipped(self, width: int, height: int) -> FaceDetections:
        """Boxes clipped to the image (MediaPipe boxes can overhang the border)."""
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        return FaceDetections(xyxy=xyxy, scores=self.scores, keypoints=self.keypoints)
