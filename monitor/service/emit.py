"""``EventEmitter``: one stream's tracks, faces and source status as ``monitor.events`` events.

* ``ScoreRecorded`` -> ``FaceObservationEvent`` (one per scored face);
* ``BestFrameChanged`` with ``top_changed`` -> ``BestFrameEvent`` with the new best's aligned
  face as JPEG (inline crop record by default); lower ranks of the best K are not published;
* ``TrackEnded`` -> ``TrackSummaryEvent`` (its ``best.crop`` is the last best frame's crop);
* ``pipelines.events`` status events and the file's start and end -> ``StreamStatusEvent``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from monitor.delivery.record import Record
from monitor.events import (
    DEFAULT_TOPICS,
    BestFrame,
    BestFrameEvent,
    CropPolicy,
    CurvePoint,
    Event,
    FaceObservationEvent,
    FaceSignals,
    QualityCurve,
    QualityScore,
    StreamStatusEvent,
    Topics,
    TrackSummaryEvent,
    attach_crop,
    encode_crop,
    to_records,
    utc_from_unix,
)
from monitor.service.observe import NULL_OBSERVER, ServiceObserver
from monitor.tracks import BestFrameChanged, ScoredFace, ScoreRecorded, TrackEnded, TrackUpdate
from pipelines.events import Connecting, Down, Reconnecting, Stalled, StatusEvent, Up

Publish = Callable[[Sequence[Record], int], None]

_STATES: dict[type, str] = {
    Connecting: "connecting",
    Up: "up",
    Stalled: "stalled",
    Reconnecting: "reconnecting",
    Down: "down",
}


@dataclass(frozen=True)
class ModelLabel:
    """What every event's ``quality`` says produced the score.

    ``variant`` ends in ``-random`` when the engine runs seeded random weights (no shipped
    model yet): the schema has no weights field, so the variant name carries the warning.
    """

    variant: str
    mode: str
    backend: str
    random_weights: bool = False
    weights: str = ""

    def quality(self, score: float) -> QualityScore:
        return QualityScore(score=score, variant=self.variant, mode=self.mode, backend=self.backend)


def _bbox(face: ScoredFace) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = face.xyxy or (0.0, 0.0, 0.0, 0.0)
    return (float(x1), float(y1), float(max(x2, x1)), float(max(y2, y1)))


class EventEmitter:
    """Builds and publishes one stream's events (single-threaded: the stream's worker)."""

    def __init__(
        self,
        stream_id: str,
        producer: str,
        label: ModelLabel,
        publish: Publish,
        topics: Topics = DEFAULT_TOPICS,
        crop_policy: CropPolicy | None = None,
        observer: ServiceObserver = NULL_OBSERVER,
    ) -> None:
        self.stream_id = stream_id
        self.observer = observer
        self.producer = producer
        self.label = label
        self.topics = topics
        self.crop_policy = crop_policy or CropPolicy()
        self._publish = publish
        self._best: dict[int, BestFrame] = {}
        self._walls: dict[int, tuple[float, float]] = {}
        self.counts = {"face_observation": 0, "best_frame": 0, "track_summary": 0}
        self.best_score: float | None = None

    # -- bookkeeping ---------------------------------------------------------------------

    def seen(self, track_ids: Iterable[int], wall_time: float) -> None:
        """Remember the wall time of the tracks present on a frame (for track summaries)."""
        for t in track_ids:
            first = self._walls.get(t, (wall_time, wall_time))[0]
            self._walls[t] = (first, wall_time)

    def _send(self, event: Event, crop=None) -> None:
        self._publish(to_records(event, self.topics, crop=crop), 1)
        self.observer.event(event)
        if event.kind in self.counts:
            self.counts[event.kind] += 1

    def _common(self, face: ScoredFace, wall_time: float) -> dict:
        return {
            "stream_id": self.stream_id,
            "producer": self.producer,
            "wall_time": utc_from_unix(wall_time),
            "track_id": face.track_id,
            "frame_index": face.frame,
            "pts": face.pts,
            "bbox": _bbox(face),
            "detection_score": min(1.0, max(0.0, float(face.detection_score))),
            "quality": self.label.quality(face.score),
        }

    # -- updates -------------------------------------------------------------------------

    def updates(self, updates: Iterable[TrackUpdate], wall_time: float) -> None:
        """Publish the events of the book's updates, in order."""
        for u in updates:
            if isinstance(u, ScoreRecorded):
                self._observation(u.face, wall_time)
            elif isinstance(u, BestFrameChanged) and u.top_changed:
                self._best_frame(u.face, wall_time)
            elif isinstance(u, TrackEnded):
                self._summary(u)

    def _observation(self, face: ScoredFace, wall_time: float) -> None:
        signals = FaceSignals.from_quality_signals(face.signals) if face.signals else None
        self._send(FaceObservationEvent(**self._common(face, wall_time), signals=signals))
        if self.best_score is None or face.score > self.best_score:
            self.best_score = face.score

    def _best_frame(self, face: ScoredFace, wall_time: float) -> None:
        if face.face is None:
            return  # the book kept no aligned face (keep_faces=False): nothing to show
        crop = encode_crop(face.face.image, self.crop_policy)
        ref = attach_crop(crop)
        previous = self._best.get(face.track_id)
        common = self._common(face, wall_time)
        event = BestFrameEvent(
            **common,
            previous_score=None if previous is None else previous.quality.score,
            crop=ref,
        )
        self._send(event, crop=crop)
        self._best[face.track_id] = BestFrame(
            frame_index=face.frame,
            pts=face.pts,
            bbox=common["bbox"],
            detection_score=common["detection_score"],
            quality=common["quality"],
            crop=ref,
        )

    def _summary(self, ended: TrackEnded) -> None:
        s = ended.summary
        track = ended.track_id
        best = self._best.pop(track, None)
        now = time.time()
        start_wall, end_wall = self._walls.pop(track, (now, now))
        scored = s.observations
        curve = None
        if scored:
            c = s.curve
            points = tuple(
                CurvePoint(frame_index=p.last_frame, pts=p.last_pts, score=p.mean) for p in c.points
            )
            lo, hi = min(c.low, c.mean, c.median), max(c.high, c.mean, c.median)
            curve = QualityCurve(
                count=c.count, min=lo, median=c.median, mean=c.mean, max=hi, points=points
            )
            if best is None and s.best:  # a best frame whose crop was never published
                top = s.best[0]
                best = BestFrame(
                    frame_index=top.frame,
                    pts=top.pts,
                    bbox=_bbox(top),
                    detection_score=min(1.0, max(0.0, float(top.detection_score))),
                    quality=self.label.quality(top.score),
                    crop=None,
                )
        if scored and best is None:
            scored, curve = 0, None
        first = s.first_frame if s.first_frame is not None else ended.frame
        last = max(first, s.last_frame if s.last_frame is not None else ended.frame)
        frames_seen = max(1, s.frames_seen or 0, scored)
        self._send(
            TrackSummaryEvent(
                stream_id=self.stream_id,
                producer=self.producer,
                track_id=track,
                first_frame=first,
                last_frame=last,
                start_pts=s.first_pts,
                end_pts=s.last_pts,
                start_wall_time=utc_from_unix(start_wall),
                end_wall_time=utc_from_unix(max(start_wall, end_wall)),
                frames_seen=frames_seen,
                observations_scored=scored,
                best=best if scored else None,
                curve=curve,
            )
        )

    # -- status --------------------------------------------------------------------------

    def status(
        self,
        state: str,
        reason: str = "",
        *,
        fps: float | None = None,
        frames: int = 0,
        dropped: int = 0,
        corrupt: int = 0,
    ) -> None:
        self._send(
            StreamStatusEvent(
                stream_id=self.stream_id,
                producer=self.producer,
                state=state,  # type: ignore[arg-type]
                reason=reason[:1024],
                fps=fps,
                frames_decoded=frames,
                frames_dropped=dropped,
                corrupt_packets=corrupt,
            )
        )

    def source_status(self, event: StatusEvent, **counts) -> str | None:
        """A supervised source's status event (its text is masked already); returns the
        state published (``None``: an event that is not a state change)."""
        state = _STATES.get(type(event))
        if state is not None:
            self.status(state, event.reason, **counts)
        return state
