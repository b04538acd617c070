"""``TrackQuality``: everything fqm keeps about the quality of one live track.

Bounded: the smoothed value and the curve's points (``QualityCurve``, at most
``curve_points``), the best K frames (``BestFrames``, the only place aligned face arrays are
kept) and a few scalars. It is created when its track is confirmed and dropped when it ends,
after its ``TrackQualitySummary`` is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.faces.tracking import TrackSummary
from monitor.tracks.best import BestChange, BestFrames
from monitor.tracks.curve import CurveSummary, QualityCurve
from monitor.tracks.observation import ScoredFace


@dataclass(frozen=True, slots=True)
class TrackQualityConfig:
    """Settings of every track's quality state.

    Attributes:
        best_k: best frames kept per track.
        margin: score a candidate must beat a best frame by to replace it (hysteresis), in
            the quality model's units (DSL-FIQA: MOS scaled to [0, 1], so 0.02 is 2 % of the
            scale; the center-crop mode's own error against official is about 0.08).
        tie_tolerance: scores closer than this tie, and face size, pose and detection score
            decide (see ``monitor.tracks.best``).
        min_gap_frames: best frames closer than this compete with each other only (0: off).
        keep_faces: keep the aligned face arrays of the best K (for the best-crop JPEG).
        curve_points: most points of a track's curve (older points merge pairwise beyond).
        half_life_frames: the EMA's half-life in stream frames (see ``monitor.tracks.curve``).
    """

    best_k: int = 3
    margin: float = 0.02
    tie_tolerance: float = 0.005
    min_gap_frames: int = 0
    keep_faces: bool = True
    curve_points: int = 64
    half_life_frames: float = 12.0

    def __post_init__(self) -> None:
        if self.best_k < 1:
            raise ValueError(f"best_k must be >= 1, got {self.best_k}")
        if self.margin < 0 or self.tie_tolerance < 0 or self.min_gap_frames < 0:
            raise ValueError("margin, tie_tolerance and min_gap_frames must be >= 0")
        if self.curve_points < 2:
            raise ValueError(f"curve_points must be >= 2, got {self.curve_points}")
        if not self.half_life_frames > 0:
            raise ValueError(f"half_life_frames must be > 0, got {self.half_life_frames}")


@dataclass(frozen=True, slots=True, eq=False)
class TrackQualitySummary:
    """A track's quality over its whole life, taken when it ends.

    Attributes:
        track_id: the tracker's id.
        first_frame, last_frame, first_pts, last_pts: the track's life (from the tracker's
            summary; from the scored frames when there is none).
        frames_seen: detection frames that found the track (tracker ``hits``), ``None`` when
            the tracker's summary was not given.
        observations: faces of the track that were scored.
        best: the best K frames, best first (with their aligned faces when kept).
        curve: min/median/max/mean and the bounded list of curve points.
    """

    track_id: int
    first_frame: int | None
    last_frame: int | None
    first_pts: float | None
    last_pts: float | None
    frames_seen: int | None
    observations: int
    best: tuple[ScoredFace, ...]
    curve: CurveSummary

    @property
    def best_frame(self) -> ScoredFace | None:
        return self.best[0] if self.best else None

    @property
    def best_score(self) -> float | None:
        return self.best[0].score if self.best else None


class TrackQuality:
    """Quality state of ONE track: curve, smoothing and best K (mutable, bounded)."""

    __slots__ = ("_best", "_curve", "_first", "_last", "lost", "track_id")

    def __init__(self, track_id: int, config: TrackQualityConfig | None = None) -> None:
        config = config or TrackQualityConfig()
        self.track_id = track_id
        self.lost = False
        self._curve = QualityCurve(config.curve_points, config.half_life_frames)
        self._best = BestFrames(
            config.best_k,
            margin=config.margin,
            tie_tolerance=config.tie_tolerance,
            min_gap_frames=config.min_gap_frames,
            keep_faces=config.keep_faces,
        )
        self._first: tuple[int, float | None] | None = None
        self._last: tuple[int, float | None] | None = None

    @property
    def observations(self) -> int:
        return self._curve.count

    @property
    def smoothed(self) -> float | None:
        return self._curve.smoothed

    @property
    def best(self) -> tuple[ScoredFace, ...]:
        return self._best.frames

    @property
    def curve_length(self) -> int:
        return len(self._curve)

    def add(self, face: ScoredFace) -> tuple[float, BestChange | None]:
        """Records one scored face; returns (smoothed score, change of the best K or None)."""
        if face.track_id != self.track_id:
            raise ValueError(f"face of track {face.track_id} given to track {self.track_id}")
        if self._last is not None and face.frame <= self._last[0]:
            raise ValueError(
                f"track {self.track_id}: frame {face.frame} is not after the last scored "
                f"frame {self._last[0]}; give each track's faces in stream order"
            )
        smoothed = self._curve.add(face.frame, face.pts, face.score)
        if self._first is None:
            self._first = (face.frame, face.pts)
        self._last = (face.frame, face.pts)
        return smoothed, self._best.offer(face)

    def summary(self, tracker: TrackSummary | None = None) -> TrackQualitySummary:
        """The summary; ``tracker`` (the ENDED event's) gives the track's life and hits."""
        if tracker is not None:
            first = (tracker.first_frame, tracker.first_pts)
            last = (tracker.last_frame, tracker.last_pts)
        else:
            first, last = self._first or (None, None), self._last or (None, None)
        return TrackQualitySummary(
            track_id=self.track_id,
            first_frame=first[0],
            last_frame=last[0],
            first_pts=first[1],
            last_pts=last[1],
            frames_seen=tracker.hits if tracker is not None else None,
            observations=self._curve.count,
            best=self._best.frames,
            curve=self._curve.summary(),
        )
