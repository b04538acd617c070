"""Prometheus metrics of ``fqm run``: counters and gauges pulled at scrape time, histograms pushed.

Counters and gauges come from a :class:`~monitor.service.snapshots.ServiceSnapshot` taken
when Prometheus scrapes (:class:`SnapshotCollector`): the service keeps its counters anyway,
so nothing is counted twice and the hot path pays nothing. Only distributions and events
are pushed: :class:`ServiceMetrics` is a ``monitor.service.observe.ServiceObserver``
(``stage`` times go to a histogram; each event is counted by kind, and a face
observation's score goes to the score histogram). Each service has its own
``CollectorRegistry``, so several services (tests) never share metrics. Every metric is
listed in docs/observability.md.

Example:
    >>> metrics = ServiceMetrics(service.snapshot)  # doctest: +SKIP
    >>> metrics.stage("lobby", "faces", 0.031)  # doctest: +SKIP
    >>> metrics.event(face_observation_event)  # doctest: +SKIP
    >>> metrics.exposition()[:40]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.service.snapshots import STREAM_STATES, ServiceSnapshot

log = logging.getLogger(__name__)

#: The stages a stream worker times (``monitor.service.stream.STAGES``, not imported: that
#: module loads the face models' libraries), each exported from the start with a zero count.
#: Other names are accepted too (they come from code, never from input).
STAGES: tuple[str, ...] = ("decode", "faces", "look", "submit", "book", "emit")

#: Event kinds exported from the start (``monitor.events``); others are counted as they come.
EVENT_KINDS: tuple[str, ...] = ("face_observation", "best_frame", "track_summary", "stream_status")

#: Stage latency buckets, seconds: a decode or an emit takes a millisecond, a CPU engine batch
#: seconds.
STAGE_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: Quality score buckets: DSL-FIQA-like scores lie roughly in 0..1 (0.05 steps); 0 catches
#: negative ones, and a few above 1 keep an uncalibrated model's (random weights score up to
#: about 1.3) from all landing in +Inf.
SCORE_BUCKETS: tuple[float, ...] = (
    *(round(0.05 * i, 2) for i in range(21)),
    1.25, 1.5, 2.0, 3.0, 5.0,
)  # fmt: skip


class SnapshotCollector(Collector):
    """Yields every pulled metric family from one ``snapshot()`` call per scrape.

    A failing ``snapshot()`` is logged and counted in ``fqm_snapshot_errors_total``; the scrape
    still answers (with the histograms), so Prometheus sees the failure instead of a gap.
    """

    def __init__(self, snapshot: Callable[[], ServiceSnapshot]) -> None:
        self._snapshot = snapshot
        self._errors = 0
        self._lock = threading.Lock()

    def describe(self) -> list:
        return []  # unchecked collector: families are known only at scrape time

    def collect(self) -> Iterator:
        try:
            snap = self._snapshot()
        except Exception:
            log.exception("metrics: the service snapshot failed")
            with self._lock:
                self._errors += 1
            snap = None
        errors = CounterMetricFamily(
            "fqm_snapshot_errors", "Scrapes whose service snapshot failed (see the log)."
        )
        errors.add_metric([], self._errors)
        yield errors
        if snap is not None:
            yield from _stream_families(snap)
            yield from _engine_families(snap)
            yield from _sink_families(snap)
            yield from _service_families(snap)


def _stream_families(snap: ServiceSnapshot) -> Iterator:
    def counter(name: str, doc: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=["stream"])

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ("stream",)) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=list(labels))

    up = gauge("fqm_stream_up", "1 when the stream delivers frames (state up), else 0.")
    state = gauge(
        "fqm_stream_state", "1 for the stream's current state, 0 for the others.",
        ("stream", "state"),
    )  # fmt: skip
    fps = gauge("fqm_stream_fps", "Frames read per second over the last few seconds.")
    age = gauge("fqm_stream_last_frame_age_seconds", "Seconds since the last frame was read.")
    counters = {
        "frames": counter("fqm_stream_frames", "Frames read."),
        "frames_dropped": counter(
            "fqm_stream_frames_dropped", "Frames dropped because the pipeline lagged (live)."
        ),
        "frames_skipped": counter(
            "fqm_stream_frames_skipped", "Pictures decoded but thinned out by the analysis rate."
        ),
        "corrupt_packets": counter(
            "fqm_stream_corrupt_packets", "Packets the decoder rejected and skipped."
        ),
        "reconnects": counter("fqm_stream_reconnects", "Times the live source reconnected."),
        "faces_detected": counter(
            "fqm_stream_faces_detected", "Confirmed face observations (a face in a frame)."
        ),
        "faces_looked": counter(
            "fqm_stream_faces_looked", "Faces given landmarks: ones the policy might score."
        ),
        "faces_scored": counter("fqm_stream_faces_scored", "Faces the quality engine scored."),
        "faces_dropped": counter(
            "fqm_stream_faces_dropped", "Faces not scored: the engine queue was full (live)."
        ),
        "tracks": counter("fqm_stream_tracks", "Distinct confirmed face tracks."),
    }
    for s in snap.streams:
        up.add_metric([s.stream_id], 1.0 if s.state == "up" else 0.0)
        for name in STREAM_STATES:
            state.add_metric([s.stream_id, name], 1.0 if s.state == name else 0.0)
        fps.add_metric([s.stream_id], s.fps)
        if s.last_frame_age_s is not None:
            age.add_metric([s.stream_id], s.last_frame_age_s)
        for field, family in counters.items():
            family.add_metric([s.stream_id], getattr(s, field))
    yield from (up, state, fps, age, *counters.values())


def _engine_families(snap: ServiceSnapshot) -> Iterator:
    e = snap.engine
    if e is None:
        return
    g = GaugeMetricFamily
    yield g("fqm_engine_up", "1 while the engine's batcher thread runs.", value=float(e.alive))
    yield g("fqm_engine_queue_depth", "Faces waiting for the engine.", value=e.queue_depth)
    yield g("fqm_engine_queue_limit", "Faces the engine queue holds at most.", value=e.queue_limit)
    yield g("fqm_engine_max_batch", "Faces per engine call at most.", value=e.max_batch)
    yield CounterMetricFamily(
        "fqm_engine_faces_submitted", "Faces queued for the engine.", value=e.submitted
    )
    faces = CounterMetricFamily(
        "fqm_engine_faces",
        "Faces offered to the engine, by outcome (rejected: the queue was full, never queued).",
        labels=["outcome"],
    )
    for outcome in ("completed", "failed", "cancelled", "rejected"):
        faces.add_metric([outcome], getattr(e, outcome))
    yield faces
    yield CounterMetricFamily("fqm_engine_batches", "Engine calls (batches).", value=e.batches)
    if not math.isnan(e.occupancy):
        yield g(
            "fqm_engine_batch_occupancy",
            "Mean batch size / max batch over the recent batches.",
            value=e.occupancy,
        )
    latency = g(
        "fqm_engine_batch_latency_seconds",
        "Batch latency (oldest face's wait + inference) over the recent batches, by quantile.",
        labels=["quantile"],
    )
    for q, value in (("0.5", e.latency_p50_s), ("0.99", e.latency_p99_s)):
        if not math.isnan(value):
            latency.add_metric([q], value)
    yield latency


def _sink_families(snap: ServiceSnapshot) -> Iterator:
    s = snap.sink
    if s is None:
        return
    k = [s.kind]

    def family(cls, name: str, doc: str, value: float) -> object:
        f = cls(name, doc, labels=["sink"])
        f.add_metric(k, value)
        return f

    c, g = CounterMetricFamily, GaugeMetricFamily
    yield family(c, "fqm_sink_events", "Events handed to the sink.", s.events)
    yield family(c, "fqm_sink_crops", "Crops (JPEG records) handed to the sink.", s.crops)
    yield family(c, "fqm_sink_records_published", "Records the sink accepted.", s.published)
    yield family(
        c, "fqm_sink_records_delivered",
        "Records written (JSONL) or acknowledged by the broker (Kafka).", s.delivered,
    )  # fmt: skip
    errors = c(
        "fqm_sink_errors", "Records that will never be delivered, by reason.",
        labels=["sink", "reason"],
    )  # fmt: skip
    for reason, count in s.errors:
        errors.add_metric([s.kind, reason], count)
    yield errors
    yield family(g, "fqm_sink_up", "1 while the sink takes records (not closed, not failed).",
                 float(not s.closed and not s.failure))  # fmt: skip
    yield family(g, "fqm_sink_connected", "1 once the broker answered (JSONL: 1).",
                 float(s.connected))  # fmt: skip
    yield family(g, "fqm_sink_spooling", "1 while records go to the disk spool.", float(s.spooling))
    yield family(g, "fqm_sink_spool_records", "Records in the disk spool.", s.spool_records)
    yield family(g, "fqm_sink_spool_bytes", "Payload bytes in the disk spool.", s.spool_bytes)
    yield family(g, "fqm_sink_in_flight_records", "Records sent, not yet acknowledged.",
                 s.in_flight)  # fmt: skip
    yield family(
        g, "fqm_sink_delivery_lag_seconds",
        "Seconds since the sink began spooling (0 while delivering directly).",
        s.delivery_lag_s,
    )  # fmt: skip


def _service_families(snap: ServiceSnapshot) -> Iterator:
    yield GaugeMetricFamily(
        "fqm_service_stopping", "1 while the service shuts down.", value=float(snap.stopping)
    )
    if snap.heartbeat_age_s is not None:
        yield GaugeMetricFamily(
            "fqm_service_heartbeat_age_seconds",
            "Seconds since the service loop last ran.",
            value=snap.heartbeat_age_s,
        )


class ServiceMetrics:
    """One service's metrics: its own registry, the snapshot collector and the histograms.

    Args:
        snapshot: called at each scrape; returns the service's state now.
        registry: where the metrics live; a new ``CollectorRegistry`` by default.
        process: add the ``process_*`` metrics (resident memory, CPU seconds, open files) of
            this process, to see memory grow or CPU saturate.
    """

    def __init__(
        self,
        snapshot: Callable[[], ServiceSnapshot],
        registry: CollectorRegistry | None = None,
        *,
        process: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(SnapshotCollector(snapshot))
        if process:
            ProcessCollector(registry=self.registry)
        self._stage = Histogram(
            "fqm_stage_seconds",
            "Seconds one frame spends in each stage of its stream's worker (see "
            "docs/observability.md).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self._stages = {stage: self._stage.labels(stage) for stage in STAGES}
        self._score = Histogram(
            "fqm_face_quality_score",
            "Quality scores of the faces scored, by stream.",
            ["stream"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self._events = Counter(
            "fqm_events",
            "Events handed to the sink, by stream and kind.",
            ["stream", "kind"],
            registry=self.registry,
        )
        self._kinds: set[str] = set(EVENT_KINDS)

    # -- ServiceObserver -------------------------------------------------------------------

    def stage(self, stream_id: str, stage: str, seconds: float) -> None:
        """A stream spent ``seconds`` in ``stage`` (the histogram is not per stream)."""
        self.observe_stage(stage, seconds)

    def event(self, event: object) -> None:
        """Count ``event`` by stream and kind; a face observation's score joins the histogram."""
        kind = getattr(event, "kind", "") or type(event).__name__
        stream_id = getattr(event, "stream_id", "")
        self._kinds.add(kind)
        self._events.labels(stream_id, kind).inc()
        if kind == "face_observation":
            self.observe_score(stream_id, event.quality.score)  # type: ignore[attr-defined]

    # -- direct ----------------------------------------------------------------------------

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record that one item took ``seconds`` in ``stage``."""
        child = self._stages.get(stage)
        if child is None:
            child = self._stages[stage] = self._stage.labels(stage)
        child.observe(seconds)

    def observe_score(self, stream_id: str, score: float) -> None:
        """Record one face's quality score; ``nan`` and infinities are ignored."""
        if math.isfinite(score):
            self._score.labels(stream_id).observe(score)

    def stream_removed(self, stream_id: str) -> None:
        """Drop a removed stream's pushed series (a SIGHUP reload that removed a camera)."""
        for kind in list(self._kinds):
            _remove(self._events, stream_id, kind)
        _remove(self._score, stream_id)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what ``/metrics`` serves by default)."""
        return generate_latest(self.registry)


def _remove(metric, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never observed
        metric.remove(*labels)
