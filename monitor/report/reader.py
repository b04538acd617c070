"""Reads a run folder (``fqm run --out``) into a :class:`RunReport`, in bounded memory.

Each line is parsed with :func:`monitor.events.loads` (the project's schema, not a copy).
Two passes per stream: the first reads every topic but the face observations (best frames,
track summaries, status: small) and learns each track's best score; the second keeps
details only for the ``max_tracks`` best tracks and streams the observations once. What is
kept per track is capped too (``best_k`` crops, ``max_points`` curve points), so a run of
any length reads in memory proportional to what the page shows, plus one float per track.

Lines that are not readable events (a torn last line, an unknown kind or schema version,
foreign data) are counted per file and reported on the page; reading goes on.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from monitor.delivery.jsonl_sink import CROPS_DIR
from monitor.events import (
    BestFrameEvent,
    CropRef,
    Event,
    EventError,
    FaceObservationEvent,
    NotAnEventError,
    SchemaVersionError,
    StreamStatusEvent,
    TrackSummaryEvent,
    UnknownKindError,
    loads,
)
from monitor.report.files import Line, read_lines, stream_folders, topic_files
from monitor.report.health import HealthBuilder
from monitor.report.model import (
    BestShot,
    ReadIssue,
    ReportError,
    RunReport,
    ScorePoint,
    Signals,
    StreamReport,
    TrackReport,
)
from pipelines.urls import mask_url

#: Tracks shown per stream (the best by score); the page says how many more there were.
MAX_TRACKS = 48
#: Best crops shown per track.
BEST_K = 3
#: Curve points kept per track (long tracks are thinned evenly).
MAX_POINTS = 400
#: Best-frame changes marked per track.
MAX_CHOSEN = 64
#: Distinct problems listed per stream.
MAX_ISSUES = 20
#: The smoothing's half-life in stream frames: the same gap-weighted EMA as the service's
#: ``monitor.tracks.curve`` (recomputed here: importing ``monitor.tracks`` loads torch).
HALF_LIFE_FRAMES = 12.0

TrackKey = tuple[str, int]


def read_run(
    root: Path,
    *,
    max_tracks: int = MAX_TRACKS,
    best_k: int = BEST_K,
    max_points: int = MAX_POINTS,
) -> RunReport:
    """Read every stream folder of ``root``.

    Raises:
        ReportError: ``root`` is missing, not a folder, or has no stream folder.
    """
    root = Path(root)
    if not root.exists():
        raise ReportError(root, "no such run folder; give the --out folder of fqm run")
    if not root.is_dir():
        raise ReportError(root, "not a folder; give the --out folder of fqm run", 20)
    folders = stream_folders(root)
    if not folders:
        raise ReportError(
            root, "no stream folders in it; fqm run --out writes <stream>/fqm.*.jsonl there"
        )
    streams = [_StreamReader(root, f, max_tracks, best_k, max_points).read() for f in folders]
    return RunReport(root=root, streams=tuple(streams))


class _Thinned:
    """At most ``cap`` items of a sequence, evenly spaced, the last one always included."""

    def __init__(self, cap: int) -> None:
        self.cap = max(cap, 2)
        self.stride = 1
        self.seen = 0
        self.items: list[ScorePoint] = []
        self.last: ScorePoint | None = None

    def add(self, item: ScorePoint) -> None:
        if self.seen % self.stride == 0:
            self.items.append(item)
            if len(self.items) > self.cap - 1:
                self.items = self.items[::2]
                self.stride *= 2
        self.seen += 1
        self.last = item

    def result(self) -> tuple[ScorePoint, ...]:
        if self.last is not None and (not self.items or self.items[-1] is not self.last):
            return (*self.items, self.last)
        return tuple(self.items)


class _Track:
    """What is gathered about one shown track."""

    def __init__(self, key: TrackKey, best_k: int, max_points: int) -> None:
        self.key = key
        self.best_k = best_k
        self.shots: list[tuple[float, int, BestFrameEvent]] = []  # a min-heap of the best
        self.chosen: list[tuple[int, float | None, float]] = []
        self.summary: TrackSummaryEvent | None = None
        self.points = _Thinned(max_points)
        self.smoothed: float | None = None
        self.last_frame: int | None = None
        self.scores = 0
        self.low = self.high = self.sum = 0.0
        self.first: tuple[int, float | None] | None = None
        self.end: tuple[int, float | None] | None = None

    def best_frame(self, event: BestFrameEvent, order: int) -> None:
        item = (event.quality.score, order, event)
        if len(self.shots) < self.best_k:
            heapq.heappush(self.shots, item)
        else:
            heapq.heappushpop(self.shots, item)
        if len(self.chosen) < MAX_CHOSEN:
            self.chosen.append((event.frame_index, event.pts, event.quality.score))

    def observation(self, event: FaceObservationEvent) -> None:
        score, frame = event.quality.score, event.frame_index
        if self.smoothed is None or self.last_frame is None:
            self.smoothed = score
        else:
            alpha = 1.0 - 0.5 ** (max(frame - self.last_frame, 1) / HALF_LIFE_FRAMES)
            self.smoothed += alpha * (score - self.smoothed)
        self.last_frame = frame
        self.scores += 1
        self.low = score if self.scores == 1 else min(self.low, score)
        self.high = score if self.scores == 1 else max(self.high, score)
        self.sum += score
        self.first = self.first or (frame, event.pts)
        self.end = (frame, event.pts)
        s = event.signals
        signals = (
            None if s is None else Signals(s.face_size, s.yaw, s.pitch, s.sharpness, s.brightness)
        )
        self.points.add(ScorePoint(frame, event.pts, score, self.smoothed, signals))

    def build(
        self, best_score: float, crops: Callable[[CropRef], tuple[Path | None, str]]
    ) -> TrackReport:
        ranked = sorted(self.shots, key=lambda s: (-s[0], -s[1]))
        shots = []
        for rank, (_, _, e) in enumerate(ranked):
            path, note = crops(e.crop)
            shots.append(
                BestShot(rank, e.frame_index, e.pts, e.quality.score, path, e.crop.sha256, note)
            )
        summary = self.summary
        if not shots and summary is not None and summary.best is not None:
            b = summary.best
            path, note = crops(b.crop) if b.crop else (None, "no crop was sent")
            sha = b.crop.sha256 if b.crop else None
            shots.append(BestShot(0, b.frame_index, b.pts, b.quality.score, path, sha, note))
        points = self.points.result()
        from_summary = False
        if not points and summary is not None and summary.curve is not None:
            points = _summary_points(summary)
            from_summary = True
        curve = summary.curve if summary is not None else None
        producer, track_id = self.key
        return TrackReport(
            producer=producer,
            track_id=track_id,
            best_score=best_score,
            shots=tuple(shots),
            chosen=tuple(sorted(self.chosen)),
            points=points,
            from_summary=from_summary,
            scored=summary.observations_scored if summary else self.scores,
            frames_seen=summary.frames_seen if summary else None,
            first_frame=summary.first_frame if summary else (self.first and self.first[0]),
            last_frame=summary.last_frame if summary else (self.end and self.end[0]),
            start_pts=summary.start_pts if summary else (self.first and self.first[1]),
            end_pts=summary.end_pts if summary else (self.end and self.end[1]),
            ended=summary is not None,
            low=curve.min if curve else (self.low if self.scores else None),
            median=curve.median if curve else None,
            high=curve.max if curve else (self.high if self.scores else None),
            mean=curve.mean if curve else (self.sum / self.scores if self.scores else None),
        )


def _summary_points(summary: TrackSummaryEvent) -> tuple[ScorePoint, ...]:
    """A summary's compact curve as points, smoothed the same way."""
    assert summary.curve is not None
    out, smoothed, last = [], None, None
    for p in summary.curve.points:
        if smoothed is None or last is None:
            smoothed = p.score
        else:
            alpha = 1.0 - 0.5 ** (max(p.frame_index - last, 1) / HALF_LIFE_FRAMES)
            smoothed += alpha * (p.score - smoothed)
        last = p.frame_index
        out.append(ScorePoint(p.frame_index, p.pts, p.score, smoothed, None))
    return tuple(out)


