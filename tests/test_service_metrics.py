"""Service metrics: snapshots from the real batcher, sinks and status events, and the
Prometheus exposition parsed back with prometheus_client's own parser.

The expected values are read from the snapshots the test builds (two streams with different
counts), so a metric wired to the wrong field or stream fails. The Kafka sink is a real one
whose broker port is closed: it spools, as it does in an outage.
"""

from __future__ import annotations

import math
import socket
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from engines.batcher import BatcherConfig, MicroBatcher
from engines.quality_engine import EngineInfo, QualityScores
from monitor.delivery.jsonl_sink import JsonlSink
from monitor.delivery.kafka_sink import KafkaSink, KafkaSinkConfig
from monitor.delivery.record import Record
from monitor.events.model import FaceObservationEvent, QualityScore
from monitor.service.metrics import SCORE_BUCKETS, STAGES, ServiceMetrics
from monitor.service.sink import LockedSink
from monitor.service.snapshots import (
    EngineSnapshot,
    FrameRate,
    Heartbeat,
    ServiceSnapshot,
    SinkSnapshot,
    StreamSnapshot,
    StreamStatus,
    engine_snapshot,
    sink_snapshot,
    stream_snapshot,
)
from monitor.service.stream import StreamProgress
from pipelines.events import Connecting, Down, Reconnecting, Stalled, Up
from pipelines.source import SourceStats
from tests.support.faces import generic_landmarks68

LOBBY = StreamSnapshot(
    "lobby", "up", "up: 640x480", frames=1200, frames_dropped=7, frames_skipped=600,
    corrupt_packets=3, reconnects=2, fps=24.5, faces_detected=310, faces_looked=80,
    faces_scored=41, faces_dropped=5, tracks=9, last_frame_age_s=0.04,
)  # fmt: skip
GATE = StreamSnapshot(
    "gate", "reconnecting", "reconnecting (attempt 3): connection refused", frames=55,
    reconnects=4, faces_detected=12, faces_scored=2, tracks=1,
)  # fmt: skip
ENGINE = EngineSnapshot(
    alive=True, queue_depth=5, queue_limit=64, max_batch=8, submitted=60, completed=50,
    failed=2, rejected=6, cancelled=1, batches=11, occupancy=0.625, latency_p50_s=0.2,
    latency_p99_s=0.9,
)  # fmt: skip
SINK = SinkSnapshot(
    "kafka", events=40, crops=6, published=46, delivered=20, errors=(("too_large", 1),),
    spooling=True, spool_records=25, spool_bytes=40_000, in_flight=1, delivery_lag_s=12.5,
    connected=False,
)  # fmt: skip
SNAPSHOT = ServiceSnapshot((LOBBY, GATE), ENGINE, SINK, heartbeat_age_s=0.3)


