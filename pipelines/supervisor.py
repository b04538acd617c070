"""Keeps a live source up: reconnects with backoff, a stall watchdog, status events.

Architecture (after Frigate's capture): a *reader* thread owns one connection (it opens,
decodes and closes its source, so a decoder is never touched from two threads) and puts
frames into a bounded queue; a *watchdog* thread starts readers, watches the time since
the last frame, and on an error, an end of stream or a stall emits status events, waits
out the backoff and starts a new reader. A reader stuck inside a blocking read is
abandoned, not killed: it exits by itself when its source's read timeout fires, and its
late frames are thrown away. The consumer iterates the queue.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from pipelines.backoff import BackoffPolicy
from pipelines.errors import SourceError, SourceGaveUpError
from pipelines.events import Connecting, Down, Reconnecting, Stalled, StatusEvent, Up
from pipelines.frame import Frame
from pipelines.queueing import LIVE_QUEUE_SIZE, FrameQueue, Overflow, drain
from pipelines.source import Source, SourceStats
from pipelines.urls import mask_url

log = logging.getLogger(__name__)

#: Longest the watchdog sleeps between checks; also bounds how late ``close`` is noticed.
WATCHDOG_TICK_S = 0.1
#: Seconds ``close`` waits for the threads to finish before leaving them (daemon threads).
CLOSE_JOIN_S = 5.0


@dataclass(frozen=True)
class SupervisorSettings:
    """How a supervised source reacts to trouble.

    Attributes:
        stall_timeout_s: no frame for this long (once open) means the stream stalled.
        open_timeout_s: an attempt that has not opened within this long is abandoned.
        backoff: delays between attempts.
        max_failures: consecutive failed attempts before giving up (``Down(final=True)``
            and ``SourceGaveUpError``); ``None`` retries forever. An attempt counts as
            healthy, and resets the count, once it has delivered frames for
            ``healthy_after_s``: a stream that dies every few seconds is a crash loop.
        healthy_after_s: see ``max_failures``.
        reconnect_on_eos: a live stream that ends is reconnected; turn off for files.
        queue_size: frames buffered for the consumer.
        overflow: ``DROP_OLDEST`` (live) or ``BLOCK`` (replayed files: lose nothing).
    """

    stall_timeout_s: float = 10.0
    open_timeout_s: float = 20.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    max_failures: int | None = 10
    healthy_after_s: float = 30.0
    reconnect_on_eos: bool = True
    queue_size: int = LIVE_QUEUE_SIZE
    overflow: Overflow = Overflow.DROP_OLDEST

    def __post_init__(self) -> None:
        for name in ("stall_timeout_s", "open_timeout_s", "healthy_after_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_failures is not None and self.max_failures < 1:
            raise ValueError(f"max_failures must be >= 1 or None, got {self.max_failures}")


class _Reader(threading.Thread):
    """One connection: open, decode into the queue, close; all in this thread."""

    def __init__(self, source: Source, sink: FrameQueue, index_base: int) -> None:
        super().__init__(name=f"fqm-reader-{source.stream_id}", daemon=True)
        self.source = source
        self.sink = sink
        self.index_base = index_base
        self.cancelled = threading.Event()
        self.opened_at: float | None = None
        self.first_frame: Frame | None = None
        self.first_frame_at: float | None = None
        self.last_activity = time.monotonic()
        self.putting = False  # blocked on a full BLOCK queue: the consumer is slow, not us
        self.last_index = index_base - 1
        self.reason = ""
        self.error = False
        self.done = threading.Event()

    def run(self) -> None:
        source = self.source
        try:
            source.open()
            self.opened_at = self.last_activity = time.monotonic()
            for frame in source:
                if self.cancelled.is_set():
                    return
                frame = replace(frame, index=self.index_base + frame.index)
                self.last_index = frame.index
                now = time.monotonic()
                self.last_activity = now
                if self.first_frame is None:
                    self.first_frame, self.first_frame_at = frame, now
                self.putting = True
                accepted = self.sink.put(frame)
                self.putting = False
                self.last_activity = time.monotonic()
                if not accepted:
                    return
            # A live stream has no end: the camera or server closed the connection.
            self.reason = "the stream ended (connection closed by the camera or server)"
        except SourceError as exc:
            self.reason, self.error = mask_url(str(exc)), True
        except Exception as exc:  # a bug or an unexpected library error: log it in full
            log.exception("reader of %s failed", source.stream_id)
            self.reason, self.error = mask_url(f"{type(exc).__name__}: {exc}"), True
        finally:
            try:
                source.close()
            finally:
                self.done.set()


class SupervisedSource(Source):
    """A live source that reconnects by itself and reports its status.

    Args:
        factory: makes a fresh, unopened source for each attempt (e.g.
            ``lambda: AvSource(url, "cam1", read_timeout_s=5)``); give the inner source a
            read timeout no longer than ``stall_timeout_s`` so that a stuck reader exits soon.
        stream_id: id for frames and events.
        settings: see ``SupervisorSettings``.
        on_event: called with each ``StatusEvent`` in the watchdog thread; keep it quick.
            If it raises, the source stops and the consumer gets the exception.
        events: a ``queue.Queue`` (unbounded) that receives each event as well.
        seed: seeds the backoff jitter (tests).

    Iterating yields frames across reconnects, with indices that keep increasing; it ends
    with ``SourceGaveUpError`` after ``max_failures`` failures in a row, or when closed.

    Example:
        >>> cam = SupervisedSource(lambda: AvSource(url, read_timeout_s=5), "cam1",
        ...                        on_event=print)
        >>> with cam:
        ...     for frame in cam:
        ...         ...
    """

    def __init__(
        self,
        factory: Callable[[], Source],
        stream_id: str,
        *,
        settings: SupervisorSettings | None = None,
        on_event: Callable[[StatusEvent], None] | None = None,
        events: queue.Queue[StatusEvent] | None = None,
        seed: int | None = None,
    ) -> None:
        self.factory = factory
        self.stream_id = stream_id
        self.settings = settings or SupervisorSettings()
        self.on_event = on_event
        self.events = events
        self.stats = SourceStats()
        self._rng = random.Random(seed)
        self._queue = FrameQueue(self.settings.queue_size, self.settings.overflow)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._readers: list[_Reader] = []
        # Inner sources' decode time and skipped pictures, summed over readers that ended;
        # the lock keeps a reader from being counted twice (or not at all) while it moves
        # from ``_readers`` to these totals.
        self._stats_lock = threading.Lock()
        self._retired_decode_s = 0.0
        self._retired_skipped = 0
        self._retired_corrupt = 0

    def open(self) -> None:
        """Start connecting in the background; frames (and events) follow."""
        if self._watchdog is not None:
            raise RuntimeError(f"{self.stream_id}: already open")
        self._watchdog = threading.Thread(
            target=self._supervise, name=f"fqm-watchdog-{self.stream_id}", daemon=True
        )
        self._watchdog.start()

    def close(self) -> None:
        self._stop.set()
        self._queue.discard()
        for reader in self._readers:
            reader.cancelled.set()
        if self._watchdog is not None:
            self._watchdog.join(CLOSE_JOIN_S)
        for reader in self._readers:
            reader.join(CLOSE_JOIN_S)
            if reader.is_alive():
                log.warning("%s: a reader is still blocked; leaving it", self.stream_id)
        self._refresh_stats()

    def frames(self) -> Iterator[Frame]:
        if self._watchdog is None:
            raise RuntimeError("open the source (or use it as a context manager) before reading")
        return self._iterate()

    def _iterate(self) -> Iterator[Frame]:
        for frame in drain(self._queue, self._refresh_stats):
            self.stats.frames += 1
            yield frame

    def _refresh_stats(self) -> None:
        """Fold the inner sources' counters (every reconnect's) into ``stats``.

        ``frames`` counts frames yielded here; ``dropped`` the ones the queue discarded;
        ``decode_seconds``, ``skipped`` and ``corrupt_packets`` are summed over all inner
        sources, so that ``decode_seconds / (frames + dropped)`` is the cost of a frame
        across reconnects.
        ``decoder``, ``hwaccel`` and ``hwaccel_note`` are the latest inner source's.
        """
        stats = self.stats
        with self._stats_lock:
            readers = list(self._readers)
            decode_s, skipped = self._retired_decode_s, self._retired_skipped
            corrupt = self._retired_corrupt
        for reader in readers:
            decode_s += reader.source.stats.decode_seconds
            skipped += reader.source.stats.skipped
            corrupt += reader.source.stats.corrupt_packets
        stats.decode_seconds, stats.skipped = decode_s, skipped
        stats.corrupt_packets = corrupt
        stats.dropped = self._queue.dropped
        if readers:
            inner = readers[-1].source.stats
            stats.decoder, stats.hwaccel, stats.hwaccel_note = (
                inner.decoder,
                inner.hwaccel,
                inner.hwaccel_note,
            )

    # -- watchdog thread ------------------------------------------------------------------

    def _emit(self, event: StatusEvent) -> None:
        level = logging.INFO if isinstance(event, Connecting | Up) else logging.WARNING
        log.log(level, "%s %s: %s", self.stream_id, type(event).__name__, event.reason)
        if self.events is not None:
            self.events.put(event)
        if self.on_event is not None:
            self.on_event(event)

    def _supervise(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # e.g. the on_event callback raised: the consumer
            self._queue.finish(exc)  # gets it from its next read, so it is never lost
            log.debug("%s: watchdog stopped by %r", self.stream_id, exc)

    def _loop(self) -> None:
        s = self.settings
        failures = 0
        attempt = 0
        next_index = 0
        while not self._stop.is_set():
            attempt += 1
            source = self.factory()
            location = mask_url(str(getattr(source, "location", "") or self.stream_id))
            self._emit(Connecting(self.stream_id, "connecting", attempt=attempt, location=location))
            reader = _Reader(source, self._queue, next_index)
            with self._stats_lock:
                for ended in self._readers:
                    if not ended.is_alive():
                        self._retired_decode_s += ended.source.stats.decode_seconds
                        self._retired_skipped += ended.source.stats.skipped
                        self._retired_corrupt += ended.source.stats.corrupt_packets
                self._readers = [r for r in self._readers if r.is_alive()] + [reader]
            reader.start()
            reason = self._watch(reader, attempt)
            next_index = reader.last_index + 1
            if self._stop.is_set():
                return
            if reason is None:  # a file that ended and should not be reconnected
                self._queue.finish()
                return
            healthy = (
                reader.first_frame_at is not None
                and reader.last_activity - reader.first_frame_at >= s.healthy_after_s
            )
            failures = 1 if healthy else failures + 1
            final = s.max_failures is not None and failures >= s.max_failures
            self._emit(Down(self.stream_id, reason, failures=failures, final=final))
            if final:
                self._queue.finish(
                    SourceGaveUpError(
                        f"{self.stream_id}: gave up after {failures} failed attempts in a row "
                        f"(last: {reason}); check the camera and raise max_failures if needed"
                    )
                )
                return
            delay = s.backoff.delay(failures, self._rng)
            self._emit(
                Reconnecting(self.stream_id, reason, attempt=attempt + 1, delay_s=round(delay, 3))
            )
            self.stats.reconnects += 1
            if self._stop.wait(delay):
                return

    def _watch(self, reader: _Reader, attempt: int) -> str | None:
        """Wait for the reader to end or stall; return why it is down (``None``: done)."""
        s = self.settings
        started = time.monotonic()
        announced = False

        def announce() -> bool:
            if announced or reader.first_frame is None:
                return announced
            image = reader.first_frame.image
            self._emit(
                Up(
                    self.stream_id,
                    "receiving frames",
                    attempt=attempt,
                    width=image.shape[1],
                    height=image.shape[0],
                    decoder=mask_url(reader.source.stats.decoder_summary),
                )
            )
            return True

        while not self._stop.is_set():
            announced = announce()
            if reader.done.wait(WATCHDOG_TICK_S):
                # A short file can be read to its end within one tick: announce it first, and
                # judge by the frames the reader got, not by what this loop happened to see.
                announced = announce()
                if announced and not reader.error and not s.reconnect_on_eos:
                    return None
                return reader.reason
            now = time.monotonic()
            if reader.opened_at is None:
                if now - started > s.open_timeout_s:
                    reader.cancelled.set()
                    return f"no connection within {s.open_timeout_s:g} s"
                continue
            idle = now - reader.last_activity
            if idle > s.stall_timeout_s and not reader.putting:
                self._emit(
                    Stalled(self.stream_id, f"no frame for {idle:.1f} s", seconds=round(idle, 2))
                )
                reader.cancelled.set()
                return f"stalled: no frame for {idle:.1f} s"
        return None
