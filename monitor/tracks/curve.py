"""A track's quality curve: EMA smoothing and a bounded, merged list of points.

Smoothing is an exponential moving average whose weight depends on the gap since the last
observation: ``alpha = 1 - 0.5 ** (gap_frames / half_life_frames)``. The scoring policy
samples a track irregularly (at once, then every second or so, sooner when a better frame is
promised), so a fixed-weight EMA or a window median would mean different time spans on
different tracks; with a half-life in stream frames an observation after a long gap mostly
replaces the old value and one right after the last mostly confirms it. It needs O(1) state
(a median needs its window of scores).

The curve keeps at most ``max_points`` points. Each point covers ``width`` consecutive
observations (count, mean, min, max, first/last frame and the smoothed value at its end);
when the list would exceed ``max_points``, adjacent pairs merge and ``width`` doubles, so a
100,000-observation track still holds ``max_points`` points of equal weight. Min, max, mean
and count are exact; the median is the count-weighted median of the points' means (exact
while no point has merged).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Observations ``first_frame..last_frame`` of a track, merged into one point."""

    first_frame: int
    last_frame: int
    first_pts: float | None
    last_pts: float | None
    count: int
    mean: float
    low: float
    high: float
    smoothed: float

    def merge(self, later: CurvePoint) -> CurvePoint:
        n = self.count + later.count
        return CurvePoint(
            first_frame=self.first_frame,
            last_frame=later.last_frame,
            first_pts=self.first_pts,
            last_pts=later.last_pts,
            count=n,
            mean=(self.mean * self.count + later.mean * later.count) / n,
            low=min(self.low, later.low),
            high=max(self.high, later.high),
            smoothed=later.smoothed,
        )


@dataclass(frozen=True, slots=True)
class CurveSummary:
    """The curve of a track, for its final summary.

    Attributes:
        count: observations scored.
        low, median, high, mean: of the raw scores (median: see the module docstring).
        smoothed: the EMA after the last observation.
        points: at most ``max_points`` merged points, oldest first.
    """

    count: int
    low: float | None
    median: float | None
    high: float | None
    mean: float | None
    smoothed: float | None
    points: tuple[CurvePoint, ...]


class QualityCurve:
    """Bounded quality curve of one track (mutable; one per live track).

    Args:
        max_points: most points kept (>= 2).
        half_life_frames: EMA half-life in stream frames (> 0).

    Example:
        >>> curve = QualityCurve(max_points=4, half_life_frames=10)
        >>> for frame, score in enumerate([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]):
        ...     _ = curve.add(frame, None, score)
        >>> s = curve.summary()
        >>> s.count, len(s.points), s.high
        (6, 3, 1.0)
    """

    def __init__(self, max_points: int = 64, half_life_frames: float = 12.0) -> None:
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points}")
        if not half_life_frames > 0:
            raise ValueError(f"half_life_frames must be > 0, got {half_life_frames}")
        self.max_points = max_points
        self.half_life_frames = float(half_life_frames)
        self._points: list[CurvePoint] = []
        self._width = 1
        self._count = 0
        self._sum = 0.0
        self._low = float("inf")
        self._high = float("-inf")
        self._smoothed: float | None = None
        self._last_frame: int | None = None

    @property
    def count(self) -> int:
        return self._count

    @property
    def smoothed(self) -> float | None:
        return self._smoothed

    def __len__(self) -> int:
        return len(self._points)

    def add(self, frame: int, pts: float | None, score: float) -> float:
        """Records one score; returns the smoothed value after it."""
        score = float(score)
        if self._smoothed is None or self._last_frame is None:
            smoothed = score
        else:
            gap = max(frame - self._last_frame, 1)
            alpha = 1.0 - 0.5 ** (gap / self.half_life_frames)
            smoothed = self._smoothed + alpha * (score - self._smoothed)
        self._smoothed, self._last_frame = smoothed, frame
        self._count += 1
        self._sum += score
        self._low, self._high = min(self._low, score), max(self._high, score)
        point = CurvePoint(frame, frame, pts, pts, 1, score, score, score, smoothed)
        if self._points and self._points[-1].count < self._width:
            self._points[-1] = self._points[-1].merge(point)
        else:
            self._points.append(point)
        if len(self._points) > self.max_points:
            pairs = zip(self._points[0::2], self._points[1::2], strict=False)
            merged = [a.merge(b) for a, b in pairs]
            if len(self._points) % 2:
                merged.append(self._points[-1])
            self._points = merged
            self._width *= 2
        return smoothed

    def median(self) -> float | None:
        if not self._points:
            return None
        ordered = sorted(self._points, key=lambda p: p.mean)
        half = self._count / 2
        seen = 0
        for i, p in enumerate(ordered):
            seen += p.count
            if seen > half:
                return p.mean
            if seen == half:  # even count split exactly between two points
                return (p.mean + ordered[i + 1].mean) / 2
        return ordered[-1].mean

    def summary(self) -> CurveSummary:
        if not self._count:
            return CurveSummary(0, None, None, None, None, None, ())
        return CurveSummary(
            count=self._count,
            low=self._low,
            median=self.median(),
            high=self._high,
            mean=self._sum / self._count,
            smoothed=self._smoothed,
            points=tuple(self._points),
        )
