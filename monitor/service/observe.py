"""``ServiceObserver``: how measurements leave the service (metrics, benchmarks) without the
service knowing who listens. Called on the stream threads: implementations must be quick
and thread-safe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.events import Event


class ServiceObserver(Protocol):
    def stage(self, stream_id: str, stage: str, seconds: float) -> None:
        """A stream spent ``seconds`` in ``stage`` (``monitor.service.stream.STAGES``)."""

    def event(self, event: Event) -> None:
        """``event`` was handed to the sink."""

    def stream_removed(self, stream_id: str) -> None:
        """The stream was removed (a reload): forget what is kept per stream."""


class NullObserver:
    """Listens to nothing."""

    def stage(self, stream_id: str, stage: str, seconds: float) -> None:
        pass

    def event(self, event: Event) -> None:
        pass

    def stream_removed(self, stream_id: str) -> None:
        pass


class Observers:
    """Several observers as one."""

    def __init__(self, observers: Sequence[ServiceObserver]) -> None:
        self.observers = tuple(observers)

    def stage(self, stream_id: str, stage: str, seconds: float) -> None:
        for o in self.observers:
            o.stage(stream_id, stage, seconds)

    def event(self, event: Event) -> None:
        for o in self.observers:
            o.event(event)

    def stream_removed(self, stream_id: str) -> None:
        for o in self.observers:
            o.stream_removed(stream_id)


NULL_OBSERVER = NullObserver()
