"""Frozen snapshots of the service's state, read at scrape time by metrics and health.

Pull, not push: the workers, the batcher and the sinks already keep counters; the adapters
here (:func:`stream_snapshot`, :func:`engine_snapshot`, :func:`sink_snapshot`) read them
into one :class:`ServiceSnapshot` when Prometheus scrapes or a probe asks, so the hot path
pays nothing for observability. :class:`StreamStatus` (from the supervisor's status events),
:class:`FrameRate` and :class:`Heartbeat` are the little state the service does not keep yet.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pipelines.events import Connecting, Down, Reconnecting, Stalled, StatusEvent, Up
from pipelines.source import SourceStats
from pipelines.urls import mask_url

StreamState = Literal["connecting", "up", "stalled", "reconnecting", "down"]
STREAM_STATES: tuple[StreamState, ...] = ("connecting", "up", "stalled", "reconnecting", "down")

#: What became of a stream's worker thread: still reading, ended (end of a file, max frames,
#: stopped), failed (ended with an error it reported: a camera given up on, a decode error),
#: or crashed (gone without reporting: a bug).
WorkerState = Literal["running", "ended", "failed", "crashed"]


@dataclass(frozen=True)
class StreamStatus:
    """The last known status of one stream, with the reason in words (masked).

    Example:
        >>> StreamStatus.from_event(Reconnecting("lobby", "connection refused", attempt=3)).reason
        'reconnecting (attempt 3): connection refused'
    """

    state: StreamState
    reason: str = ""
    since: float = 0.0  # time.monotonic() of the change

    @classmethod
    def now(cls, state: StreamState, reason: str = "") -> StreamStatus:
        """A status that starts now (for file streams, which have no status events)."""
        return cls(state, mask_url(reason), time.monotonic())

    @classmethod
    def from_event(cls, event: StatusEvent) -> StreamStatus:
        """The status a supervisor event means (``Down`` is ``reconnecting`` unless final)."""
        why = event.reason
        state: StreamState
        if isinstance(event, Connecting):
            state, why = "connecting", f"connecting (attempt {event.attempt})"
        elif isinstance(event, Up):
            state = "up"
            why = f"up: {event.width}x{event.height}" + (
                f", {event.decoder}" if event.decoder else ""
            )
        elif isinstance(event, Stalled):
            state, why = "stalled", f"stalled: {why}"
        elif isinstance(event, Reconnecting):
            state, why = "reconnecting", f"reconnecting (attempt {event.attempt}): {why}"
        elif isinstance(event, Down):
            final = event.final
            state = "down" if final else "reconnecting"
            why = f"{'down' if final else 'reconnecting'} after {event.failures} failures: {why}"
        else:
            raise TypeError(f"not a status event: {type(event).__name__}")
        return cls(state, mask_url(why), time.monotonic())


class FrameRate:
    """Frames per second over a sliding window, and the age of the last frame.

    One writer (the stream's thread calls :meth:`tick` per frame), any number of readers.
    """

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._last: float | None = None
        self._lock = threading.Lock()

    def tick(self) -> None:
        now = self._clock()
        with self._lock:
            self._times.append(now)
            self._last = now
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def fps(self) -> float:
        """Frames in the last ``window_s`` seconds / ``window_s`` (0 when none)."""
        with self._lock:
            self._trim(self._clock())
            return len(self._times) / self.window_s

    def last_frame_age_s(self) -> float | None:
        """Seconds since the last frame (it grows while a stream stalls); ``None`` before one."""
        last = self._last
        return None if last is None else self._clock() - last


class Heartbeat:
    """The service loop's sign of life: the loop calls :meth:`beat`, liveness reads the age."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age_s(self) -> float:
        return self._clock() - self._last


@dataclass(frozen=True)
class StreamSnapshot:
    """One stream now: its status, its worker, its counters since start.

    ``frames_skipped`` counts pictures decoded but thinned out by the stream's analysis rate.
    ``faces_detected`` counts confirmed face observations (a face in each frame it is seen),
    ``faces_looked`` those given landmarks (the policy might score them), ``faces_scored``
    those the engine scored, ``faces_dropped`` those the full engine queue
    refused (live streams). ``tracks`` counts distinct confirmed tracks so far.
    """

    stream_id: str
    state: StreamState
    reason: str = ""
    live: bool = True
    worker: WorkerState = "running"
    frames: int = 0
    frames_dropped: int = 0
    frames_skipped: int = 0
    corrupt_packets: int = 0
    reconnects: int = 0
    fps: float = 0.0
    faces_detected: int = 0
    faces_looked: int = 0
    faces_scored: int = 0
    faces_dropped: int = 0
    tracks: int = 0
    last_frame_age_s: float | None = None


@dataclass(frozen=True)
class EngineSnapshot:
    """The shared quality engine behind its micro-batcher (``engines.batcher.BatcherStats``).

    Latencies are per batch (the oldest face's queue wait + inference), over the batcher's
    stats window; ``nan`` before the first batch.
    """

    alive: bool
    closing: bool = False
    queue_depth: int = 0
    queue_limit: int = 0
    max_batch: int = 0
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    cancelled: int = 0
    batches: int = 0
    occupancy: float = math.nan
    latency_p50_s: float = math.nan
    latency_p99_s: float = math.nan


@dataclass(frozen=True)
class SinkSnapshot:
    """The sink: what it wrote, what failed, and (Kafka) whether it spools.

    Attributes:
        kind: ``kafka`` or ``jsonl`` (the metrics' ``sink`` label).
        events, crops: event and crop records the service handed over.
        published, delivered: records accepted, and written (JSONL) or acknowledged (Kafka).
        errors: records that will never be delivered, by reason.
        spooling: Kafka: records go to the disk spool (broker away or replaying).
        spool_records, spool_bytes: what the spool holds now.
        in_flight: records handed to the producer, not yet acknowledged.
        delivery_lag_s: seconds since spooling began (the oldest undelivered record's age,
            roughly); 0 while delivering directly.
        connected: Kafka: the broker answered at least once (JSONL: always True).
        closed: the sink was closed (or asked to stop): it takes no more records.
        failure: why the sink cannot go on (a delivery callback raised), in words (masked);
            empty when it can. A broker outage is not a failure: the sink spools.
    """

    kind: str
    events: int = 0
    crops: int = 0
    published: int = 0
    delivered: int = 0
    errors: tuple[tuple[str, int], ...] = ()
    spooling: bool = False
    spool_records: int = 0
    spool_bytes: int = 0
    in_flight: int = 0
    delivery_lag_s: float = 0.0
    connected: bool = True
    closed: bool = False
    failure: str = ""


@dataclass(frozen=True)
class ServiceSnapshot:
    """Everything metrics and health read, taken at one moment.

    Attributes:
        streams: one per configured stream.
        engine: ``None`` before the engine is opened.
        sink: ``None`` before the sink is opened.
        heartbeat_age_s: seconds since the service loop last ran (``None``: not reported).
        stopping: a shutdown is in progress (SIGTERM, or every stream ended).
    """

    streams: tuple[StreamSnapshot, ...] = ()
    engine: EngineSnapshot | None = None
    sink: SinkSnapshot | None = None
    heartbeat_age_s: float | None = None
    stopping: bool = False


# -- adapters ---------------------------------------------------------------------------


class _Progress(Protocol):  # monitor.service.stream.StreamProgress
    status: str
    frames: int
    faces_seen: int
    faces_scored: int
    faces_dropped: int
    tracks: int
    done: bool
    error: str


def stream_snapshot(
    stream_id: str,
    progress: _Progress,
    source: SourceStats,
    *,
    live: bool,
    alive: bool,
    status: StreamStatus | None = None,
    rate: FrameRate | None = None,
) -> StreamSnapshot:
    """Read one stream's worker (its ``StreamProgress``, thread liveness) and source stats.

    Args:
        progress: the worker's ``StreamProgress`` (plain ints; racy reads are fine).
        source: the source's ``stats``.
        live: a live stream (files have no reconnects and end by themselves).
        alive: the worker thread ``is_alive()``.
        status: the stream's last :class:`StreamStatus`, with its reason in words; without
            it, the state is ``progress.status`` and the reason just names it.
        rate: the worker's :class:`FrameRate`, if it keeps one.
    """
    if status is None:
        state = progress.status if progress.status in STREAM_STATES else "connecting"
        status = StreamStatus(state, state)  # type: ignore[arg-type]
    if alive:
        worker: WorkerState = "running"
    elif progress.error:
        worker = "failed"
    elif progress.done:
        worker = "ended"
    else:
        worker = "crashed"
    state, reason = status.state, status.reason
    if worker == "failed":
        state, reason = "down", mask_url(f"down: {progress.error}")
    return StreamSnapshot(
        stream_id=stream_id,
        state=state,
        reason=reason,
        live=live,
        worker=worker,
        frames=progress.frames,
        frames_dropped=source.dropped,
        frames_skipped=source.skipped,
        corrupt_packets=source.corrupt_packets,
        reconnects=source.reconnects,
        fps=0.0 if rate is None else rate.fps(),
        faces_detected=progress.faces_seen,
        faces_looked=getattr(progress, "faces_looked", 0),
        faces_scored=progress.faces_scored,
        faces_dropped=progress.faces_dropped,
        tracks=progress.tracks,
        last_frame_age_s=None if rate is None else rate.last_frame_age_s(),
    )


def engine_snapshot(batcher: Any) -> EngineSnapshot:
    """Read a ``MicroBatcher``: its stats, queue bound, and whether its worker thread runs."""
    stats = batcher.stats()
    # MicroBatcher keeps its thread and closing flag private (a public ``alive`` is asked for);
    # a batcher driven without a thread (start=False) counts as alive.
    thread = getattr(batcher, "_thread", None)
    return EngineSnapshot(
        alive=thread is None or thread.is_alive(),
        closing=bool(getattr(batcher, "_closing", False)),
        queue_depth=stats.pending,
        queue_limit=batcher.config.max_queue,
        max_batch=batcher.config.max_batch,
        submitted=stats.submitted,
        completed=stats.completed,
        failed=stats.failed,
        rejected=stats.rejected,
        cancelled=stats.cancelled,
        batches=stats.batches,
        occupancy=stats.occupancy,
        latency_p50_s=stats.latency_p50_s,
        latency_p99_s=stats.latency_p99_s,
    )


def sink_snapshot(sink: Any, *, clock: Callable[[], float] = time.monotonic) -> SinkSnapshot:
    """Read a ``LockedSink`` (or a bare ``KafkaSink`` / ``JsonlSink``) into a snapshot.

    Raises:
        TypeError: a sink of another kind.
    """
    events = crops = 0
    if hasattr(sink, "publish_all"):  # LockedSink: the service's counts, then the real sink
        events, crops, sink = sink.events, sink.crops, sink.sink
    from monitor.delivery.jsonl_sink import JsonlSink
    from monitor.delivery.kafka_sink import KafkaSink

    if isinstance(sink, KafkaSink):
        return _kafka_snapshot(sink, events, crops, clock)
    if isinstance(sink, JsonlSink):
        s = sink.stats()
        closed = bool(getattr(sink, "_closed", False))
        return SinkSnapshot(
            kind="jsonl",
            events=events,
            crops=crops,
            published=s.published,
            delivered=s.written + s.crops,
            errors=tuple(sorted(s.failed.items())),
            closed=closed,
        )
    raise TypeError(f"no snapshot for a sink of type {type(sink).__name__}")


def _kafka_snapshot(sink: Any, events: int, crops: int, clock: Callable[[], float]) -> SinkSnapshot:
    s = sink.stats()
    # KafkaSink keeps these private (public accessors are asked for): whether publish goes
    # to the spool, since when, and whether it was closed or a delivery callback raised.
    spooling = bool(getattr(sink, "_spooling", s.spool_records > 0 or not s.connected))
    since = getattr(sink, "_spooling_since", None)
    lag = max(0.0, clock() - since) if spooling and since is not None else 0.0
    closed = bool(getattr(sink, "_closed", False)) or sink.stop_requested
    callback_error = getattr(sink, "_callback_error", None)
    failure = "" if callback_error is None else f"a delivery callback raised: {callback_error!r}"
    return SinkSnapshot(
        kind="kafka",
        events=events,
        crops=crops,
        published=s.published,
        delivered=s.delivered,
        errors=tuple(sorted(s.failed.items())),
        spooling=spooling,
        spool_records=s.spool_records,
        spool_bytes=s.spool_bytes,
        in_flight=s.in_flight,
        delivery_lag_s=lag,
        connected=s.connected,
        closed=closed,
        failure=mask_url(failure),
    )
