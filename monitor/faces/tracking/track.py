"""One track's state machine, and the immutable records the tracker hands out about it.

Lifecycle (each arrow emits the named ``TrackEvent``):

* TENTATIVE -> CONFIRMED after ``min_hits`` consecutive detections (``CONFIRMED``, id given);
* TENTATIVE -> dropped at its first miss (no event: it never had an id);
* CONFIRMED -> LOST on a miss, i.e. a detection frame that did not find it (``LOST``): it
  coasts on its Kalman prediction; ``coast`` frames are not misses, and a confirmed track
  ends only through LOST (or at ``finish()``);
* LOST -> CONFIRMED when detected again (``RECOVERED``), same id;
* LOST -> ENDED after ``max_lost_frames`` stream frames undetected, or at ``finish()``
  (``ENDED``, with its ``TrackSummary``); its state is then deleted.

A tentative track has no public id (``-1``): ids are drawn from the counter only at
confirmation, so the id sequence never has holes left by one-frame false positives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from monitor.faces.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from monitor.faces.tracking.kalman import KalmanFilter

#: The public id of a track that is not confirmed yet.
PROVISIONAL_ID = -1


class TrackState(enum.IntEnum):
    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2
    ENDED = 3


class TrackEventKind(enum.Enum):
    CONFIRMED = "confirmed"
    LOST = "lost"
    RECOVERED = "recovered"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """What a track was, over its whole life; carried by its ``ENDED`` event.

    Frames are stream frame indices (as given to ``update``, or counted), times the ``pts``
    given to ``update`` (``None`` where the source had none). ``hits`` and ``misses`` are
    totals over the whole life: detection frames that found the track, and detection frames
    that did not (``coast`` frames count as neither).
    """

    track_id: int
    first_frame: int
    last_frame: int
    first_pts: float | None
    last_pts: float | None
    hits: int
    misses: int
    best_score: float
    mean_score: float
    last_xyxy: tuple[float, float, float, float]
    was_confirmed: bool


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """A lifecycle transition. ``summary`` is set on ``ENDED`` only."""

    kind: TrackEventKind
    track_id: int
    frame: int
    pts: float | None
    summary: TrackSummary | None = None


class Track:
    """The tracker's private, mutable state for one face; never handed out (see ``TrackedFaces``).

    Bounded: counters and the Kalman state only, no history that grows with the track's age.
    """

    __slots__ = (
        "_kf",
        "best_score",
        "consecutive_hits",
        "cov",
        "first_frame",
        "first_pts",
        "hits",
        "key",
        "keypoints",
        "last_frame",
        "last_pts",
        "mean",
        "misses",
        "score",
        "score_sum",
        "state",
        "track_id",
        "was_confirmed",
    )

    def __init__(
        self,
        key: int,
        xyxy: np.ndarray,
        score: float,
        keypoints: np.ndarray,
        frame: int,
        pts: float | None,
        kf: KalmanFilter,
    ) -> None:
        self._kf = kf
        self.key = key
        self.track_id = PROVISIONAL_ID
        self.state = TrackState.TENTATIVE
        self.was_confirmed = False
        self.mean, self.cov = kf.initiate(xyxy_to_cxcywh(xyxy))
        self.score = float(score)
        self.keypoints = np.array(keypoints, np.float32)
        self.hits = 1
        self.consecutive_hits = 1
        self.misses = 0
        self.score_sum = float(score)
        self.best_score = float(score)
        self.first_frame = self.last_frame = frame
        self.first_pts = self.last_pts = pts

    @property
    def xyxy(self) -> np.ndarray:
        return cxcywh_to_xyxy(self.mean[:4])

    def predict(self) -> None:
        self.mean, self.cov = self._kf.predict(self.mean, self.cov)

    def observe(
        self, xyxy: np.ndarray, score: float, keypoints: np.ndarray, frame: int, pts: float | None
    ) -> None:
        self.mean, self.cov = self._kf.update(self.mean, self.cov, xyxy_to_cxcywh(xyxy))
        self.score = float(score)
        self.keypoints = np.array(keypoints, np.float32)
        self.hits += 1
        self.consecutive_hits += 1
        self.score_sum += float(score)
        self.best_score = max(self.best_score, float(score))
        self.last_frame = frame
        self.last_pts = pts

    def miss(self) -> None:
        """A detection frame that did not find this track (``coast`` frames are not misses)."""
        # ``misses`` is the life total for the summary; the lifecycle needs no consecutive-miss
        # count, since a lost track's age is measured from ``last_frame`` in stream frames.
        self.misses += 1
        self.consecutive_hits = 0

    def summary(self) -> TrackSummary:
        x1, y1, x2, y2 = (float(v) for v in self.xyxy)
        return TrackSummary(
            track_id=self.track_id,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            first_pts=self.first_pts,
            last_pts=self.last_pts,
            hits=self.hits,
            misses=self.misses,
            best_score=self.best_score,
            mean_score=self.score_sum / self.hits,
            last_xyxy=(x1, y1, x2, y2),
            was_confirmed=self.was_confirmed,
        )
