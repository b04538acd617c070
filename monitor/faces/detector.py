"""``FaceDetector``: MediaPipe BlazeFace on a frame, filtered to plausible faces.

Two models: the short-range one (faces within ~2 m of the camera, large in the picture; the
fastest), run by MediaPipe's Tasks API, and the full-range one for distant, small faces, run
by ``FullRangeDetector`` in LiteRT (``blazeface_full``). The full-range model is the
non-sparse ``face_detection_full_range.tflite``, which the Tasks API refuses (no input
normalisation metadata). The sparse file the Tasks API does load was dropped: on t1.jpg it
found 3 of 6 faces against 5, and scored a logo 0.50 against 0.22; nothing was better about
it. ``model="both"`` runs the two and merges them with non-maximum suppression: what a fixed
camera covering near and far needs, at about twice the cost.

Scores: real faces score ~0.8-0.95 while logos, blocks and textures reach 0.3-0.65 with the
short-range model (measured on this project's media; the full-range one stays under 0.3 on
them), hence ``min_score=0.6``, also MediaPipe's own threshold for both models. Detections
between ``low_score`` and ``min_score`` are still returned (with their score) because the
tracker's second pass uses them to keep an existing track alive; they never start a track on
their own.

Dark frames (``low_light=True``, the default): in very dark video (RGB x 0.05) the
short-range model scores the true face 0.4-0.7, under the tracker's 0.7 to start a track, so
a dark scene yields no face, and it scores spurious boxes (a face and torso, 0.7) as high.
A frame that ``monitor.faces.exposure`` finds dark is detected brightened instead (its 90th
luma percentile brought to normal video's): the true face scores 0.9-0.95 again and the
spurious box goes. Brightened instead of as well: the dark frame's own detections would add
only those spurious boxes. Every frame pays the darkness test (~0.1 ms), dark ones the brightening
too. Measured against the alternatives (the full-range model, both models) in
docs/faces/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import mediapipe as mp

from monitor.assets import asset_path
from monitor.faces import blazeface_full
from monitor.faces.blazeface_full import FullRangeDetector
from monitor.faces.boxes import nms
from monitor.faces.detections import FaceDetections
from monitor.faces.exposure import normalised
from monitor.native_logs import OnceNoise, quiet_native_logs

DetectorModel = Literal["short", "full", "both"]

MODEL_FILES: dict[str, str] = {
    "short": "face_detection_short_range.tflite",
    "full": blazeface_full.MODEL_FILE,
}

#: A detection at or above this score is a face (see the module docstring for why 0.6).
DEFAULT_MIN_SCORE = 0.6
#: Detections from here up to ``min_score`` are candidates for extending existing tracks.
DEFAULT_LOW_SCORE = 0.2
#: Faces narrower or shorter than this (pixels) are dropped: too small to score or recognise.
DEFAULT_MIN_FACE_SIZE = 20.0
#: Overlap above which two detections (from the two models) are the same face.
DEFAULT_NMS_IOU = 0.4
#: Side of the blank image of the warm-up inference run at load.
WARM_UP_SIZE = 128

#: MediaPipe's detector logs this absl warning once per process, when a tensor it allocates
#: turns out not to be 64-byte aligned: most often on the first inference (the warm-up),
#: sometimes on a later one; ``detect`` quiets the calls until it has gone by.
_UNALIGNED_TENSOR_WARNING = OnceNoise(b"Input tensor memory is not aligned", max_calls=100)


def _mp_image(image: np.ndarray) -> mp.Image:
    import mediapipe as mp  # lazily: a full-range-only detector never loads MediaPipe

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """The detector's settings, validated; see ``FaceDetector`` for their meaning."""

    model: DetectorModel = "short"
    min_score: float = DEFAULT_MIN_SCORE
    low_score: float = DEFAULT_LOW_SCORE
    min_face_size: float = DEFAULT_MIN_FACE_SIZE
    nms_iou: float = DEFAULT_NMS_IOU
    low_light: bool = True

    def __post_init__(self) -> None:
        if self.model not in ("short", "full", "both"):
            raise ValueError(f"model must be 'short', 'full' or 'both', got {self.model!r}")
        if not 0.0 < self.low_score <= self.min_score <= 1.0:
            raise ValueError(
                "scores must satisfy 0 < low_score <= min_score <= 1, got "
                f"low_score={self.low_score}, min_score={self.min_score}"
            )
        if self.min_face_size < 0:
            raise ValueError(f"min_face_size must be >= 0 pixels, got {self.min_face_size}")


