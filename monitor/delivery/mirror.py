"""Mirroring consumed events into a run folder, and the "every stream is down" stop rule.

:class:`Mirror` writes what an :class:`~monitor.delivery.consumer.EventConsumer` reads
(from Kafka, or another folder) through a :class:`~monitor.delivery.jsonl_sink.JsonlSink`,
so the folder has exactly the layout ``fqm run --out`` writes (``<stream>/<topic>.jsonl``,
``<stream>/crops/<crop_id>.jpg``) and ``fqm report`` reads it. Each new event's line is the
record's value as it was received, under its topic's name; redelivered events (same event
id) are written once, events already in the folder too (it is resumed). Crops travel on
their own topic and may arrive after their best-frame event: such an event waits in a
bounded list until its crop comes, and what never came is counted as missing.

:class:`AllDown` says when a run is over: every stream seen has ``down`` as its latest
``stream_status``, and no record arrived for an idle time (a stream's last track summaries
are on another topic than its status, so they may still be in flight when it says ``down``).

Example::

    with EventConsumer.from_kafka("broker:9092", topics, from_beginning=True) as consumer:
        with Mirror(consumer, Path("events"), topics) as mirror:
            rule = AllDown(idle_s=3.0)
            for message, event in consumer.records(until=lambda: rule.reached(consumer)):
                mirror.apply(message, event)
                rule.observe(event)
        print(mirror.summary())
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from uuid import UUID

from monitor.delivery.consumer import EventConsumer, JsonlSource
from monitor.delivery.jsonl_sink import CROPS_DIR, JsonlSink, JsonlSinkConfig, stream_dir_name
from monitor.delivery.record import Record
from monitor.events import (
    DEFAULT_TOPICS,
    BestFrameEvent,
    Event,
    EventError,
    StreamStatusEvent,
    Topics,
    parse,
    parse_crop,
)
from monitor.events.codec import (
    CROP_KIND,
    HEADER_CONTENT_TYPE,
    HEADER_CROP_ID,
    HEADER_KIND,
    HEADER_SCHEMA_VERSION,
    JPEG_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    Message,
    dumps,
)
from monitor.events.model import SCHEMA_VERSION

log = logging.getLogger(__name__)

#: Best-frame events remembered while their crop has not arrived (oldest given up first).
MAX_WAITING = 10_000
#: Seconds without a record before :class:`AllDown` ends a run whose streams are all down.
IDLE_S = 3.0


@dataclass(frozen=True)
class MirrorStats:
    """What a :class:`Mirror` wrote.

    Attributes:
        events: new events written, by kind.
        crops: crop files written.
        crops_waiting: best-frame events whose inline crop has not arrived (yet).
        crops_given_up: best-frame events dropped from the full waiting list (counted as
            missing even if their crop comes later: it is still written then).
        resumed: events found in the folder when the mirror started (not written again).
        not_written: records the sink could not write, by reason.
    """

    events: dict[str, int]
    crops: int
    crops_waiting: int
    crops_given_up: int
    resumed: int
    not_written: dict[str, int]

    @property
    def crops_missing(self) -> int:
        """Best-frame events without their crop in the folder."""
        return self.crops_waiting + self.crops_given_up


class Mirror:
    """Writes a consumer's new events and their crops to ``out``, laid out as ``fqm run``.

    Args:
        consumer: where the events come from; :meth:`apply` takes what its
            :meth:`~monitor.delivery.consumer.EventConsumer.records` yields. Events already
            in ``out`` are fed to its de-duplicator first (up to its capacity), so running
            the mirror again over the same records writes nothing twice.
        out: the folder (created); one writer per folder, as for ``fqm run --out``.
        topics: the consumer's topics (crop files are written for the crops topic).
        config: the sink's rotation and retention.
        max_waiting: best-frame events kept waiting for their crop.

    Raises:
        BlockingIOError: another sink writes to ``out``.
    """

    def __init__(
        self,
        consumer: EventConsumer,
        out: Path,
        topics: Topics = DEFAULT_TOPICS,
        config: JsonlSinkConfig | None = None,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.consumer = consumer
        self.out = Path(out)
        self.topics = topics
        self.max_waiting = max_waiting
        config = config or JsonlSinkConfig()
        self.sink = JsonlSink(self.out, replace(config, crops_topic=topics.crops))
        self._waiting: OrderedDict[UUID, str] = OrderedDict()  # crop id -> stream id
        self._events: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._counts["resumed"] = self._resume()

    def _resume(self) -> int:
        """Mark the events already in the folder as seen; how many there were."""
        source = JsonlSource(self.out, self.topics)
        seen = 0
        try:
            while not source.exhausted:
                for message in source.poll(0):
                    try:
                        event = parse(message)
                    except EventError:
                        continue
                    seen += 1
                    self.consumer.best.update(event)
        finally:
            source.close()
        return seen

    def apply(self, message: Message, event: Event | None) -> None:
        """Write what one record brings: a new event's line (and its crop, if at hand), or a
        crop file. Duplicates and unreadable records write nothing."""
        if event is not None:
            self._write_event(message, event)
            return
        try:
            crop = parse_crop(message)
        except EventError:  # a duplicate event, or not an fqm record (counted by the consumer)
            return
        self._waiting.pop(crop.crop_id, None)
        if not self._crop_path(crop.stream_id, crop.crop_id).exists():
            self._write_crop(crop.stream_id, crop.crop_id, crop.jpeg)

    def _write_event(self, message: Message, event: Event) -> None:
        plain = isinstance(message, tuple) and not hasattr(message, "_fields")  # 4-tuple
        value = bytes(message[2] if plain else message.value)  # type: ignore[union-attr]
        if b"\n" in value or b"\r" in value:  # valid JSON over several lines: one line here
            value = dumps(event)
        topic = self.topics.for_kind(event.kind)
        json_type = ((HEADER_CONTENT_TYPE, JSON_CONTENT_TYPE.encode()),)
        self.sink.publish(Record(topic, event.stream_id.encode(), value, json_type))
        self._events[event.kind] += 1
        if isinstance(event, BestFrameEvent) and event.crop.delivery == "inline":
            crop_id = event.crop.crop_id
            if self._crop_path(event.stream_id, crop_id).exists():
                return
            jpeg = self.consumer.crop_for(event)  # arrived first (Kafka), or a source file
            if jpeg is not None:
                self._write_crop(event.stream_id, crop_id, jpeg)
                return
            self._waiting[crop_id] = event.stream_id
            self._waiting.move_to_end(crop_id)
            while len(self._waiting) > self.max_waiting:
                given_up, stream = self._waiting.popitem(last=False)
                self._counts["given_up"] += 1
                log.warning("%s: crop %s did not arrive; no longer waiting", stream, given_up)

    def _crop_path(self, stream_id: str, crop_id: UUID) -> Path:
        return self.out / stream_dir_name(stream_id) / CROPS_DIR / f"{crop_id}.jpg"

    def _write_crop(self, stream_id: str, crop_id: UUID, jpeg: bytes) -> None:
        before = self.sink.stats().crops
        self.sink.publish(
            Record(
                self.topics.crops,
                stream_id.encode(),
                jpeg,
                (
                    (HEADER_CONTENT_TYPE, JPEG_CONTENT_TYPE.encode()),
                    (HEADER_SCHEMA_VERSION, SCHEMA_VERSION.encode()),
                    (HEADER_KIND, CROP_KIND.encode()),
                    (HEADER_CROP_ID, str(crop_id).encode()),
                ),
            )
        )
        self._counts["crops"] += self.sink.stats().crops - before

    def stats(self) -> MirrorStats:
        failed = dict(self.sink.stats().failed)
        return MirrorStats(
            events=dict(self._events),
            crops=self._counts["crops"],
            crops_waiting=len(self._waiting),
            crops_given_up=self._counts["given_up"],
            resumed=self._counts["resumed"],
            not_written=failed,
        )

    def summary(self) -> str:
        """One line: what was written, and what is missing."""
        s, c = self.stats(), self.consumer.stats()
        kinds = ", ".join(f"{_SHORT.get(k, k)} {n}" for k, n in sorted(s.events.items()))
        line = (
            f"mirrored {sum(s.events.values())} events ({kinds or 'none'}) and {s.crops} crops "
            f"to {self.out}; {c.duplicates} duplicates dropped, {s.crops_missing} crops missing, "
            f"{sum(c.invalid.values())} unreadable records"
        )
        if s.resumed:
            line += f", {s.resumed} events were already there"
        if s.not_written:
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(s.not_written.items()))
            line += f"; NOT WRITTEN: {reasons}"
        return line

    def close(self) -> None:
        self.sink.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SHORT = {
    "face_observation": "faces",
    "best_frame": "best",
    "track_summary": "tracks",
    "stream_status": "status",
}


class AllDown:
    """The end of a run, seen from its events: every stream has reported ``down``.

    :meth:`reached` is true once at least one stream was seen, every stream seen (any
    event) and every one in ``streams`` has ``down`` as its latest status (by wall time),
    and no record arrived for ``idle_s`` seconds. A stream that comes back (a later
    ``connecting`` or ``up``) is not down any more.

    Args:
        idle_s: seconds without any record (events, crops, duplicates) before stopping.
        streams: streams to wait for even before any of their events arrived.
    """

    def __init__(self, idle_s: float = IDLE_S, streams: Iterable[str] = ()) -> None:
        self.idle_s = idle_s
        self._latest: dict[str, tuple[datetime, str] | None] = dict.fromkeys(streams)

    def observe(self, event: Event | None) -> None:
        """Note one new event (None is ignored)."""
        if event is None:
            return
        latest = self._latest.get(event.stream_id)
        if isinstance(event, StreamStatusEvent):
            if latest is None or event.wall_time >= latest[0]:
                self._latest[event.stream_id] = (event.wall_time, event.state)
        elif event.stream_id not in self._latest:
            self._latest[event.stream_id] = None

    @property
    def streams(self) -> dict[str, str | None]:
        """Each stream's latest state (None: no status yet)."""
        return {s: None if v is None else v[1] for s, v in self._latest.items()}

    def all_down(self) -> bool:
        states = self.streams.values()
        return bool(states) and all(state == "down" for state in states)

    def reached(self, consumer: EventConsumer, now: float | None = None) -> bool:
        """True when every stream is down and ``consumer`` read nothing for ``idle_s``."""
        if not self.all_down() or consumer.last_record_at is None:
            return False
        now = time.monotonic() if now is None else now
        return now - consumer.last_record_at >= self.idle_s
