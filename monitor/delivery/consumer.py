"""Reading fqm's events back: from Kafka or from a JSONL sink's folder, as typed events.

:class:`EventConsumer` reads records from a source (:class:`KafkaSource` or
:class:`JsonlSource`), parses them with :func:`monitor.events.parse`, drops redelivered
ones by event id, keeps each stream's current best faces (:class:`~monitor.events.BestFaces`)
and the inline crops it has seen, and yields the new events. Memory is bounded: the
de-duplicator, the best faces and the crop cache have fixed capacities, and each source
reads in bounded batches.

Example::

    with EventConsumer.from_kafka("broker:9092", from_beginning=True) as consumer:
        for event in consumer.events(max_events=100, timeout_s=30):
            print(event.kind, event.stream_id)
        print(consumer.best.top("lobby-cam-1"))
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO, Protocol
from uuid import UUID

from kafka import KafkaConsumer, TopicPartition
from kafka import errors as kafka_errors

from monitor.delivery.jsonl_sink import CROPS_DIR, SUFFIX, rotated_path, stream_dir_name
from monitor.events import (
    DEFAULT_TOPICS,
    BestFaces,
    BestFrameEvent,
    Deduplicator,
    Event,
    EventError,
    InlineCrop,
    Topics,
    TrackSummaryEvent,
    parse,
    parse_crop,
)
from monitor.events.codec import HEADER_CONTENT_TYPE, JPEG_CONTENT_TYPE, Message
from monitor.events.consumer import DEDUP_CAPACITY, MAX_TRACKS_PER_STREAM
from monitor.kafka_bootstrap import Bootstrap, check_reachable, parse_bootstrap

log = logging.getLogger(__name__)

#: Inline crop bytes the consumer keeps by default (least recently received dropped first).
CROP_CACHE_BYTES = 64 * 1024 * 1024
#: The longest line a JSONL reader accepts; a longer one is skipped as corrupt.
MAX_LINE_BYTES = 4 * 1024 * 1024
#: Bytes a JSONL reader reads from one file per poll.
READ_CHUNK = 1024 * 1024
#: How often a source looks for new topics, partitions, streams or files (seconds).
RESCAN_S = 2.0


class ConsumeError(RuntimeError):
    """A source that cannot be read: an unreachable broker, a missing folder. The message
    says how to fix it and never holds a password."""


class Source(Protocol):
    """Where records come from: ``poll`` returns what is there within ``timeout_s``."""

    def poll(self, timeout_s: float) -> list[Message]: ...

    @property
    def exhausted(self) -> bool:
        """True when no record will ever come again (a folder read without following)."""
        ...

    def close(self) -> None: ...


# ---- Kafka -------------------------------------------------------------------------------


class KafkaSource:
    """Records of fqm's topics from Kafka (kafka-python ``KafkaConsumer``).

    With ``group_id`` the topics are subscribed in that consumer group (partitions shared
    with the group's other members, offsets committed automatically); without one, this
    consumer reads every partition itself and commits nothing. ``from_beginning`` starts
    where no committed offset exists at the oldest record kept, as kafka-console-consumer's
    ``--from-beginning`` does (a group that committed offsets resumes from them); otherwise
    at the end. Topics that do not exist yet are picked up when they appear.

    Raises:
        ConsumeError: no broker answers at ``bootstrap``.
    """

    def __init__(
        self,
        bootstrap: Bootstrap | str,
        topics: Topics = DEFAULT_TOPICS,
        group_id: str | None = None,
        from_beginning: bool = False,
        timeout_s: float = 10.0,
        client_id: str = "fqm-consume",
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap) if isinstance(bootstrap, str) else bootstrap
        self.topics = [getattr(topics, f.name) for f in fields(topics)]
        self.group_id = group_id
        try:
            check_reachable(self.bootstrap, timeout_s)
        except ConnectionError as exc:
            raise ConsumeError(f"{exc}; check --bootstrap and that Kafka runs") from None
        try:
            self._consumer = KafkaConsumer(
                **self.bootstrap.client_kwargs(),
                client_id=client_id,
                group_id=group_id,
                auto_offset_reset="earliest" if from_beginning else "latest",
                enable_auto_commit=group_id is not None,
                bootstrap_timeout_ms=int(timeout_s * 1000),
                request_timeout_ms=max(31_000, int(timeout_s * 1000) + 1000),
                max_poll_records=500,
            )
        except kafka_errors.KafkaError as exc:
            raise ConsumeError(
                f"Kafka at {self.bootstrap} did not answer as a broker ({type(exc).__name__}); "
                "check --bootstrap (host, port, security protocol, credentials)"
            ) from None
        self._assigned: set[TopicPartition] = set()
        self._next_scan = 0.0
        if group_id is not None:
            self._consumer.subscribe(topics=self.topics)
        else:
            self._assign()

    def _assign(self) -> None:
        """Without a group: assign every partition of the topics that exist (new ones too)."""
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + RESCAN_S
        wanted = set(self._assigned)
        for topic in self.topics:
            for p in self._consumer.partitions_for_topic(topic) or ():
                wanted.add(TopicPartition(topic, p))
        if wanted != self._assigned:
            self._consumer.assign(sorted(wanted))
            self._assigned = wanted

    def poll(self, timeout_s: float) -> list[Message]:
        if self.group_id is None:
            self._assign()
            if not self._assigned:
                time.sleep(min(timeout_s, 0.2))
                return []
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        # As 4-tuples: kafka-python's ConsumerRecord is a namedtuple of more fields, which
        # monitor.events.parse would take for a (topic, key, value, headers) tuple.
        return [
            (r.topic, r.key, r.value, r.headers or ())
            for records in batches.values()
            for r in records
        ]

    @property
    def exhausted(self) -> bool:
        return False

    def close(self) -> None:
        self._consumer.close()


# ---- JSONL folder ------------------------------------------------------------------------


class _Tail:
    """One topic file of one stream, read line by line.

    Holds an open descriptor. With ``rotating`` (the current file), at the end of it, if
    the path now names another file (the sink rotated it), the rest of the old file is read
    and then the new one from its start; without (a rotated file), the end is the end
    (:attr:`finished`). Only complete lines (ending in ``\\n``) are returned.
    """

    def __init__(self, path: Path, topic: str, rotating: bool = True) -> None:
        self.path = path
        self.topic = topic
        self.rotating = rotating
        self.finished = False
        self._file: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = b""
        self._skipping = False

    def _open(self) -> bool:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (kept open while following)
        except FileNotFoundError:
            return False
        self._file, self._inode = f, os.fstat(f.fileno()).st_ino
        return True

    def read(self) -> list[bytes]:
        """Complete lines written since the last call (at most about ``READ_CHUNK`` bytes)."""
        if self.finished:
            return []
        if self._file is None and not self._open():
            self.finished = not self.rotating  # deleted by the sink's retention meanwhile
            return []
        assert self._file is not None
        data = self._file.read(READ_CHUNK)
        if not data:
            if not self.rotating:
                self.close()
                self.finished = True
                return []
            try:
                inode = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            if inode != self._inode:  # rotated: the old file is finished; go on with the new
                self.close()
                self._partial, self._skipping = b"", False
                if inode is not None and self._open():
                    return self.read()
            return []
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:  # the rest of an over-long line
            lines.pop(0)
            self._skipping = False
        if len(self._partial) > MAX_LINE_BYTES:
            log.warning("%s: a line over %d bytes is skipped", self.path, MAX_LINE_BYTES)
            self._partial, self._skipping = b"", True
        return [line for line in lines if line]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class JsonlSource:
    """Records from a :class:`~monitor.delivery.jsonl_sink.JsonlSink` folder.

    Reads every stream's topic files, rotated ones first (oldest to newest), then the
    current one. Without ``follow`` it stops at the end of what is there
    (:attr:`exhausted`); with it, it keeps reading what the sink appends, follows rotations
    and picks up new streams. Crops are not records here: they are files, which
    :meth:`crop_path` names.

    Raises:
        ConsumeError: ``root`` does not exist or is not a folder.
    """

    def __init__(self, root: Path, topics: Topics = DEFAULT_TOPICS, follow: bool = False) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise ConsumeError(f"{self.root} does not exist; give the folder a JSONL sink writes")
        if not self.root.is_dir():
            raise ConsumeError(f"{self.root} is not a folder; give the folder a JSONL sink writes")
        self.topics = [getattr(topics, f.name) for f in fields(topics) if f.name != "crops"]
        self.follow = follow
        self._tails: dict[Path, _Tail] = {}
        self._backlog: list[_Tail] = []  # rotated files still to read, oldest first
        self._next_scan = 0.0
        self._done = False
        self._scan()

    def _scan(self) -> None:
        self._next_scan = time.monotonic() + RESCAN_S
        for stream in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for topic in self.topics:
                current = stream / f"{topic}{SUFFIX}"
                if current in self._tails:
                    continue
                n = 1
                while rotated_path(current, n).exists():
                    n += 1
                rotated = [rotated_path(current, k) for k in range(n - 1, 0, -1)]
                if not rotated and not current.exists():
                    continue
                self._backlog += [_Tail(p, topic, rotating=False) for p in rotated]
                self._tails[current] = _Tail(current, topic)

    def poll(self, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while True:
            out = self._read_some()
            if out or self._done:
                return out
            if not self.follow:
                self._done = True
                return []
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(0.1, remaining))

    def _read_some(self) -> list[Message]:
        if self.follow and time.monotonic() >= self._next_scan:
            self._scan()
        while self._backlog:
            tail = self._backlog[0]
            lines = tail.read()
            if lines:
                return [(tail.topic, None, line, ()) for line in lines]
            if tail.finished:
                self._backlog.pop(0)
        out: list[Message] = []
        for tail in self._tails.values():
            out += [(tail.topic, None, line, ()) for line in tail.read()]
        return out

    def crop_path(self, stream_id: str, crop_id: UUID) -> Path:
        """Where the sink writes ``crop_id``'s JPEG for ``stream_id``."""
        return self.root / stream_dir_name(stream_id) / CROPS_DIR / f"{crop_id}.jpg"

    @property
    def exhausted(self) -> bool:
        return self._done

    def close(self) -> None:
        for tail in [*self._backlog, *self._tails.values()]:
            tail.close()


# ---- the consumer ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerStats:
    """Counts since the consumer was created.

    Attributes:
        records: records read (events, crops, and records that failed to parse).
        events: new events yielded.
        duplicates: events dropped as redelivered (same event id).
        crops: inline crop records read.
        invalid: records that are not readable fqm events, by error type.
    """

    records: int
    events: int
    duplicates: int
    crops: int
    invalid: dict[str, int]


class EventConsumer:
    """Typed, de-duplicated events from a :class:`Source`, with each stream's best faces.

    Args:
        source: a :class:`KafkaSource` or :class:`JsonlSource` (see :meth:`from_kafka`,
            :meth:`from_dir`); the consumer closes it.
        dedup_capacity: event ids remembered for de-duplication.
        max_tracks_per_stream: tracks :attr:`best` keeps per stream.
        crop_cache_bytes: inline crop bytes kept (from Kafka's crops topic).

    Records that are not readable events (a newer schema major, a foreign message) are
    skipped, counted in :attr:`ConsumerStats.invalid` and logged (the first of each kind at
    WARNING).
    """

    def __init__(
        self,
        source: Source,
        dedup_capacity: int = DEDUP_CAPACITY,
        max_tracks_per_stream: int = MAX_TRACKS_PER_STREAM,
        crop_cache_bytes: int = CROP_CACHE_BYTES,
    ) -> None:
        self.source = source
        self.best = BestFaces(max_tracks_per_stream, Deduplicator(dedup_capacity))
        self.dedup = self.best.dedup  # one LRU of ids: BestFaces.update drops duplicates
        self.crop_cache_bytes = crop_cache_bytes
        self._crops: OrderedDict[UUID, InlineCrop] = OrderedDict()
        self._crop_bytes = 0
        self._counts: Counter[str] = Counter()
        self._invalid: Counter[str] = Counter()
        #: ``time.monotonic()`` when the last record was read (None before the first).
        self.last_record_at: float | None = None

    @classmethod
    def from_kafka(
        cls,
        bootstrap: Bootstrap | str,
        topics: Topics = DEFAULT_TOPICS,
        group_id: str | None = None,
        from_beginning: bool = False,
        **kwargs: int,
    ) -> EventConsumer:
        """A consumer of fqm's topics on Kafka; see :class:`KafkaSource`."""
        return cls(KafkaSource(bootstrap, topics, group_id, from_beginning), **kwargs)

    @classmethod
    def from_dir(
        cls, root: Path, topics: Topics = DEFAULT_TOPICS, follow: bool = False, **kwargs: int
    ) -> EventConsumer:
        """A consumer of a JSONL sink's folder; see :class:`JsonlSource`."""
        return cls(JsonlSource(root, topics, follow), **kwargs)

    def events(
        self,
        max_events: int | None = None,
        timeout_s: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> Iterator[Event]:
        """Yield new events (duplicates dropped) until ``max_events`` were yielded,
        ``timeout_s`` seconds passed, the source is exhausted, or ``until()`` is true.

        :attr:`best` is updated before each event is yielded.
        """
        for _, event in self.records(max_events, timeout_s, until):
            if event is not None:
                yield event

    def records(
        self,
        max_events: int | None = None,
        timeout_s: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[Message, Event | None]]:
        """Every record read, with the new event it holds (None for a crop, a duplicate or a
        record that is not an event): what :meth:`events` filters, for callers that need
        the record itself (``fqm consume --to-dir`` writes its exact value).

        Stops as :meth:`events` does. ``until`` is called at least every half second, also
        while nothing arrives (with :attr:`last_record_at` it makes an idle-time rule).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        yielded = 0
        while max_events is None or yielded < max_events:
            remaining = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if remaining <= 0 or self.source.exhausted or (until is not None and until()):
                return
            for message in self.source.poll(remaining):
                event = self.handle(message)
                yield message, event
                if event is not None:
                    yielded += 1
                    if max_events is not None and yielded >= max_events:
                        return

    def handle(self, message: Message) -> Event | None:
        """Apply one record: the new event it holds, or None (a crop, a duplicate, a record
        that is not an event)."""
        self._counts["records"] += 1
        self.last_record_at = time.monotonic()
        if _is_crop(message):
            try:
                self._keep_crop(parse_crop(message))
            except EventError as exc:
                self._skip(exc)
            return None
        try:
            event = parse(message)
        except EventError as exc:
            self._skip(exc)
            return None
        if not self.best.update(event):
            self._counts["duplicates"] += 1
            return None
        self._counts["events"] += 1
        return event

    def crop(self, stream_id: str, crop_id: UUID) -> bytes | None:
        """The JPEG of an inline crop, if it arrived (Kafka) or is on disk (folder)."""
        cached = self._crops.get(crop_id)
        if cached is not None:
            return cached.jpeg
        if isinstance(self.source, JsonlSource):
            try:
                return self.source.crop_path(stream_id, crop_id).read_bytes()
            except FileNotFoundError:
                return None
        return None

    def crop_for(self, event: BestFrameEvent | TrackSummaryEvent) -> bytes | None:
        """The best crop an event names, where it was sent inline and is available."""
        ref = event.crop if isinstance(event, BestFrameEvent) else getattr(event.best, "crop", None)
        if ref is None or ref.delivery != "inline":
            return None
        return self.crop(event.stream_id, ref.crop_id)

    def stats(self) -> ConsumerStats:
        c = self._counts
        return ConsumerStats(
            records=c["records"],
            events=c["events"],
            duplicates=c["duplicates"],
            crops=c["crops"],
            invalid=dict(self._invalid),
        )

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _keep_crop(self, crop: InlineCrop) -> None:
        self._counts["crops"] += 1
        old = self._crops.pop(crop.crop_id, None)
        if old is not None:
            self._crop_bytes -= len(old.jpeg)
        self._crops[crop.crop_id] = crop
        self._crop_bytes += len(crop.jpeg)
        while self._crop_bytes > self.crop_cache_bytes and self._crops:
            _, dropped = self._crops.popitem(last=False)
            self._crop_bytes -= len(dropped.jpeg)

    def _skip(self, exc: EventError) -> None:
        name = type(exc).__name__
        self._invalid[name] += 1
        level = logging.WARNING if self._invalid[name] == 1 else logging.DEBUG
        log.log(level, "skipping a record that is not a readable fqm event: %s", exc)


def _is_crop(message: Message) -> bool:
    headers = message[3] if isinstance(message, tuple) else message.headers
    return any(
        k == HEADER_CONTENT_TYPE and bytes(v) == JPEG_CONTENT_TYPE.encode()
        for k, v in headers or ()
    )