class FaceDetector:
    """Finds faces in RGB images.

    Args:
        model: ``"short"`` (near faces, fastest), ``"full"`` (distant faces) or ``"both"``.
        min_score: score at or above which a detection is a face.
        low_score: least score returned at all; those below ``min_score`` are only for the
            tracker's second pass. Set it equal to ``min_score`` to get faces only.
        min_face_size: least box width and height in pixels.
        nms_iou: IoU above which overlapping detections are merged (``model="both"``).
        low_light: detect dark frames brightened (see the module docstring); ``False``
            detects every frame as it is.
        model_paths: override of the model files (default: the checked assets).
        num_threads: CPU threads of the full-range model's LiteRT interpreter.

    Not thread-safe (the full-range model's LiteRT interpreter, MediaPipe's graphs): use one
    detector per thread. Streams processed one after another on one thread may share one.

    Loading runs one warm-up inference on a blank image. The libraries' native log lines
    are hidden unless ``monitor.native_logs.configure_native_logs(True)`` was called.

    Example:
        >>> with FaceDetector() as detector:  # doctest: +SKIP
        ...     faces = detector.faces(detector.detect(frame.image))
    """

    def __init__(
        self,
        model: DetectorModel = "short",
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        low_score: float = DEFAULT_LOW_SCORE,
        min_face_size: float = DEFAULT_MIN_FACE_SIZE,
        nms_iou: float = DEFAULT_NMS_IOU,
        low_light: bool = True,
        model_paths: dict[str, Path] | None = None,
        num_threads: int = blazeface_full.DEFAULT_NUM_THREADS,
    ) -> None:
        self.settings = DetectorSettings(
            model, min_score, low_score, min_face_size, nms_iou, low_light
        )
        paths = model_paths or {}
        self._short = None
        self._full: FullRangeDetector | None = None
        if model in ("short", "both"):
            from mediapipe.tasks.python import BaseOptions, vision

            path = paths.get("short") or asset_path(MODEL_FILES["short"])
            options = vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_path=str(path)),
                running_mode=vision.RunningMode.IMAGE,
                min_detection_confidence=low_score,
                # MediaPipe's own suppression is per model; ours merges across models.
                min_suppression_threshold=0.3,
            )
            # Loading prints LiteRT INFO lines, and the warm-up inference usually prints the
            # one-time absl warning: both go by here, not on a stream's first frame.
            with quiet_native_logs():
                self._short = vision.FaceDetector.create_from_options(options)
                self._short.detect(_mp_image(np.zeros((WARM_UP_SIZE, WARM_UP_SIZE, 3), np.uint8)))
        if model in ("full", "both"):
            self._full = FullRangeDetector(
                min_score=min_score,
                low_score=low_score,
                num_threads=num_threads,
                model_path=paths.get("full"),
            )

    def detect(self, image: np.ndarray) -> FaceDetections:
        """Faces and low-score candidates in an RGB ``uint8 [H, W, 3]`` image, best first."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
            )
        if self.settings.low_light:
            image = normalised(image)  # the boxes are the same in either
        h, w = image.shape[:2]
        parts = []
        if self._short is not None:
            with _UNALIGNED_TENSOR_WARNING.around():
                found = self._short.detect(_mp_image(image))
            parts.append(FaceDetections.from_mediapipe(found, w, h).clipped(w, h))
        if self._full is not None:
            parts.append(self._full.detect(image))
        dets = FaceDetections.merge(parts)
        s = self.settings
        keep = (
            (dets.scores >= s.low_score)
            & (dets.widths >= s.min_face_size)
            & (dets.heights >= s.min_face_size)
        )
        dets = dets[keep]
        if len(parts) > 1:
            return dets[nms(dets.xyxy, dets.scores, s.nms_iou)]
        return dets[np.argsort(-dets.scores, kind="stable")]

    def faces(self, detections: FaceDetections) -> FaceDetections:
        """Only the detections scoring at least ``min_score``."""
        return detections[detections.scores >= self.settings.min_score]

    def close(self) -> None:
        if self._short is not None:
            with quiet_native_logs():  # closing prints LiteRT's DestroyAccelerator line
                self._short.close()
            self._short = None
        if self._full is not None:
            self._full.close()
            self._full = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
