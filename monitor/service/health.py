"""Liveness and readiness of ``fqm run``, computed from one service snapshot (pure functions).

Liveness (``/healthz``) fails only for what a restart fixes: the service loop stopped
beating, the engine's batcher thread died, the sink failed for good, a stream's worker thread
vanished without reporting. Readiness (``/readyz``) fails whenever the service is not doing
its whole job now: a live stream not up, a stream that failed, the engine or sink not open,
the sink spooling instead of delivering, a shutdown in progress. A camera that is down makes
the service unready, never unlive: restarting would not bring the camera back, and would
interrupt the other streams. See docs/observability.md for what orchestrators should do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from monitor.service.snapshots import ServiceSnapshot, SinkSnapshot, StreamSnapshot


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds of the checks.

    Attributes:
        heartbeat_timeout_s: the service loop not having run for this long fails liveness.
    """

    heartbeat_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.heartbeat_timeout_s > 0:
            raise ValueError(f"heartbeat_timeout_s must be > 0, got {self.heartbeat_timeout_s}")


@dataclass(frozen=True)
class Check:
    """One named check, whether it passed, and why (in words, for an operator)."""

    name: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class HealthReport:
    """The checks of one probe; ``ok`` when all pass. ``kind`` is ``live`` or ``ready``."""

    kind: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        if self.kind == "live":
            return "ok" if self.ok else "unhealthy"
        return "ready" if self.ok else "unready"

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "checks": [{"name": c.name, "ok": c.ok, "reason": c.reason} for c in self.checks],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode() + b"\n"


def liveness(snap: ServiceSnapshot, settings: HealthSettings | None = None) -> HealthReport:
    """Whether the process should be restarted (``ok`` False: yes). See the module docstring."""
    settings = settings or HealthSettings()
    checks = [_heartbeat(snap, settings)]
    e = snap.engine
    if e is None:
        checks.append(Check("engine", True, "not opened yet"))
    elif e.alive:
        checks.append(Check("engine", True, "batcher running"))
    elif e.closing or snap.stopping:
        checks.append(Check("engine", True, "closed for the shutdown"))
    else:
        checks.append(Check("engine", False, "the batcher thread died"))
    checks.append(_sink_alive(snap.sink, snap.stopping))
    for s in snap.streams:
        if s.worker == "crashed":
            checks.append(_stream_check(s, False, "worker thread died without reporting"))
        else:
            checks.append(_stream_check(s, True, f"worker {s.worker}"))
    return HealthReport("live", tuple(checks))


def readiness(snap: ServiceSnapshot) -> HealthReport:
    """Whether the service does its whole job now. See the module docstring."""
    checks = []
    if snap.stopping:
        checks.append(Check("service", False, "shutting down"))
    if not snap.streams:
        checks.append(Check("streams", False, "no streams"))
    checks.extend(_stream_ready(s) for s in snap.streams)
    e = snap.engine
    if e is None:
        checks.append(Check("engine", False, "not opened yet"))
    elif not e.alive:
        checks.append(Check("engine", False, "the batcher thread is not running"))
    else:
        checks.append(Check("engine", True, f"queue {e.queue_depth}/{e.queue_limit}"))
    checks.append(_sink_ready(snap.sink))
    return HealthReport("ready", tuple(checks))


def _heartbeat(snap: ServiceSnapshot, settings: HealthSettings) -> Check:
    age = snap.heartbeat_age_s
    if age is None:
        return Check("service loop", True, "no heartbeat reported")
    if snap.stopping:
        return Check("service loop", True, f"shutting down (last beat {age:.1f} s ago)")
    limit = settings.heartbeat_timeout_s
    if age > limit:
        return Check("service loop", False, f"no heartbeat for {age:.1f} s (limit {limit:g} s)")
    return Check("service loop", True, f"last beat {age:.1f} s ago")


def _stream_check(s: StreamSnapshot, ok: bool, reason: str) -> Check:
    return Check(f"stream {s.stream_id}", ok, reason)


def _stream_ready(s: StreamSnapshot) -> Check:
    if s.worker == "crashed":
        return _stream_check(s, False, "worker thread died without reporting")
    if s.worker == "failed":
        return _stream_check(s, False, s.reason or "failed")
    if s.worker == "ended":  # a file read to its end (or max frames): its job is done
        return _stream_check(s, True, f"ended: {s.reason}" if s.reason else "ended")
    if s.state == "up":
        return _stream_check(s, True, s.reason or "up")
    return _stream_check(s, False, s.reason or s.state)


def _sink_alive(sink: SinkSnapshot | None, stopping: bool) -> Check:
    if sink is None:
        return Check("sink", True, "not opened yet")
    if sink.failure:
        return Check("sink", False, f"failed: {sink.failure}")
    if sink.closed:
        if stopping:
            return Check("sink", True, "closed for the shutdown")
        return Check("sink", False, "closed while the service runs")
    return Check("sink", True, "open")


def _sink_ready(sink: SinkSnapshot | None) -> Check:
    if sink is None:
        return Check("sink", False, "not opened yet")
    if sink.failure:
        return Check("sink", False, f"failed: {sink.failure}")
    if sink.closed:
        return Check("sink", False, "closed")
    if sink.spooling:
        why = "replaying to the broker" if sink.connected else "broker unreachable"
        return Check(
            "sink",
            False,
            f"spooling {sink.spool_records} records ({sink.delivery_lag_s:.0f} s behind): {why}",
        )
    return Check("sink", True, "delivering" if sink.kind == "kafka" else "writing")
