"""Consumer-side helpers, independent of Kafka: drop redelivered events, keep the best faces.

Delivery is at-least-once: a producer retry or a spool replay can deliver an event twice
(with the same ``event_id``). :class:`Deduplicator` remembers the most recent ids in an LRU
of fixed size; :class:`BestFaces` uses one and keeps, per stream, each track's current best
face and the stream's last status. Feed them parsed events from any reader (Kafka, JSONL).

Example:
    >>> view = BestFaces()
    >>> for event in events:  # doctest: +SKIP
    ...     view.update(event)
    >>> view.best("cam-1")  # doctest: +SKIP
    {('host-a:1234', 3): BestFace(stream_id='cam-1', track_id=3, score=0.82, ...)}
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from monitor.events.model import (
    BestFrameEvent,
    CropRef,
    Event,
    StreamStatusEvent,
    TrackSummaryEvent,
)

#: Event ids a :class:`Deduplicator` remembers by default: at ~130 bytes each, about 9 MB.
#: Redeliveries come from a producer's retries and its spool's replay, so this should exceed
#: the events one consumer receives over the longest outage the spool covers that it cares
#: to de-duplicate; ids older than that pass again (make writes idempotent by event id where
#: a late duplicate would matter).
DEDUP_CAPACITY = 65_536
#: Tracks a :class:`BestFaces` keeps per stream by default (ended ones are evicted first).
MAX_TRACKS_PER_STREAM = 1024


class Deduplicator:
    """An LRU set of the last ``capacity`` event ids: memory never grows past it.

    Example:
        >>> d = Deduplicator(capacity=2)
        >>> d.seen(a), d.seen(a)  # doctest: +SKIP
        (False, True)
    """

    def __init__(self, capacity: int = DEDUP_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"Deduplicator capacity={capacity}; use 1 or more")
        self.capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()
        self.duplicates = 0

    def seen(self, event_id: UUID) -> bool:
        """True if ``event_id`` was seen recently (a duplicate); otherwise remembers it."""
        key = event_id.int  # a 128-bit int: smaller than the UUID object
        if key in self._ids:
            self._ids.move_to_end(key)
            self.duplicates += 1
            return True
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __contains__(self, event_id: UUID) -> bool:
        return event_id.int in self._ids

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class BestFace:
    """A track's current best face, as the consumer knows it.

    ``crop`` names the JPEG (inline: its ``crop_id`` on the crops topic; claim-check: its
    ``uri``). ``ended``: the track's summary arrived, so this is its final best.
    """

    stream_id: str
    producer: str
    track_id: int
    score: float
    frame_index: int
    pts: float | None
    crop: CropRef | None
    wall_time: datetime
    ended: bool = False


TrackKey = tuple[str, int]


class BestFaces:
    """Per stream: each track's current best face, and the stream's last status.

    Tracks are keyed by ``(producer, track_id)``: track ids are unique per producer run, and
    two producers may both have a track 3. Best-frame events move a track's best forward
    (a stale one, with an older frame, is ignored); its summary makes it final. At most
    ``max_tracks_per_stream`` tracks are kept per stream: past that the oldest ended track is
    dropped (the least recently updated one if none ended).
    """

    def __init__(
        self,
        max_tracks_per_stream: int = MAX_TRACKS_PER_STREAM,
        dedup: Deduplicator | None = None,
    ) -> None:
        if max_tracks_per_stream < 1:
            raise ValueError(f"max_tracks_per_stream={max_tracks_per_stream}; use 1 or more")
        self.max_tracks_per_stream = max_tracks_per_stream
        self.dedup = dedup if dedup is not None else Deduplicator()
        self._tracks: dict[str, OrderedDict[TrackKey, BestFace]] = {}
        self._status: dict[str, StreamStatusEvent] = {}

    def update(self, event: Event) -> bool:
        """Apply one event; False if it was a duplicate (and changed nothing)."""
        if self.dedup.seen(event.event_id):
            return False
        if isinstance(event, StreamStatusEvent):
            self._status[event.stream_id] = event
        elif isinstance(event, BestFrameEvent):
            self._best_frame(event)
        elif isinstance(event, TrackSummaryEvent):
            self._summary(event)
        return True

    def _best_frame(self, e: BestFrameEvent) -> None:
        tracks = self._tracks.setdefault(e.stream_id, OrderedDict())
        key = (e.producer, e.track_id)
        old = tracks.get(key)
        if old is not None and (old.ended or old.frame_index > e.frame_index):
            return
        tracks[key] = BestFace(
            e.stream_id, e.producer, e.track_id, e.quality.score, e.frame_index, e.pts,
            e.crop, e.wall_time,
        )  # fmt: skip
        tracks.move_to_end(key)
        self._bound(tracks)

    def _summary(self, e: TrackSummaryEvent) -> None:
        tracks = self._tracks.setdefault(e.stream_id, OrderedDict())
        key = (e.producer, e.track_id)
        if e.best is None:  # nothing was scored: no best face to keep
            tracks.pop(key, None)
            return
        b = e.best
        tracks[key] = BestFace(
            e.stream_id, e.producer, e.track_id, b.quality.score, b.frame_index, b.pts, b.crop,
            e.end_wall_time, ended=True,
        )  # fmt: skip
        tracks.move_to_end(key)
        self._bound(tracks)

    def _bound(self, tracks: OrderedDict[TrackKey, BestFace]) -> None:
        while len(tracks) > self.max_tracks_per_stream:
            victim = next((k for k, face in tracks.items() if face.ended), next(iter(tracks)))
            del tracks[victim]

    @property
    def streams(self) -> tuple[str, ...]:
        """Streams with tracks or a status."""
        return tuple(dict.fromkeys([*self._tracks, *self._status]))

    def best(self, stream_id: str) -> dict[TrackKey, BestFace]:
        """``{(producer, track_id): BestFace}`` for a stream (a copy), oldest update first."""
        return dict(self._tracks.get(stream_id, {}))

    def top(self, stream_id: str, n: int = 10) -> list[BestFace]:
        """The stream's ``n`` best faces, best first."""
        return sorted(self._tracks.get(stream_id, {}).values(), key=lambda f: -f.score)[:n]

    def status(self, stream_id: str) -> StreamStatusEvent | None:
        """The stream's last status event, if any arrived."""
        return self._status.get(stream_id)
