"""A stream's health from its ``stream_status`` events: timeline, uptime, counters.

Status events are state changes (and, for live sources, the supervisor's reports); their
counters are totals since the producer started, so the last event of each producer holds
them. Durations are summed as the events arrive, so the uptime is exact even when the
timeline kept for drawing is capped.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from monitor.events import StreamStatusEvent
from monitor.report.model import StatusSpan, StreamHealth
from pipelines.urls import mask_url

#: Spans kept for the timeline (the newest); older ones still count in the uptime.
MAX_SPANS = 500
#: Distinct (state, reason) pairs listed.
MAX_REASONS = 12


class HealthBuilder:
    """Feed a stream's status events in order (:meth:`add`), then :meth:`build`."""

    def __init__(self) -> None:
        self._spans: list[StatusSpan] = []
        self._dropped = 0
        self._open: tuple[str, datetime, str] | None = None
        self._durations: Counter[str] = Counter()
        self._reconnects = 0
        self._totals: dict[str, tuple[int, int, int]] = {}
        self._fps: float | None = None
        self._reasons: Counter[tuple[str, str]] = Counter()
        self._last_reason = ""

    def add(self, event: StreamStatusEvent) -> None:
        state, at, reason = event.state, event.wall_time, mask_url(event.reason)
        if self._open is None or self._open[0] != state:
            if state == "reconnecting":
                self._reconnects += 1
            self._close(at)
            self._open = (state, at, reason)
        self._totals[event.producer] = (
            event.frames_decoded,
            event.frames_dropped,
            event.corrupt_packets,
        )
        if event.fps is not None:
            self._fps = event.fps
        if reason:
            key = (state, reason)
            if key in self._reasons or len(self._reasons) < MAX_REASONS:
                self._reasons[key] += 1
        self._last_reason = reason

    def _close(self, end: datetime) -> None:
        if self._open is None:
            return
        state, start, reason = self._open
        end = max(end, start)
        self._durations[state] += (end - start).total_seconds()
        self._spans.append(StatusSpan(state, start, end, reason))
        if len(self._spans) > MAX_SPANS:
            self._spans.pop(0)
            self._dropped += 1

    def build(self, last_time: datetime | None) -> StreamHealth:
        """The health, with the open span ending at ``last_time`` (the stream's last event)."""
        last_state = self._open[0] if self._open else None
        if self._open is not None:
            state, start, _ = self._open
            self._close(start if state == "down" or last_time is None else last_time)
            self._open = None
        total = sum(self._durations.values())
        uptime = self._durations["up"] / total if total > 0 else None
        decoded = sum(t[0] for t in self._totals.values())
        dropped = sum(t[1] for t in self._totals.values())
        corrupt = sum(t[2] for t in self._totals.values())
        return StreamHealth(
            spans=tuple(self._spans),
            spans_dropped=self._dropped,
            uptime=uptime,
            reconnects=self._reconnects,
            frames_decoded=decoded,
            frames_dropped=dropped,
            corrupt_packets=corrupt,
            fps=self._fps,
            last_state=last_state,
            last_reason=self._last_reason,
            reasons=tuple((s, r, n) for (s, r), n in self._reasons.most_common()),
        )
