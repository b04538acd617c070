"""``TrackQualityBook``: the quality state of every track of ONE stream, and its updates.

The book follows the tracker's lifecycle events (``monitor.faces.TrackEvent``): a track's
state is created when the track is confirmed (or at its first scored face, for a book that
joins a stream late), marked lost and recovered, and deleted when the track ends, right
after its ``TrackEnded`` update (with the summary) is made. What it hands out are typed,
immutable updates, in the order they happened, for the events layer to publish:

* ``ScoreRecorded``: a scored face of a track, with the track's smoothed score after it;
* ``BestFrameChanged``: a scored face entered the track's best K (``top_changed`` when it is
  the track's new best frame);
* ``TrackEnded``: the track ended; its ``TrackQualitySummary``.

Example:
    >>> book = TrackQualityBook("cam-1")
    >>> updates = book.step(events=stage_result.events, faces=scored)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.faces.tracking import TrackEvent, TrackEventKind
from monitor.tracks.observation import ScoredFace
from monitor.tracks.quality import TrackQuality, TrackQualityConfig, TrackQualitySummary


@dataclass(frozen=True, slots=True, eq=False)
class ScoreRecorded:
    """One scored face of a track; ``smoothed`` is the track's EMA after it."""

    stream_id: str
    face: ScoredFace
    smoothed: float

    @property
    def track_id(self) -> int:
        return self.face.track_id


@dataclass(frozen=True, slots=True, eq=False)
class BestFrameChanged:
    """``face`` entered the track's best K at ``rank`` (0: the track's best frame).

    Attributes:
        replaced: the frame pushed out of the best K, ``None`` when a slot was free.
        top_changed: whether the track's best frame changed (``rank == 0``).
        best: the best K after the change, best first.
    """

    stream_id: str
    face: ScoredFace
    rank: int
    replaced: ScoredFace | None
    top_changed: bool
    best: tuple[ScoredFace, ...]

    @property
    def track_id(self) -> int:
        return self.face.track_id


@dataclass(frozen=True, slots=True, eq=False)
class TrackEnded:
    """A track ended (``frame``/``pts``: when the tracker ended it); its quality summary."""

    stream_id: str
    track_id: int
    frame: int
    pts: float | None
    summary: TrackQualitySummary


TrackUpdate = ScoreRecorded | BestFrameChanged | TrackEnded


class TrackQualityBook:
    """Per-track quality of one stream, keyed by track id, deleted with the track.

    Args:
        stream_id: the stream (camera) id the updates carry.
        config: settings of every track's ``TrackQuality``.
    """

    def __init__(self, stream_id: str, config: TrackQualityConfig | None = None) -> None:
        self.stream_id = stream_id
        self.config = config or TrackQualityConfig()
        self._tracks: dict[int, TrackQuality] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._tracks

    @property
    def track_ids(self) -> tuple[int, ...]:
        return tuple(self._tracks)

    def summary(self, track_id: int) -> TrackQualitySummary:
        """A live track's summary so far (``KeyError`` if the book does not hold it)."""
        return self._tracks[track_id].summary()

    def best(self, track_id: int) -> tuple[ScoredFace, ...]:
        """A live track's best K so far (empty if unknown or not scored yet)."""
        t = self._tracks.get(track_id)
        return t.best if t is not None else ()

    def reset(self) -> None:
        """Forgets every track without summaries (the tracker was reset as well)."""
        self._tracks.clear()

    def _track(self, track_id: int) -> TrackQuality:
        t = self._tracks.get(track_id)
        if t is None:
            t = self._tracks[track_id] = TrackQuality(track_id, self.config)
        return t

    def observe(self, face: ScoredFace) -> tuple[TrackUpdate, ...]:
        """Records one scored face of a live track."""
        smoothed, change = self._track(face.track_id).add(face)
        out: list[TrackUpdate] = [ScoreRecorded(self.stream_id, face, smoothed)]
        if change is not None:
            out.append(
                BestFrameChanged(
                    self.stream_id,
                    change.entered,
                    change.rank,
                    change.replaced,
                    change.top_changed,
                    change.best,
                )
            )
        return tuple(out)

    def on_event(self, event: TrackEvent) -> tuple[TrackUpdate, ...]:
        """Follows one lifecycle event; ``ENDED`` returns the track's ``TrackEnded``."""
        kind = event.kind
        if kind is TrackEventKind.CONFIRMED:
            self._track(event.track_id)
        elif kind in (TrackEventKind.LOST, TrackEventKind.RECOVERED):
            self._track(event.track_id).lost = kind is TrackEventKind.LOST
        elif kind is TrackEventKind.ENDED:
            t = self._tracks.pop(event.track_id, None) or TrackQuality(event.track_id, self.config)
            return (
                TrackEnded(
                    self.stream_id, event.track_id, event.frame, event.pts, t.summary(event.summary)
                ),
            )
        return ()

    def step(
        self, events: Iterable[TrackEvent] = (), faces: Iterable[ScoredFace] = ()
    ) -> tuple[TrackUpdate, ...]:
        """One frame: its lifecycle events and the faces scored on it (``FacesFrame.events``).

        Order: confirmations, losses and recoveries first (a track confirmed on this frame
        can be scored on it), then the scored faces, then the ends (a track that ends has no
        face on the frame that ends it).
        """
        events = tuple(events)
        out: list[TrackUpdate] = []
        for e in events:
            if e.kind is not TrackEventKind.ENDED:
                out += self.on_event(e)
        for face in faces:
            out += self.observe(face)
        for e in events:
            if e.kind is TrackEventKind.ENDED:
                out += self.on_event(e)
        return tuple(out)
