"""Decode a source in its own thread, so that many streams share one process.

FFmpeg (PyAV) and GStreamer release the GIL while they demux, decode and convert, so one
thread per stream scales across cores without processes; the consumer only pays for
taking frames off a queue. Live sources drop their OLDEST frame when the consumer lags
(``LIVE_QUEUE_SIZE``); files block the decoder (``FILE_QUEUE_SIZE``) so none is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from pipelines.frame import Frame
from pipelines.queueing import (
    FILE_QUEUE_SIZE,
    LIVE_QUEUE_SIZE,
    FrameQueue,
    Overflow,
    drain,
)
from pipelines.source import Source, SourceStats
from pipelines.urls import SourceKind

#: Seconds ``close`` waits for the decoding thread (it checks for closing between frames).
CLOSE_JOIN_S = 5.0


class ThreadedSource(Source):
    """Wraps ``inner`` (unopened): its thread opens, decodes and closes it.

    Args:
        inner: any ``Source``; its ``kind`` (when it has one) picks the defaults below.
        queue_size: frames buffered; default ``LIVE_QUEUE_SIZE`` or ``FILE_QUEUE_SIZE``.
        overflow: default ``DROP_OLDEST`` for live kinds, ``BLOCK`` for files.

    Example:
        >>> cams = [ThreadedSource(AvSource(url)) for url in urls]
        >>> for cam in cams:
        ...     cam.open()
    """

    def __init__(
        self,
        inner: Source,
        *,
        queue_size: int | None = None,
        overflow: Overflow | None = None,
    ) -> None:
        live = getattr(inner, "kind", SourceKind.FILE).is_live
        self.inner = inner
        self.stream_id = inner.stream_id
        self.stats = SourceStats()
        self._queue = FrameQueue(
            queue_size or (LIVE_QUEUE_SIZE if live else FILE_QUEUE_SIZE),
            overflow or (Overflow.DROP_OLDEST if live else Overflow.BLOCK),
        )
        self._closing = threading.Event()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start the thread and wait until the inner source opened (its errors raise here)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.stream_id}: already open")
        self._thread = threading.Thread(
            target=self._run, name=f"fqm-decode-{self.stream_id}", daemon=True
        )
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    def _run(self) -> None:
        try:
            self.inner.open()
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            for frame in self.inner:
                if self._closing.is_set() or not self._queue.put(frame):
                    break
            self._queue.finish()
        except BaseException as exc:  # handed to the consumer, raised from its next read
            self._queue.finish(exc)
        finally:
            self.inner.close()

    def close(self) -> None:
        self._closing.set()
        self._queue.discard()
        if self._thread is not None:
            self._thread.join(CLOSE_JOIN_S)
        self._refresh_stats()

    def frames(self) -> Iterator[Frame]:
        if self._thread is None:
            raise RuntimeError("open the source (or use it as a context manager) before reading")
        return self._iterate()

    def _iterate(self) -> Iterator[Frame]:
        for frame in drain(self._queue, self._refresh_stats):
            self.stats.frames += 1
            yield frame

    def _refresh_stats(self) -> None:
        """Copy the inner source's decode time, skips, corrupt packets and decoder."""
        inner, stats = self.inner.stats, self.stats
        stats.dropped = self._queue.dropped
        stats.skipped, stats.decode_seconds = inner.skipped, inner.decode_seconds
        stats.corrupt_packets = inner.corrupt_packets
        stats.decoder, stats.hwaccel, stats.hwaccel_note = (
            inner.decoder,
            inner.hwaccel,
            inner.hwaccel_note,
        )