class _StreamReader:
    """Reads one stream folder (two passes; see the module docstring)."""

    def __init__(self, root: Path, folder: Path, max_tracks: int, best_k: int, max_points: int):
        self.root, self.folder = root, folder
        self.max_tracks, self.best_k, self.max_points = max_tracks, best_k, max_points
        self.issues: dict[tuple[str, str], list] = {}
        self.kinds: Counter[str] = Counter()
        self.best_scores: dict[TrackKey, float] = {}
        self.unscored: set[TrackKey] = set()
        self.health = HealthBuilder()
        self.stream_ids: Counter[str] = Counter()
        self.models: set[str] = set()
        self.producers: set[str] = set()
        self.first_time: datetime | None = None
        self.last_time: datetime | None = None
        self.max_frame = -1

    def read(self) -> StreamReport:
        groups = topic_files(self.folder)
        if not groups:
            self._issue(self.folder.name, "empty", "no event files (fqm.*.jsonl) in this folder")
        faces, others = [], []
        for files in groups:
            (faces if self._peek_kind(files) == "face_observation" else others).append(files)
        for files in others:
            for event in self._events(files, record=True):
                self._first_pass(event)
        shown = heapq.nlargest(self.max_tracks, self.best_scores.items(), key=lambda kv: kv[1])
        tracks = {key: _Track(key, self.best_k, self.max_points) for key, _ in shown}
        order = 0
        for files in others:
            for event in self._events(files, record=False):
                track = (
                    tracks.get(_key(event))
                    if isinstance(event, BestFrameEvent | TrackSummaryEvent)
                    else None
                )
                if track is None:
                    continue
                if isinstance(event, BestFrameEvent):
                    order += 1
                    track.best_frame(event, order)
                else:
                    track.summary = event
        for files in faces:
            for event in self._events(files, record=True):
                self._seen(event)
                if isinstance(event, FaceObservationEvent):
                    key = _key(event)
                    if key in tracks:
                        tracks[key].observation(event)
                    elif key not in self.best_scores:
                        self.unscored.add(key)
        if len(self.stream_ids) > 1:
            ids = ", ".join(repr(s) for s, _ in self.stream_ids.most_common(5))
            self._issue(self.folder.name, "ids", f"events of several streams in one folder: {ids}")
        health = self.health.build(self.last_time)
        frames = max(health.frames_decoded, self.max_frame + 1)
        return StreamReport(
            stream_id=self.stream_ids.most_common(1)[0][0] if self.stream_ids else self.folder.name,
            folder=self.folder.name,
            health=health,
            tracks=tuple(tracks[key].build(score, self._crop) for key, score in shown),
            tracks_total=len(self.best_scores) + len(self.unscored),
            events=dict(self.kinds),
            frames=frames,
            models=tuple(sorted(self.models)),
            producers=tuple(sorted(self.producers)),
            first_time=self.first_time,
            last_time=self.last_time,
            issues=tuple(ReadIssue(f, msg, n) for (f, _), (msg, n) in self.issues.items()),
        )

    def _first_pass(self, event: Event) -> None:
        self._seen(event)
        if isinstance(event, BestFrameEvent):
            key, score = _key(event), event.quality.score
        elif isinstance(event, TrackSummaryEvent):
            key, score = _key(event), event.best.quality.score if event.best else None
            if score is None:
                self.unscored.add(key)
                return
        else:
            if isinstance(event, StreamStatusEvent):
                self.health.add(event)
            return
        self.unscored.discard(key)
        self.best_scores[key] = max(score, self.best_scores.get(key, score))

    def _seen(self, event: Event) -> None:
        """Counts every event once (each is seen in exactly one recording pass)."""
        self.kinds[event.kind] += 1
        if len(self.stream_ids) < 16 or event.stream_id in self.stream_ids:
            self.stream_ids[event.stream_id] += 1
        if len(self.producers) < 16:
            self.producers.add(event.producer)
        t = event.wall_time
        self.first_time = t if self.first_time is None else min(self.first_time, t)
        self.last_time = t if self.last_time is None else max(self.last_time, t)
        quality = getattr(event, "quality", None)
        if quality is not None and len(self.models) < 8:
            self.models.add(f"{quality.variant} ({quality.mode}, {quality.backend})")
        frame = getattr(event, "frame_index", getattr(event, "last_frame", None))
        if frame is not None:
            self.max_frame = max(self.max_frame, frame)

    def _peek_kind(self, files: list[Path]) -> str | None:
        """The kind of a topic's events: its first readable event's (one topic per kind)."""
        for path in files:
            for line in read_lines(path):
                if not line.problem:
                    try:
                        return loads(line.data).kind
                    except EventError:
                        continue
        return None

    def _events(self, files: Iterable[Path], record: bool) -> Iterable[Event]:
        """The readable events of a topic's files; problems noted when ``record``."""
        for path in files:
            name = str(path.relative_to(self.root))
            try:
                for line in read_lines(path):
                    if line.problem and record:
                        self._issue(name, line.problem, _LINE_PROBLEMS[line.problem](line))
                    if line.problem:
                        continue
                    try:
                        yield loads(line.data)
                    except EventError as exc:
                        if record:
                            self._issue(name, type(exc).__name__, _explain(exc, line.number))
            except OSError as exc:
                if record:
                    self._issue(name, "os", f"cannot read it: {exc.strerror or exc}")

    def _issue(self, file: str, what: str, message: str) -> None:
        entry = self.issues.get((file, what))
        if entry is not None:
            entry[1] += 1
        elif len(self.issues) < MAX_ISSUES:
            self.issues[(file, what)] = [mask_url(message), 1]

    def _crop(self, ref: CropRef) -> tuple[Path | None, str]:
        """Where a crop's JPEG is on this machine, or why it is not."""
        if ref.delivery == "inline":
            path = self.folder / CROPS_DIR / f"{ref.crop_id}.jpg"
        else:
            uri = urlparse(ref.uri or "")
            if uri.scheme != "file":
                return None, f"claim-checked at {mask_url(ref.uri or '')}, not a local file"
            path = Path(unquote(uri.path))
        if not path.is_file():
            return None, "crop not on disk (the sink keeps only the newest crops per stream)"
        return path, ""


def _key(event: BestFrameEvent | TrackSummaryEvent | FaceObservationEvent) -> TrackKey:
    return (event.producer, event.track_id)


_LINE_PROBLEMS: dict[str, Callable[[Line], str]] = {
    "torn": lambda line: (
        f"the last line ({len(line.data)} bytes) has no newline: a crash cut it, "
        "or fqm run is still writing; skipped"
    ),
    "too_long": lambda line: f"line {line.number} is over 4 MiB; skipped",
}


def _explain(exc: EventError, number: int) -> str:
    if isinstance(exc, UnknownKindError):
        return f"line {number}: {exc} (written by a newer fqm?); skipped"
    if isinstance(exc, SchemaVersionError):
        return f"line {number}: {exc}; skipped"
    if isinstance(exc, NotAnEventError):
        return f"line {number}: not an fqm event ({exc}); skipped"
    return f"line {number}: not a valid event ({exc}); skipped"
