"""What a report shows, as frozen dataclasses: a run read back, per stream and per track.

The reader (:mod:`monitor.report.reader`) builds these from a run folder; the charts and the
HTML only read them. Crops are referenced by path, not held: a big run's JPEGs are read one
at a time while the page is written.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class ReportError(OSError):
    """A run folder that cannot be reported (missing, not a folder, no events in it).

    An ``OSError`` naming the folder, so the CLI's error boundary prints it as one
    ``Error: <folder>: <why>`` line.
    """

    def __init__(self, path: Path, why: str, code: int = errno.ENOENT) -> None:
        super().__init__(code, why, str(path))


@dataclass(frozen=True, slots=True)
class Signals:
    """The cheap signals of one scored face that the page plots (pixels, degrees, luma)."""

    face_size: float
    yaw: float
    pitch: float
    sharpness: float
    brightness: float


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """One scored face of a track: where (frame, pts), how good, and the smoothed curve there.

    Attributes:
        smoothed: the gap-weighted EMA of the scores up to this one (see ``reader``).
        signals: ``None`` when the producer did not compute them, or the point comes from a
            track summary's compact curve (the observations were not in the folder).
    """

    frame_index: int
    pts: float | None
    score: float
    smoothed: float
    signals: Signals | None


@dataclass(frozen=True, slots=True)
class BestShot:
    """A frame that became the track's best, with its crop.

    Attributes:
        rank: 0 for the track's best, 1 for the next, ... (by score).
        crop: the JPEG file; ``None`` when it is not on disk (deleted by the sink's
            retention, or a claim-check URI that is not a local file).
        sha256: the crop's digest as its event gives it, checked when the page reads it.
        crop_note: why there is no crop.
    """

    rank: int
    frame_index: int
    pts: float | None
    score: float
    crop: Path | None
    sha256: str | None = None
    crop_note: str = ""


@dataclass(frozen=True, slots=True)
class TrackReport:
    """One track of a stream, as much as the folder tells.

    Attributes:
        producer: the process that tracked it (track ids are unique per producer run).
        best_score: its highest score.
        shots: its best frames, best first (at most the reader's ``best_k``).
        chosen: every frame at which its best changed ``(frame_index, pts, score)``, in order
            (capped); the curve marks them.
        points: its scored faces in frame order, thinned evenly to the reader's
            ``max_points`` on long tracks; ``from_summary`` when they come from the
            summary's compact curve instead.
        scored: faces scored (all of them, not only ``points``).
        frames_seen, first_frame, last_frame, start_pts, end_pts: from its summary, else
            from what was observed (``frames_seen`` is then ``None``).
        ended: a summary was found (else the run stopped while it was live).
        low, median, high, mean: of all its scores (the summary's when there is one).
    """

    producer: str
    track_id: int
    best_score: float
    shots: tuple[BestShot, ...]
    chosen: tuple[tuple[int, float | None, float], ...]
    points: tuple[ScorePoint, ...]
    from_summary: bool
    scored: int
    frames_seen: int | None
    first_frame: int | None
    last_frame: int | None
    start_pts: float | None
    end_pts: float | None
    ended: bool
    low: float | None
    median: float | None
    high: float | None
    mean: float | None


@dataclass(frozen=True, slots=True)
class StatusSpan:
    """A stretch of a stream's life in one state (wall times, UTC)."""

    state: str
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """A stream's health from its ``stream_status`` events.

    Attributes:
        spans: the state timeline, oldest first (capped; ``spans_dropped`` says how many
            older ones were merged away).
        uptime: fraction of the timeline spent ``up``; ``None`` without status events.
        reconnects: times it went ``reconnecting``.
        frames_decoded, frames_dropped, corrupt_packets: totals (the last report of each
            producer, summed).
        fps: the last measured decode rate.
        last_state, last_reason: where it ended.
        reasons: ``(state, reason, count)`` for the distinct reasons given, most frequent
            first (capped).
    """

    spans: tuple[StatusSpan, ...]
    spans_dropped: int
    uptime: float | None
    reconnects: int
    frames_decoded: int
    frames_dropped: int
    corrupt_packets: int
    fps: float | None
    last_state: str | None
    last_reason: str
    reasons: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class ReadIssue:
    """Something in the folder that could not be read as an event; reading went on.

    Attributes:
        file: the file, relative to the run folder.
        problem: what, in words, with what to do about it.
        count: how many lines had this problem (the first one's message is kept).
    """

    file: str
    problem: str
    count: int


@dataclass(frozen=True, slots=True)
class StreamReport:
    """One stream of the run.

    Attributes:
        folder: its folder name in the run folder.
        tracks: the ``max_tracks`` best tracks, best first.
        tracks_total: tracks seen in all (``tracks_total - len(tracks)`` are not shown).
        events: events read, by kind (unreadable lines are in ``issues``).
        frames: frames decoded (status totals), else the highest frame index seen + 1.
        models: ``variant (mode, backend)`` labels seen on its scores.
        first_time, last_time: wall times of its first and last events.
    """

    stream_id: str
    folder: str
    health: StreamHealth
    tracks: tuple[TrackReport, ...]
    tracks_total: int
    events: dict[str, int]
    frames: int
    models: tuple[str, ...]
    producers: tuple[str, ...]
    first_time: datetime | None
    last_time: datetime | None
    issues: tuple[ReadIssue, ...]


@dataclass(frozen=True, slots=True)
class RunReport:
    """A whole run folder: its streams, sorted by id."""

    root: Path
    streams: tuple[StreamReport, ...]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted({m for s in self.streams for m in s.models}))

    @property
    def random_weights(self) -> bool:
        """Scores from fqm's seeded random model (no weights given): meaningless."""
        return any(m.split(" ", 1)[0].endswith("-random") for m in self.models)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.streams)

    @property
    def tracks(self) -> int:
        return sum(s.tracks_total for s in self.streams)

    @property
    def events(self) -> int:
        return sum(sum(s.events.values()) for s in self.streams)

    @property
    def issues(self) -> int:
        return sum(i.count for s in self.streams for i in s.issues)
