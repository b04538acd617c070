"""The events fqm publishes: one frozen dataclass per kind, schema version 1.

Four kinds, each with a JSON Schema under ``monitor/events/schemas/v1/``:

* :class:`FaceObservationEvent` (``face_observation``): one scored face in one frame;
* :class:`BestFrameEvent` (``best_frame``): a track's best frame changed; it names the new
  best crop (:class:`CropRef`), sent inline on the crops topic or stored by claim-check;
* :class:`TrackSummaryEvent` (``track_summary``): a track ended; its life in one message;
* :class:`StreamStatusEvent` (``stream_status``): a stream went up, down, stalled...

Every event carries the envelope of :class:`Event`: ``schema_version``, ``kind``, a UUID
``event_id`` (consumers drop duplicates by it: delivery is at-least-once), ``stream_id``
(also the Kafka key), ``producer`` (the process that made it) and ``wall_time`` (UTC).

The fields are plain Python values (``str``, ``int``, ``float``, ``tuple``, ``UUID``, an aware
``datetime``), checked on construction, so a bad event fails where it is made, not in a
consumer. Times in a stream's timeline (``pts``) are seconds, ``None`` where the source has no
timestamps; frame indices count the stream's decoded pictures from 0.

Example:
    >>> from monitor.events import FaceObservationEvent, QualityScore
    >>> e = FaceObservationEvent(
    ...     stream_id="cam-1", producer="host-a:1234", track_id=3, frame_index=120,
    ...     pts=4.0, bbox=(10.0, 20.0, 110.0, 140.0), detection_score=0.93,
    ...     quality=QualityScore(score=0.71, variant="dslfiqa", mode="official",
    ...                          backend="torch"))
    >>> e.kind, e.schema_version
    ('face_observation', '1.0')
"""

from __future__ import annotations

import math
import os
import re
import socket
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal
from uuid import UUID, uuid4

#: Major version: bumped by any change an existing consumer could misread (see docs/events.md).
SCHEMA_MAJOR = 1
#: Minor version: bumped by additions an existing consumer may ignore.
SCHEMA_MINOR = 0
SCHEMA_VERSION = f"{SCHEMA_MAJOR}.{SCHEMA_MINOR}"

#: Longest ``stream_id`` / ``producer`` (characters); a Kafka key stays small.
MAX_ID_CHARS = 256
#: Longest free text (``reason``) and longest claim-check URI, in characters.
MAX_TEXT_CHARS = 1024
MAX_URI_CHARS = 2048
#: Most points a track summary's quality curve carries (the curve is downsampled to this).
MAX_CURVE_POINTS = 64

# Names of models, crop modes and backends: short identifiers, open-ended on purpose (a new
# crop mode or backend is not a schema change).
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

BBox = tuple[float, float, float, float]
StreamState = Literal["connecting", "up", "stalled", "reconnecting", "down"]
CropDelivery = Literal["inline", "claim_check"]
STREAM_STATES: tuple[str, ...] = ("connecting", "up", "stalled", "reconnecting", "down")


class EventError(ValueError):
    """An event that breaks the schema: built wrong, or received wrong."""


def utc_now() -> datetime:
    """The current wall time, UTC, to the microsecond (what events carry)."""
    return datetime.now(UTC)


def utc_from_unix(seconds: float) -> datetime:
    """A Unix time (``time.time()``, ``Frame.wall_time``) as the aware UTC ``datetime``."""
    return datetime.fromtimestamp(seconds, UTC)


