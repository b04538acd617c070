"""``ScoredFace``: one quality-model score of one face, with the cheap signals it came with."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.faces.align import AlignedFace
from monitor.faces.quality import QualitySignals


def pose_deviation(signals: QualitySignals) -> float:
    """Degrees away from frontal: ``hypot(yaw, pitch)``.

    Roll is left out on purpose: alignment levels the eyes, so an in-plane tilt costs the
    quality model nothing, while yaw and pitch hide half the face.
    """
    return math.hypot(signals.yaw, signals.pitch)


@dataclass(frozen=True, slots=True, eq=False)
class ScoredFace:
    """A face of a track that the quality engine scored.

    Attributes:
        track_id: the tracker's public id (confirmed tracks only).
        frame: the stream frame index (``Frame.index``).
        pts: the frame's time in seconds, ``None`` where the source has none.
        score: the quality engine's score (higher is better).
        detection_score: the detector's confidence for this face.
        signals: the face's cheap signals (size, pose, sharpness, brightness, contrast).
        xyxy: the face box in the frame, where known.
        face: the aligned 512 face that was scored. Only the best-K frames of a track keep
            it; everything else the track keeps about an observation is scalars.

    Example:
        >>> from monitor.faces.quality import QualitySignals
        >>> s = QualitySignals(120.0, 50.0, 3.0, -2.0, 0.5, 80.0, 120.0, 40.0)
        >>> ScoredFace(track_id=1, frame=10, pts=0.4, score=0.71, detection_score=0.9, signals=s)
        ScoredFace(track_id=1, frame=10, pts=0.4, score=0.71, ...)
    """

    track_id: int
    frame: int
    pts: float | None
    score: float
    detection_score: float
    signals: QualitySignals
    xyxy: tuple[float, float, float, float] | None = None
    face: AlignedFace | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.score):
            raise ValueError(
                f"ScoredFace.score must be a finite number, got {self.score} "
                f"(track {self.track_id}, frame {self.frame}): drop failed scores upstream"
            )

    def __repr__(self) -> str:
        return (
            f"ScoredFace(track_id={self.track_id}, frame={self.frame}, pts={self.pts}, "
            f"score={self.score}, ...)"
        )

    @property
    def face_size(self) -> float:
        return self.signals.face_size

    @property
    def pose_deviation(self) -> float:
        return pose_deviation(self.signals)
