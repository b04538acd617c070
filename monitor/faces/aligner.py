"""``PhotoAligner``: any RGB photo -> the aligned 512x512 faces DSL-FIQA scores.

Wires the three steps of :mod:`monitor.faces` for a still image: ``FaceDetector`` (faces
scoring at least ``min_score``, best first) -> ``FaceLandmarker`` (468-point mesh, iBUG-68
mapping) -> ``align_face``. Faces whose mesh the landmarker rejects (face-presence flag under
its threshold) are dropped: they cannot be aligned. No logic of its own beyond that wiring.

Example:
    >>> with PhotoAligner() as aligner:  # doctest: +SKIP
    ...     for face in aligner(image):
    ...         print(face.bbox, face.detection_score, face.image.shape)
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from monitor.faces.align import DEFAULT_MARGIN, DEFAULT_RULE, AlignRule, align_face
from monitor.faces.detector import DEFAULT_MIN_SCORE, DetectorModel, FaceDetector
from monitor.faces.landmarks import FaceLandmarker

#: The detector for photos: near and distant faces (group photos); detection costs
#: milliseconds against seconds for scoring a face, so running both models is cheap.
DEFAULT_DETECTOR: DetectorModel = "both"


@dataclass(frozen=True, slots=True, eq=False)
class DetectedFace:
    """One face of a photo, aligned, with where the detector found it.

    Attributes:
        image: ``uint8 [512, 512, 3]`` RGB aligned face.
        landmarks: ``float32 [68, 2]`` iBUG points in ``image`` pixels.
        bbox: the detector's box (x1, y1, x2, y2) in photo pixels.
        detection_score: the detector's confidence in [0, 1].
    """

    image: np.ndarray
    landmarks: np.ndarray
    bbox: tuple[float, float, float, float]
    detection_score: float


class PhotoAligner:
    """Detects, landmarks and aligns every face of an RGB photo (callable).

    Args:
        detector: detector model, ``"short"``, ``"full"`` or ``"both"`` (see
            :class:`FaceDetector`).
        min_score: least detection score for a face.
        margin: box enlargement per side for alignment (see :func:`align_face`).
        rule: alignment rule, ``"eyes"`` (eye centres level, box padded) or ``"official"``
            (the official custom-image script's, for parity; see :mod:`monitor.faces.align`).
        max_faces: keep at most this many faces per photo, highest detection score first
            (None: all).

    Owns MediaPipe / LiteRT objects: use it as a context manager (or call :meth:`close`).
    Not thread-safe, like the detector and landmarker it wraps.
    """

    def __init__(
        self,
        detector: DetectorModel = DEFAULT_DETECTOR,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        margin: float = DEFAULT_MARGIN,
        rule: AlignRule = DEFAULT_RULE,
        max_faces: int | None = None,
    ) -> None:
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces must be >= 1 or None, got {max_faces}")
        if rule not in ("eyes", "official"):
            raise ValueError(f"rule must be 'eyes' or 'official', got {rule!r}")
        self.margin = margin
        self.rule: AlignRule = rule
        self.max_faces = max_faces
        with ExitStack() as stack:  # close the detector if the landmarker fails to load
            self._detector: FaceDetector | None = stack.enter_context(
                FaceDetector(detector, min_score=min_score)
            )
            self._landmarker: FaceLandmarker | None = FaceLandmarker()
            stack.pop_all()

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        """The aligned faces of an RGB ``uint8 [H, W, 3]`` photo, best detection first."""
        if self._detector is None or self._landmarker is None:
            raise RuntimeError("PhotoAligner is closed")
        faces = self._detector.faces(self._detector.detect(image))
        marks = self._landmarker.landmarks(image, faces.xyxy, faces.keypoints)
        out: list[DetectedFace] = []
        for i in np.flatnonzero(marks.found):
            if self.max_faces is not None and len(out) >= self.max_faces:
                break
            aligned = align_face(image, faces.xyxy[i], marks.ibug68[i], self.margin, self.rule)
            x1, y1, x2, y2 = (float(v) for v in faces.xyxy[i])
            out.append(
                DetectedFace(
                    image=aligned.image,
                    landmarks=aligned.landmarks,
                    bbox=(x1, y1, x2, y2),
                    detection_score=float(faces.scores[i]),
                )
            )
        return out

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        self._landmarker = None  # a LiteRT Interpreter has no close(); dropping it frees it

    def __enter__(self) -> PhotoAligner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