def default_producer() -> str:
    """``host:pid``: names this process when no producer name is configured."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail(owner: str, name: str, problem: str) -> None:
    raise EventError(f"{owner}.{name}: {problem}")


def _check_str(owner: str, name: str, value: object, limit: int, empty: bool = False) -> None:
    if not isinstance(value, str):
        _fail(owner, name, f"expected a string, got {type(value).__name__}")
    elif not value and not empty:
        _fail(owner, name, "must not be empty")
    elif len(value) > limit:
        _fail(owner, name, f"{len(value)} characters; at most {limit}")


def _check_name(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        _fail(owner, name, f"{value!r} is not a lower-case identifier like 'dslfiqa' or 'torch'")


def _check_int(owner: str, name: str, value: object, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(owner, name, f"expected an integer, got {type(value).__name__}")
    elif value < minimum:
        _fail(owner, name, f"{value} is below {minimum}")


def _check_float(
    owner: str,
    name: str,
    value: object,
    lo: float = -math.inf,
    hi: float = math.inf,
    optional: bool = False,
) -> None:
    if value is None and optional:
        return
    if not isinstance(value, float | int) or isinstance(value, bool):
        _fail(owner, name, f"expected a number, got {type(value).__name__}")
    elif not math.isfinite(value):
        _fail(owner, name, f"{value} is not finite")
    elif not lo <= value <= hi:
        _fail(owner, name, f"{value} is outside [{lo}, {hi}]")


def _check_time(owner: str, name: str, value: object) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        _fail(owner, name, "expected an aware datetime (use utc_now() or utc_from_unix())")


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _check_bbox(owner: str, value: object) -> None:
    if not isinstance(value, tuple) or len(value) != 4:
        _fail(owner, "bbox", f"expected a tuple (x1, y1, x2, y2), got {value!r}")
    for v in value:  # type: ignore[union-attr]
        _check_float(owner, "bbox", v)
    x1, y1, x2, y2 = value  # type: ignore[misc]
    if x2 < x1 or y2 < y1:
        _fail(owner, "bbox", f"{value!r} has x2 < x1 or y2 < y1")


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityScore:
    """A DSL-FIQA score, and what produced it.

    Attributes:
        score: the model's quality score (higher is better).
        variant: the model variant (``engines.dslfiqa.variants``: ``dslfiqa``, ...).
        mode: the crop mode it was scored with (``official``, ``fixed5``, ``center``).
        backend: the runtime (``torch``, ``onnxruntime``, ``tensorrt``).
    """

    score: float
    variant: str
    mode: str
    backend: str

    def __post_init__(self) -> None:
        _check_float("QualityScore", "score", self.score)
        for name in ("variant", "mode", "backend"):
            _check_name("QualityScore", name, getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceSignals:
    """The cheap per-face signals (``monitor.faces.quality.QualitySignals``), as sent.

    Sizes in frame pixels, angles in degrees, photometric values on the 0-255 luma scale.
    """

    face_size: float
    interocular: float
    yaw: float
    pitch: float
    roll: float
    sharpness: float
    brightness: float
    contrast: float

    def __post_init__(self) -> None:
        for name in ("face_size", "interocular", "sharpness", "brightness", "contrast"):
            _check_float("FaceSignals", name, getattr(self, name), lo=0.0)
        for name in ("yaw", "pitch", "roll"):
            _check_float("FaceSignals", name, getattr(self, name), lo=-180.0, hi=180.0)

    @classmethod
    def from_quality_signals(cls, signals: object) -> FaceSignals:
        """From a ``QualitySignals`` (or anything with the same attributes)."""
        return cls(**{name: float(getattr(signals, name)) for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True, kw_only=True)
class CropRef:
    """Where a best-face JPEG is, and what it is.

    Attributes:
        crop_id: the crop's UUID: the key of its inline record (header ``crop-id``) or its name
            in the crop store.
        delivery: ``inline`` (a binary record on the crops topic, same key) or
            ``claim_check`` (stored; fetch ``uri``).
        uri: where a claim-checked crop is; ``None`` for inline crops.
        content_type: always ``image/jpeg`` in schema 1.
        width, height: pixels (512 unless it was downscaled to fit the size limit).
        size_bytes: length of the JPEG.
        jpeg_quality: the JPEG quality it was encoded with (lowered when it had to fit).
        sha256: hex digest of the JPEG bytes, so a consumer can check what it fetched.
    """

    crop_id: UUID
    delivery: CropDelivery
    uri: str | None
    width: int
    height: int
    size_bytes: int
    jpeg_quality: int
    sha256: str
    content_type: Literal["image/jpeg"] = "image/jpeg"

    def __post_init__(self) -> None:
        if not isinstance(self.crop_id, UUID):
            _fail("CropRef", "crop_id", f"expected a UUID, got {type(self.crop_id).__name__}")
        if self.delivery == "inline":
            if self.uri is not None:
                _fail("CropRef", "uri", "an inline crop has no uri")
        elif self.delivery == "claim_check":
            _check_str("CropRef", "uri", self.uri, MAX_URI_CHARS)
        else:
            _fail("CropRef", "delivery", f"{self.delivery!r} is not 'inline' or 'claim_check'")
        for name in ("width", "height", "size_bytes"):
            _check_int("CropRef", name, getattr(self, name), minimum=1)
        _check_int("CropRef", "jpeg_quality", self.jpeg_quality, minimum=1)
        if self.jpeg_quality > 100:
            _fail("CropRef", "jpeg_quality", f"{self.jpeg_quality} is above 100")
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            _fail("CropRef", "sha256", "expected 64 lower-case hex digits")
        if self.content_type != "image/jpeg":
            _fail("CropRef", "content_type", f"{self.content_type!r} is not 'image/jpeg'")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The envelope every kind shares. Not published itself: use one of the kinds.

    Attributes:
        stream_id: the camera/stream; also the record key, so a stream's events keep order.
        producer: the process that made the event (``host:pid`` by default, or a configured
            name); with several processes, it says which one saw what.
        wall_time: when the event was made, UTC (the frame's wall time for per-face kinds).
        event_id: unique per event; a redelivered event keeps it, so consumers de-duplicate.
        schema_version: ``MAJOR.MINOR`` of the schema the event follows.
    """

    kind: ClassVar[str] = ""

    stream_id: str
    producer: str
    wall_time: datetime = field(default_factory=utc_now)
    event_id: UUID = field(default_factory=uuid4)
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not type(self).kind:
            raise TypeError("Event is the shared envelope; build one of its kinds instead")
        _check_str(owner, "stream_id", self.stream_id, MAX_ID_CHARS)
        _check_str(owner, "producer", self.producer, MAX_ID_CHARS)
        _check_time(owner, "wall_time", self.wall_time)
        object.__setattr__(self, "wall_time", _as_utc(self.wall_time))
        if not isinstance(self.event_id, UUID):
            _fail(owner, "event_id", f"expected a UUID, got {type(self.event_id).__name__}")
        if not isinstance(self.schema_version, str) or not re.match(
            r"^[0-9]+\.[0-9]+$", self.schema_version
        ):
            _fail(owner, "schema_version", f"{self.schema_version!r} is not MAJOR.MINOR")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceEvent(Event):
    """Fields of the per-face kinds: which face, in which frame, how good.

    Attributes:
        track_id: the confirmed track's id (``monitor.faces.tracking``), unique per stream
            and producer run.
        frame_index: the stream's picture index.
        pts: the frame's presentation time in seconds, ``None`` without timestamps.
        bbox: the face box ``(x1, y1, x2, y2)`` in frame pixels.
        detection_score: the detector's confidence, 0-1.
        quality: the DSL-FIQA score and the model, crop mode and backend behind it.
    """

    track_id: int
    frame_index: int
    pts: float | None
    bbox: BBox
    detection_score: float
    quality: QualityScore

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        owner = type(self).__name__
        _check_int(owner, "track_id", self.track_id)
        _check_int(owner, "frame_index", self.frame_index)
        _check_float(owner, "pts", self.pts, optional=True)
        _check_bbox(owner, self.bbox)
        _check_float(owner, "detection_score", self.detection_score, lo=0.0, hi=1.0)
        if not isinstance(self.quality, QualityScore):
            _fail(owner, "quality", f"expected QualityScore, got {type(self.quality).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaceObservationEvent(FaceEvent):
    """One scored face (topic ``faces``). ``signals``: the cheap signals, when computed."""

    kind: ClassVar[str] = "face_observation"

    signals: FaceSignals | None = None

    def __post_init__(self) -> None:
        FaceEvent.__post_init__(self)
        if self.signals is not None and not isinstance(self.signals, FaceSignals):
            _fail(type(self).__name__, "signals", "expected FaceSignals or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class BestFrameEvent(FaceEvent):
    """A track's best frame changed (topic ``best``); the face fields describe the new best.

    Attributes:
        previous_score: the score of the best frame it replaces; ``None`` for the first.
        crop: the new best crop (inline on the crops topic, or claim-checked).
    """

    kind: ClassVar[str] = "best_frame"

    previous_score: float | None
    crop: CropRef

    def __post_init__(self) -> None:
        FaceEvent.__post_init__(self)
        _check_float("BestFrameEvent", "previous_score", self.previous_score, optional=True)
        if not isinstance(self.crop, CropRef):
            _fail("BestFrameEvent", "crop", f"expected CropRef, got {type(self.crop).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BestFrame:
    """A track's best frame, as its summary reports it (``crop``: ``None`` if none was sent)."""

    frame_index: int
    pts: float | None
    bbox: BBox
    detection_score: float
    quality: QualityScore
    crop: CropRef | None

    def __post_init__(self) -> None:
        _check_int("BestFrame", "frame_index", self.frame_index)
        _check_float("BestFrame", "pts", self.pts, optional=True)
        _check_bbox("BestFrame", self.bbox)
        _check_float("BestFrame", "detection_score", self.detection_score, lo=0.0, hi=1.0)
        if not isinstance(self.quality, QualityScore):
            _fail("BestFrame", "quality", "expected QualityScore")
        if self.crop is not None and not isinstance(self.crop, CropRef):
            _fail("BestFrame", "crop", "expected CropRef or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class CurvePoint:
    """One scored observation of a track: its frame, pts and score."""

    frame_index: int
    pts: float | None
    score: float

    def __post_init__(self) -> None:
        _check_int("CurvePoint", "frame_index", self.frame_index)
        _check_float("CurvePoint", "pts", self.pts, optional=True)
        _check_float("CurvePoint", "score", self.score)


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityCurve:
    """A track's quality over time, compact: statistics over all scores, and at most
    ``MAX_CURVE_POINTS`` points (all of them when there are few; else evenly spaced ones plus
    the best).

    Attributes:
        count: scores summarised (all of them, not only ``points``).
        min, median, mean, max: over all ``count`` scores.
        points: in frame order.
    """

    count: int
    min: float
    median: float
    mean: float
    max: float
    points: tuple[CurvePoint, ...]

    def __post_init__(self) -> None:
        _check_int("QualityCurve", "count", self.count, minimum=1)
        for name in ("min", "median", "mean", "max"):
            _check_float("QualityCurve", name, getattr(self, name))
        if not self.min <= self.median <= self.max or not self.min <= self.mean <= self.max:
            _fail("QualityCurve", "median", "min <= median, mean <= max does not hold")
        if not isinstance(self.points, tuple) or not all(
            isinstance(p, CurvePoint) for p in self.points
        ):
            _fail("QualityCurve", "points", "expected a tuple of CurvePoint")
        if not 1 <= len(self.points) <= min(self.count, MAX_CURVE_POINTS):
            _fail(
                "QualityCurve",
                "points",
                f"{len(self.points)} points; expected 1 to min(count, {MAX_CURVE_POINTS})",
            )
        frames = [p.frame_index for p in self.points]
        if frames != sorted(frames):
            _fail("QualityCurve", "points", "not in frame order")

    @classmethod
    def from_points(
        cls, points: Iterable[CurvePoint], max_points: int = MAX_CURVE_POINTS
    ) -> QualityCurve:
        """Summarise a track's observations (any order; sorted by frame here).

        Keeps every point when there are at most ``max_points``; otherwise ``max_points``
        evenly spaced ones that always include the first, the last and the best.
        """
        if not 2 <= max_points <= MAX_CURVE_POINTS:
            raise ValueError(f"max_points={max_points}; expected 2 to {MAX_CURVE_POINTS}")
        ordered = sorted(points, key=lambda p: p.frame_index)
        if not ordered:
            raise ValueError("a quality curve needs at least one point")
        scores = [p.score for p in ordered]
        kept = ordered
        if len(ordered) > max_points:
            best = max(range(len(ordered)), key=scores.__getitem__)
            step = (len(ordered) - 1) / (max_points - 2)
            # max_points - 1 distinct picks (step > 1) from first to last, plus the best.
            chosen = {round(i * step) for i in range(max_points - 1)} | {best}
            kept = [ordered[i] for i in sorted(chosen)]
        return cls(
            count=len(ordered),
            min=min(scores),
            median=float(statistics.median(scores)),
            mean=float(statistics.fmean(scores)),
            max=max(scores),
            points=tuple(kept),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackSummaryEvent(Event):
    """A track ended (topic ``tracks``): its whole life in one message.

    Attributes:
        track_id: the track.
        first_frame, last_frame: frame indices of its first and last detection.
        start_pts, end_pts: their pts (``None`` without timestamps).
        start_wall_time, end_wall_time: their wall times, UTC.
        frames_seen: frames the track was detected in.
        observations_scored: of those, how many were scored by DSL-FIQA.
        best: its best frame; ``None`` when nothing was scored.
        curve: its quality curve; ``None`` when nothing was scored.
    """

    kind: ClassVar[str] = "track_summary"

    track_id: int
    first_frame: int
    last_frame: int
    start_pts: float | None
    end_pts: float | None
    start_wall_time: datetime
    end_wall_time: datetime
    frames_seen: int
    observations_scored: int
    best: BestFrame | None
    curve: QualityCurve | None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        own = "TrackSummaryEvent"
        for name in ("track_id", "first_frame", "last_frame", "observations_scored"):
            _check_int(own, name, getattr(self, name))
        _check_int(own, "frames_seen", self.frames_seen, minimum=1)
        if self.last_frame < self.first_frame:
            _fail(own, "last_frame", f"{self.last_frame} is before first_frame")
        for name in ("start_pts", "end_pts"):
            _check_float(own, name, getattr(self, name), optional=True)
        for name in ("start_wall_time", "end_wall_time"):
            _check_time(own, name, getattr(self, name))
            object.__setattr__(self, name, _as_utc(getattr(self, name)))
        if self.end_wall_time < self.start_wall_time:
            _fail(own, "end_wall_time", "is before start_wall_time")
        if self.observations_scored > self.frames_seen:
            _fail(own, "observations_scored", "exceeds frames_seen (one score per frame)")
        scored = self.observations_scored > 0
        if (self.best is not None) != scored or (self.curve is not None) != scored:
            _fail(own, "best", "best and curve are set exactly when observations_scored > 0")
        if self.best is not None and not isinstance(self.best, BestFrame):
            _fail(own, "best", "expected BestFrame or None")
        if self.curve is not None:
            if not isinstance(self.curve, QualityCurve):
                _fail(own, "curve", "expected QualityCurve or None")
            elif self.curve.count != self.observations_scored:
                _fail(own, "curve", "count differs from observations_scored")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatusEvent(Event):
    """A stream's state changed, or a periodic report (topic ``status``).

    Counters run from the stream's start (across reconnects), so a consumer that missed
    events still reads correct totals.

    Attributes:
        state: ``connecting``, ``up``, ``stalled``, ``reconnecting`` or ``down``.
        reason: why, in words (URLs masked); may be empty.
        fps: frames decoded per second recently; ``None`` when unknown (not up).
        frames_decoded, frames_dropped, corrupt_packets: totals since the stream started.
    """

    kind: ClassVar[str] = "stream_status"

    state: StreamState
    reason: str = ""
    fps: float | None = None
    frames_decoded: int = 0
    frames_dropped: int = 0
    corrupt_packets: int = 0

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        own = "StreamStatusEvent"
        if self.state not in STREAM_STATES:
            _fail(own, "state", f"{self.state!r} is not one of {', '.join(STREAM_STATES)}")
        _check_str(own, "reason", self.reason, MAX_TEXT_CHARS, empty=True)
        _check_float(own, "fps", self.fps, lo=0.0, optional=True)
        for name in ("frames_decoded", "frames_dropped", "corrupt_packets"):
            _check_int(own, name, getattr(self, name))


#: The kinds, by their ``kind`` string.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (FaceObservationEvent, BestFrameEvent, TrackSummaryEvent, StreamStatusEvent)
}
