"""What a sink carries, and what every sink promises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Record:
    """One message for a topic: the unit every sink delivers, in order per ``key``.

    Attributes:
        topic: the logical topic name (a Kafka topic; a file name for the local sink).
        key: the partitioning key; fqm uses the stream (camera) id, so that one camera's
            records stay in order in one partition.
        value: the payload (a JSON event, or a JPEG crop).
        headers: small metadata (content type, schema version, event id), as Kafka headers.
    """

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    @property
    def size(self) -> int:
        """Bytes on the wire, roughly: what counts against the broker's message limit."""
        return len(self.key) + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)


class SinkClosedError(RuntimeError):
    """``publish`` after ``close`` (or after a stop was requested by a signal handler)."""


class Sink(Protocol):
    """Delivers records. ``publish`` never blocks for long and never drops silently: a record
    is delivered, spooled, or counted as failed with a reason. ``flush`` waits until every
    record published so far is delivered or spooled (or ``timeout_s`` passes, returning
    False). ``close`` flushes, then releases the sink."""

    def publish(self, record: Record) -> None: ...

    def flush(self, timeout_s: float | None = None) -> bool: ...

    def close(self, timeout_s: float | None = None) -> None: ...
