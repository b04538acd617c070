"""``LockedSink``: one sink shared by every stream thread, one record group at a time."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from monitor.delivery.record import Record


class Sink(Protocol):
    def publish(self, record: Record) -> None: ...
    def flush(self, timeout_s: float | None = None) -> bool: ...
    def close(self, timeout_s: float | None = None) -> None: ...


class LockedSink:
    """Serialises ``publish`` of whole record groups (a crop and its best-frame event).

    ``JsonlSink.publish`` takes its own lock, but ``KafkaSink.publish`` assigns the sequence
    number under its lock and calls the producer outside it, so two threads could hand their
    records over out of sequence order; and a crop must stay next to its event. One lock
    here keeps each group together and in order. Publishing is quick (a write or a hand-off
    to the producer's accumulator), so the lock is held briefly.
    """

    def __init__(self, sink: Sink, where: str) -> None:
        self.sink = sink
        self.where = where
        self._lock = threading.Lock()
        self.events = 0
        self.crops = 0

    def publish_all(self, records: Sequence[Record], events: int = 1) -> None:
        with self._lock:
            for record in records:
                self.sink.publish(record)
            self.events += events
            self.crops += len(records) - events

    def flush(self, timeout_s: float | None = None) -> bool:
        with self._lock:
            return self.sink.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        with self._lock:
            self.sink.close(timeout_s)