def scrape(metrics: ServiceMetrics) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}, parsed from the exposition."""
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_exposition_carries_every_stream_counter_and_gauge() -> None:
    samples = scrape(ServiceMetrics(lambda: SNAPSHOT))
    fields = {
        "fqm_stream_frames_total": "frames",
        "fqm_stream_frames_dropped_total": "frames_dropped",
        "fqm_stream_frames_skipped_total": "frames_skipped",
        "fqm_stream_faces_looked_total": "faces_looked",
        "fqm_stream_corrupt_packets_total": "corrupt_packets",
        "fqm_stream_reconnects_total": "reconnects",
        "fqm_stream_faces_detected_total": "faces_detected",
        "fqm_stream_faces_scored_total": "faces_scored",
        "fqm_stream_faces_dropped_total": "faces_dropped",
        "fqm_stream_tracks_total": "tracks",
        "fqm_stream_fps": "fps",
    }
    for stream in (LOBBY, GATE):
        for name, field in fields.items():
            assert value(samples, name, stream=stream.stream_id) == getattr(stream, field), name
        assert value(samples, "fqm_stream_up", stream=stream.stream_id) == (stream.state == "up")
        states = {
            st: value(samples, "fqm_stream_state", stream=stream.stream_id, state=st)
            for st in ("connecting", "up", "stalled", "reconnecting", "down")
        }
        assert states == {st: float(st == stream.state) for st in states}
    assert value(samples, "fqm_stream_last_frame_age_seconds", stream="lobby") == 0.04
    # no frame yet: the age is absent rather than a made-up number
    assert ("fqm_stream_last_frame_age_seconds", (("stream", "gate"),)) not in samples


def test_exposition_carries_engine_sink_and_service() -> None:
    samples = scrape(ServiceMetrics(lambda: SNAPSHOT))
    assert value(samples, "fqm_engine_up") == 1
    assert value(samples, "fqm_engine_queue_depth") == ENGINE.queue_depth
    assert value(samples, "fqm_engine_queue_limit") == ENGINE.queue_limit
    assert value(samples, "fqm_engine_faces_submitted_total") == ENGINE.submitted
    for outcome in ("completed", "failed", "rejected", "cancelled"):
        assert value(samples, "fqm_engine_faces_total", outcome=outcome) == getattr(ENGINE, outcome)
    assert value(samples, "fqm_engine_batches_total") == ENGINE.batches
    assert value(samples, "fqm_engine_batch_occupancy") == ENGINE.occupancy
    assert value(samples, "fqm_engine_batch_latency_seconds", quantile="0.99") == 0.9
    k = {"sink": "kafka"}
    assert value(samples, "fqm_sink_events_total", **k) == SINK.events
    assert value(samples, "fqm_sink_crops_total", **k) == SINK.crops
    assert value(samples, "fqm_sink_records_delivered_total", **k) == SINK.delivered
    assert value(samples, "fqm_sink_errors_total", sink="kafka", reason="too_large") == 1
    assert value(samples, "fqm_sink_spooling", **k) == 1
    assert value(samples, "fqm_sink_spool_records", **k) == SINK.spool_records
    assert value(samples, "fqm_sink_spool_bytes", **k) == SINK.spool_bytes
    assert value(samples, "fqm_sink_delivery_lag_seconds", **k) == SINK.delivery_lag_s
    assert value(samples, "fqm_sink_connected", **k) == 0
    assert value(samples, "fqm_sink_up", **k) == 1
    assert value(samples, "fqm_service_heartbeat_age_seconds") == 0.3
    assert value(samples, "fqm_snapshot_errors_total") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    bare = scrape(ServiceMetrics(ServiceSnapshot, process=False))
    assert ("process_resident_memory_bytes", ()) not in bare
    assert ("fqm_snapshot_errors_total", ()) in bare


def test_values_are_pulled_at_each_scrape() -> None:
    current = [SNAPSHOT]
    metrics = ServiceMetrics(lambda: current[0])
    assert value(scrape(metrics), "fqm_stream_frames_total", stream="lobby") == 1200
    current[0] = replace(SNAPSHOT, streams=(replace(LOBBY, frames=1500), GATE))
    assert value(scrape(metrics), "fqm_stream_frames_total", stream="lobby") == 1500


def test_a_failing_snapshot_is_counted_and_the_scrape_still_answers() -> None:
    def broken() -> ServiceSnapshot:
        raise RuntimeError("worker list changed")

    metrics = ServiceMetrics(broken)
    metrics.observe_stage("decode", 0.002)
    scrape(metrics)
    samples = scrape(metrics)
    assert value(samples, "fqm_snapshot_errors_total") == 2
    assert value(samples, "fqm_stage_seconds_count", stage="decode") == 1
    assert not any(name.startswith("fqm_stream_") for name, _ in samples)


def test_stage_histogram_buckets_what_the_workers_time() -> None:
    metrics = ServiceMetrics(ServiceSnapshot)
    observed = {"faces": [0.03, 0.2, 4.0], "decode": [0.0004], "engine": [0.5]}
    for stage, seconds in observed.items():
        for s in seconds:
            metrics.stage("lobby", stage, s)  # as a ServiceObserver
    samples = scrape(metrics)
    for stage in (*STAGES, "engine"):
        seen = observed.get(stage, [])
        assert value(samples, "fqm_stage_seconds_count", stage=stage) == len(seen)
        assert value(samples, "fqm_stage_seconds_sum", stage=stage) == pytest.approx(sum(seen))
        assert value(samples, "fqm_stage_seconds_bucket", stage=stage, le="0.05") == sum(
            s <= 0.05 for s in seen
        )


def observation(stream_id: str, score: float) -> FaceObservationEvent:
    quality = QualityScore(score=score, variant="dslfiqa", mode="center", backend="torch")
    return FaceObservationEvent(
        stream_id=stream_id,
        producer="fqm-test",
        track_id=1,
        frame_index=3,
        pts=0.12,
        bbox=(10.0, 10.0, 90.0, 90.0),
        detection_score=0.9,
        quality=quality,
    )


def test_events_are_counted_and_observations_feed_the_score_histogram() -> None:
    metrics = ServiceMetrics(ServiceSnapshot)
    for stream_id, score in (("lobby", 0.8), ("lobby", 0.3), ("gate", 0.55)):
        metrics.event(observation(stream_id, score))
    samples = scrape(metrics)
    kind = "face_observation"
    assert value(samples, "fqm_events_total", stream="lobby", kind=kind) == 2
    assert value(samples, "fqm_events_total", stream="gate", kind=kind) == 1
    assert value(samples, "fqm_face_quality_score_count", stream="lobby") == 2
    assert value(samples, "fqm_face_quality_score_sum", stream="lobby") == pytest.approx(1.1)
    assert value(samples, "fqm_face_quality_score_bucket", stream="gate", le="0.55") == 1
    metrics.stream_removed("lobby")
    left = {
        labels for name, labels in scrape(metrics) if name.startswith(("fqm_events", "fqm_face"))
    }
    assert left
    assert all(dict(labels)["stream"] == "gate" for labels in left)


def test_score_histogram_handles_scores_above_one_and_ignores_nan() -> None:
    metrics = ServiceMetrics(ServiceSnapshot)
    scores = [0.12, 0.74, 0.76, 1.1, 1.27, -0.2]
    for s in [*scores, math.nan, math.inf]:
        metrics.observe_score("lobby", s)
    samples = scrape(metrics)
    assert value(samples, "fqm_face_quality_score_count", stream="lobby") == len(scores)
    for le in SCORE_BUCKETS:
        expected = sum(s <= le for s in scores)
        label = str(float(le))
        assert value(samples, "fqm_face_quality_score_bucket", stream="lobby", le=label) == expected
    # the two scores above 1 are told apart instead of piling up in +Inf
    assert value(samples, "fqm_face_quality_score_bucket", stream="lobby", le="1.0") == 4
    assert value(samples, "fqm_face_quality_score_bucket", stream="lobby", le="1.25") == 5


def test_each_service_has_its_own_registry() -> None:
    a, b = ServiceMetrics(lambda: SNAPSHOT), ServiceMetrics(ServiceSnapshot)
    a.observe_stage("emit", 0.001)
    assert value(scrape(a), "fqm_stage_seconds_count", stage="emit") == 1
    assert value(scrape(b), "fqm_stage_seconds_count", stage="emit") == 0
    shared = CollectorRegistry()
    ServiceMetrics(ServiceSnapshot, shared)
    with pytest.raises(ValueError, match="Duplicated"):
        ServiceMetrics(ServiceSnapshot, shared)


# -- adapters ------------------------------------------------------------------------------


def test_status_events_map_to_states_and_masked_reasons() -> None:
    url = "rtsp://admin:hunter2@10.0.0.5/stream1"
    cases = [
        (Connecting("cam", attempt=2, location=url), "connecting", "connecting (attempt 2)"),
        (Up("cam", width=640, height=480, decoder="h264 in software"), "up", "640x480"),
        (Stalled("cam", "no frame for 10.2 s", seconds=10.2), "stalled", "no frame for 10.2 s"),
        (Down("cam", f"cannot open {url}", failures=2), "reconnecting", "after 2 failures"),
        (Down("cam", "refused", failures=10, final=True), "down", "down after 10 failures"),
        (Reconnecting("cam", f"refused by {url}", attempt=3), "reconnecting", "(attempt 3)"),
    ]
    for event, state, words in cases:
        status = StreamStatus.from_event(event)
        assert status.state == state
        assert words in status.reason
        assert "hunter2" not in status.reason


def test_stream_snapshot_reads_progress_source_and_worker() -> None:
    progress = StreamProgress(
        frames=90, faces_seen=30, faces_looked=9, faces_scored=4, faces_dropped=1, tracks=2
    )
    stats = SourceStats(frames=90, skipped=45, dropped=6, reconnects=1, corrupt_packets=2)
    clock = [100.0]
    rate = FrameRate(window_s=2.0, clock=lambda: clock[0])
    for _ in range(10):
        clock[0] += 0.1
        rate.tick()
    clock[0] += 0.5
    up = StreamStatus.now("up", "up: 640x480")
    snap = stream_snapshot("lobby", progress, stats, live=True, alive=True, status=up, rate=rate)
    assert (snap.state, snap.worker, snap.frames, snap.frames_dropped) == ("up", "running", 90, 6)
    assert (snap.frames_skipped, snap.faces_looked) == (45, 9)
    assert (snap.corrupt_packets, snap.reconnects, snap.faces_detected) == (2, 1, 30)
    assert (snap.faces_scored, snap.faces_dropped, snap.tracks) == (4, 1, 2)
    assert snap.fps == pytest.approx(10 / 2.0)
    assert snap.last_frame_age_s == pytest.approx(0.5)

    failed = replace(progress, done=True, error="gave up after 10 attempts: rtsp://a:pw@cam/")
    snap = stream_snapshot("lobby", failed, stats, live=True, alive=False, status=up)
    assert (snap.state, snap.worker) == ("down", "failed")
    assert "gave up" in snap.reason
    assert "pw@" not in snap.reason
    ended = replace(progress, done=True)
    assert stream_snapshot("f", ended, stats, live=False, alive=False).worker == "ended"
    vanished = stream_snapshot("f", progress, stats, live=False, alive=False)
    assert vanished.worker == "crashed"
    # without a StreamStatus, the worker's own status word is the state
    for word, state in (("reconnecting", "reconnecting"), ("starting", "connecting")):
        plain = stream_snapshot("f", replace(progress, status=word), stats, live=True, alive=True)
        assert (plain.state, plain.reason) == (state, state)


class ScoreByPixel:
    """Scores each face by its first pixel (a FaceScorer)."""

    info = EngineInfo(variant="fake", mode="center", backend="fake", device="cpu")

    def score_faces(self, images: Any, landmarks: Any) -> QualityScores:
        n = len(images)
        scores = images[:, 0, 0, 0].astype(np.float32)
        return QualityScores(scores, scores[:, None], np.zeros((n, 1, 2), np.int64), self.info)


def test_engine_snapshot_reads_a_real_batcher() -> None:
    config = BatcherConfig(max_batch=2, max_queue=4, when_full="reject", max_wait_ms=0)
    batcher = MicroBatcher(ScoreByPixel(), config, clock=lambda: 0.0, start=False)
    face, points = np.full((512, 512, 3), 7, np.uint8), generic_landmarks68()
    for _ in range(4):
        batcher.submit(face, points)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="full"):
            batcher.submit(face, points)
    batcher.run_once()
    snap = engine_snapshot(batcher)
    assert (snap.alive, snap.queue_depth, snap.queue_limit, snap.max_batch) == (True, 2, 4, 2)
    assert (snap.submitted, snap.completed, snap.rejected, snap.batches) == (4, 2, 2, 1)
    assert snap.occupancy == 1.0

    threaded = MicroBatcher(ScoreByPixel(), config)
    assert engine_snapshot(threaded).alive
    threaded.close(drain=True, timeout=10)
    closed = engine_snapshot(threaded)
    assert (closed.alive, closed.closing) == (False, True)


def test_jsonl_sink_snapshot(tmp_path) -> None:
    sink = LockedSink(JsonlSink(tmp_path), str(tmp_path))
    sink.publish_all([Record("fqm.faces", b"lobby", b'{"a": 1}')])
    sink.publish_all([Record("fqm.faces", b"", b"{}")])  # no key: counted as failed
    snap = sink_snapshot(sink)
    assert (snap.kind, snap.events, snap.published, snap.delivered) == ("jsonl", 2, 2, 1)
    assert snap.errors == (("no_key", 1),)
    assert not snap.spooling
    assert not snap.closed
    sink.close()
    assert sink_snapshot(sink).closed


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kafka_sink_snapshot_while_the_broker_is_away(tmp_path) -> None:
    config = KafkaSinkConfig(bootstrap_timeout_ms=500, retry_interval_s=30)
    kafka = KafkaSink(f"127.0.0.1:{closed_port()}", tmp_path / "spool", config)
    try:
        sink = LockedSink(kafka, "kafka")
        records = [Record("fqm.faces", b"lobby", b'{"n": %d}' % i) for i in range(3)]
        sink.publish_all(records, events=3)
        clock = kafka._spooling_since + 4.0
        snap = sink_snapshot(sink, clock=lambda: clock)
        assert (snap.kind, snap.events, snap.published, snap.delivered) == ("kafka", 3, 3, 0)
        assert snap.spooling
        assert not snap.connected
        assert snap.spool_records == 3
        assert snap.spool_bytes == sum(r.size for r in records)
        assert snap.delivery_lag_s == pytest.approx(4.0)
        assert not snap.closed
        assert not snap.failure
    finally:
        kafka.close(timeout_s=1)
    assert sink_snapshot(kafka).closed


def test_unknown_sink_is_refused() -> None:
    with pytest.raises(TypeError, match="no snapshot"):
        sink_snapshot(object())


def test_heartbeat_and_frame_rate_follow_their_clock() -> None:
    clock = [50.0]
    beat = Heartbeat(clock=lambda: clock[0])
    clock[0] += 7.0
    assert beat.age_s() == 7.0
    beat.beat()
    assert beat.age_s() == 0.0
    rate = FrameRate(window_s=1.0, clock=lambda: clock[0])
    assert (rate.fps(), rate.last_frame_age_s()) == (0.0, None)
    rate.tick()
    clock[0] += 3.0  # the window has passed: no recent frames; the age keeps growing
    assert rate.last_frame_age_s() == 3.0
    assert rate.fps() == 0.0
    with pytest.raises(ValueError, match="window_s"):
        FrameRate(window_s=0)
