"""``fqm bench sink``: events/s, MB/s and CPU per 1,000 events through fqm's sinks.

A realistic stream of events is built first with :mod:`monitor.events` (outside the
measurement): face observations with signals, round-robin over a few streams and tracks;
every ``best_every``-th observation also a best-frame update with an inline JPEG crop (two
records: the crop, then the event), and every ``summary_every``-th a track summary. Then,
for each sink, the records are published and the sink flushed: wall time and process CPU
time (every thread: kafka-python's sender counts) are measured around exactly that.

Goals (issue 9): at least :data:`GOAL_KAFKA_EVENTS_PER_S` events/s to a local broker, and at
a 720p30 stream's event rate (:data:`OBSERVATIONS_PER_S` scored faces/s, plus the best-frame
and summary events the mix adds) the sink takes under :data:`GOAL_CORE_PERCENT` % of a core.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.delivery.jsonl_sink import JsonlSink
from monitor.delivery.record import Record
from monitor.events import (
    BestFrame,
    BestFrameEvent,
    CurvePoint,
    FaceObservationEvent,
    FaceSignals,
    QualityCurve,
    QualityScore,
    Topics,
    TrackSummaryEvent,
    attach_crop,
    encode_crop,
    to_records,
    utc_now,
)
from monitor.kafka_bootstrap import Bootstrap, parse_bootstrap

#: A local broker must take at least this many events/s.
GOAL_KAFKA_EVENTS_PER_S = 5_000
#: At a 720p30 stream's event rate the sink must take less than this share of one core.
GOAL_CORE_PERCENT = 10.0
#: Scored face observations per second of a 720p30 stream (one face, every frame scored).
OBSERVATIONS_PER_S = 30.0


@dataclass(frozen=True)
class EventMix:
    """What the benchmark publishes.

    Attributes:
        events: events in all (observations, best-frame updates, summaries).
        streams: cameras the events are spread over (record keys).
        best_every: one best-frame update (with a JPEG crop) every this many observations.
        summary_every: one track summary (a track ends) every this many observations.
        distinct_crops: different JPEGs cycled through (encoded once).
    """

    events: int = 20_000
    streams: int = 4
    best_every: int = 30
    summary_every: int = 150
    distinct_crops: int = 4


@dataclass
class SinkResult:
    """One sink's measurement."""

    sink: str
    events: int
    records: int
    bytes: int
    seconds: float
    cpu_seconds: float
    events_per_s: float
    records_per_s: float
    mb_per_s: float
    cpu_ms_per_1000_events: float
    core_percent_at_720p30: float
    meets_goals: dict[str, bool | None]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class SinkBenchReport:
    """Everything ``fqm bench sink`` prints."""

    topics_prefix: str  # the records' topics: PREFIX.faces, PREFIX.best, ...
    jsonl_out: str | None  # where the JSONL sink's output was kept, if it was
    mix: dict[str, int]
    records: int
    bytes: int
    crop_bytes_mean: int
    events_per_observation: float
    goals: dict[str, float]
    machine: dict[str, str]
    sinks: list[SinkResult]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _face_image(seed: int) -> np.ndarray:
    """A 512x512 face-like picture (smooth shading plus sensor noise): its JPEG is about the
    size of a real aligned face's (tens of KB at quality 90), which a flat image is not."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512] / 512.0
    face = np.exp(-((x - 0.5) ** 2 / 0.08 + (y - 0.5) ** 2 / 0.12))
    base = np.stack([170 * face + 40, 130 * face + 50, 110 * face + 60], axis=-1)
    noise = rng.normal(0.0, 4.0, size=(512, 512, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def build_records(mix: EventMix, topics: Topics) -> tuple[list[Record], int, float]:
    """The records to publish, the number of events, and events per observation."""
    crops = [encode_crop(_face_image(i)) for i in range(mix.distinct_crops)]
    quality = QualityScore(score=0.5, variant="dslfiqa", mode="center", backend="torch")
    producer = "bench:1"
    records: list[Record] = []
    events = observations = 0
    track = 0
    while events < mix.events:
        stream = f"bench-cam-{observations % mix.streams}"
        track_id = track + observations % mix.streams
        score = QualityScore(
            score=round(0.3 + 0.6 * ((observations * 37) % 100) / 100, 4),
            variant=quality.variant,
            mode=quality.mode,
            backend=quality.backend,
        )
        box = (400.0 + observations % 50, 200.0, 540.0 + observations % 50, 380.0)
        common = dict(
            stream_id=stream,
            producer=producer,
            wall_time=utc_now(),
            track_id=track_id,
            frame_index=observations,
            pts=observations / 30.0,
            bbox=box,
            detection_score=0.95,
            quality=score,
        )
        signals = FaceSignals(
            face_size=140.0,
            interocular=90.0,
            yaw=-5.0,
            pitch=3.0,
            roll=1.0,
            sharpness=400.0,
            brightness=130.0,
            contrast=48.0,
        )
        records += to_records(FaceObservationEvent(**common, signals=signals), topics)
        events += 1
        observations += 1
        if observations % mix.best_every == 0 and events < mix.events:
            crop = crops[(observations // mix.best_every) % len(crops)]
            event = BestFrameEvent(**common, previous_score=0.4, crop=attach_crop(crop))
            records += to_records(event, topics, crop=crop)
            events += 1
        if observations % mix.summary_every == 0 and events < mix.events:
            scored = mix.summary_every // mix.streams
            first = observations - mix.summary_every
            points = [
                CurvePoint(frame_index=first + k * mix.streams, pts=None, score=0.3 + k / 200)
                for k in range(scored)
            ]
            best = BestFrame(
                frame_index=observations - 1,
                pts=None,
                bbox=box,
                detection_score=0.95,
                quality=score,
                crop=None,
            )
            summary = TrackSummaryEvent(
                stream_id=stream,
                producer=producer,
                track_id=track_id,
                first_frame=first,
                last_frame=observations - 1,
                start_pts=None,
                end_pts=None,
                start_wall_time=utc_now(),
                end_wall_time=utc_now(),
                frames_seen=mix.summary_every,
                observations_scored=scored,
                best=best,
                curve=QualityCurve.from_points(points),
            )
            records += to_records(summary, topics)
            events += 1
            track += mix.streams
    return records, events, events / max(1, observations)


def _measure(name: str, sink: Any, records: list[Record], events: int) -> tuple[float, float]:
    """(wall s, process CPU s) of publishing ``records`` and flushing."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    for record in records:
        sink.publish(record)
    if not sink.flush(timeout_s=300):
        raise RuntimeError(f"the {name} sink did not flush within 300 s")
    return time.perf_counter() - t0, time.process_time() - cpu0


def _result(
    name: str,
    records: list[Record],
    events: int,
    per_observation: float,
    seconds: float,
    cpu_s: float,
    stats: dict[str, Any],
) -> SinkResult:
    size = sum(r.size for r in records)
    cpu_ms_per_1000 = 1e6 * cpu_s / events
    # CPU ms per second of video, as a share of one core's 1,000 ms.
    core_percent = 100 * OBSERVATIONS_PER_S * per_observation * cpu_ms_per_1000 / 1e6
    events_per_s = events / seconds
    return SinkResult(
        sink=name,
        events=events,
        records=len(records),
        bytes=size,
        seconds=round(seconds, 4),
        cpu_seconds=round(cpu_s, 4),
        events_per_s=round(events_per_s, 1),
        records_per_s=round(len(records) / seconds, 1),
        mb_per_s=round(size / seconds / 1e6, 2),
        cpu_ms_per_1000_events=round(cpu_ms_per_1000, 2),
        core_percent_at_720p30=round(core_percent, 3),
        meets_goals={
            "events_per_s": events_per_s >= GOAL_KAFKA_EVENTS_PER_S if name == "kafka" else None,
            "core_percent_at_720p30": core_percent < GOAL_CORE_PERCENT,
        },
        stats=stats,
    )


def bench_jsonl(records: list[Record], events: int, per_obs: float, out: Path) -> SinkResult:
    """Publish through a :class:`JsonlSink` writing to ``out`` (a fresh folder)."""
    sink = JsonlSink(out)
    try:
        seconds, cpu_s = _measure("jsonl", sink, records, events)
    finally:
        sink.close()
    stats = asdict(sink.stats())
    return _result("jsonl", records, events, per_obs, seconds, cpu_s, stats)


def bench_kafka(
    records: list[Record], events: int, per_obs: float, bootstrap: Bootstrap, topics: Topics
) -> SinkResult:
    """Publish through a :class:`KafkaSink` (default settings: lz4, linger 10 ms, acks=all)
    to fresh single-partition topics, deleted afterwards."""
    from kafka import KafkaAdminClient

    from monitor.delivery.kafka_sink import KafkaSink, TopicSpec, ensure_topics

    parsed = bootstrap
    names = sorted({r.topic for r in records})
    ensure_topics(parsed, [TopicSpec(n, partitions=1, replication_factor=1) for n in names])
    spool = Path(tempfile.mkdtemp(prefix="fqm-bench-spool-"))
    try:
        sink = KafkaSink(parsed, spool)
        try:
            for name in names:  # metadata and connections first, outside the measurement
                sink.publish(Record(name, b"warm-up", b"{}"))
            sink.flush(timeout_s=60)
            before = sink.stats()
            seconds, cpu_s = _measure("kafka", sink, records, events)
        finally:
            sink.close(timeout_s=30)
        after = sink.stats()
        stats = {
            "published": after.published - before.published,
            "delivered": after.delivered - before.delivered,
            "spooled": after.spooled - before.spooled,
            "failed": dict(after.failed),
        }
        return _result("kafka", records, events, per_obs, seconds, cpu_s, stats)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        admin = KafkaAdminClient(**parsed.client_kwargs(), client_id="fqm-bench-cleanup")
        try:
            admin.delete_topics(names, raise_errors=False)
        except Exception:  # cleanup only: leftover bench topics are harmless
            pass
        finally:
            admin.close()


def bench_sink(
    mix: EventMix | None = None, bootstrap: Bootstrap | str | None = None, out: Path | None = None
) -> SinkBenchReport:
    """Measure the JSONL sink (into ``out``, or a temporary folder removed afterwards) and,
    with ``bootstrap``, the Kafka sink (topics ``fqm-bench-<random>.*``, deleted after)."""
    mix = mix or EventMix()
    prefix = f"fqm-bench-{uuid.uuid4().hex[:8]}"
    topics = Topics.prefixed(prefix)
    if isinstance(bootstrap, str):
        bootstrap = parse_bootstrap(bootstrap)
    records, events, per_obs = build_records(mix, topics)
    crop_sizes = [r.size for r in records if r.topic == topics.crops]
    results = []
    folder = out if out is not None else Path(tempfile.mkdtemp(prefix="fqm-bench-jsonl-"))
    try:
        results.append(bench_jsonl(records, events, per_obs, folder))
    finally:
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)
    if bootstrap is not None:
        results.append(bench_kafka(records, events, per_obs, bootstrap, topics))
    return SinkBenchReport(
        topics_prefix=prefix,
        jsonl_out=None if out is None else str(out),
        mix=asdict(mix),
        records=len(records),
        bytes=sum(r.size for r in records),
        crop_bytes_mean=int(np.mean(crop_sizes)) if crop_sizes else 0,
        events_per_observation=round(per_obs, 4),
        goals={
            "kafka_events_per_s_min": GOAL_KAFKA_EVENTS_PER_S,
            "core_percent_at_720p30_max": GOAL_CORE_PERCENT,
            "observations_per_s_720p30": OBSERVATIONS_PER_S,
        },
        machine={
            "machine": platform.machine(),
            "python": platform.python_version(),
            "system": platform.system(),
        },
        sinks=results,
    )


def format_report(r: SinkBenchReport) -> str:
    """The report as a text table with the goals."""
    lines = [
        f"{r.mix['events']} events ({r.records} records, {r.bytes / 1e6:.1f} MB; a best-frame "
        f"update with a {r.crop_bytes_mean / 1e3:.0f} KB crop every {r.mix['best_every']} "
        f"observations, a summary every {r.mix['summary_every']}) over {r.mix['streams']} streams",
        f"{'sink':<6} {'events/s':>9} {'MB/s':>7} {'CPU ms/1k ev':>12} {'% core @720p30':>15}",
    ]
    for s in r.sinks:
        lines.append(
            f"{s.sink:<6} {s.events_per_s:>9.0f} {s.mb_per_s:>7.1f} "
            f"{s.cpu_ms_per_1000_events:>12.1f} {s.core_percent_at_720p30:>15.2f}"
        )
    lines.append(
        f"goals: >= {GOAL_KAFKA_EVENTS_PER_S} events/s to a local broker; "
        f"< {GOAL_CORE_PERCENT:g} % of a core at {OBSERVATIONS_PER_S:g} observations/s"
    )
    for s in r.sinks:
        verdicts = [
            f"{goal}: {'met' if ok else 'NOT met'}"
            for goal, ok in s.meets_goals.items()
            if ok is not None
        ]
        lines.append(f"  {s.sink}: " + ", ".join(verdicts))
    if all(s.sink != "kafka" for s in r.sinks):
        lines.append("  kafka: not measured (give --bootstrap HOST:PORT)")
    if r.jsonl_out is not None:
        lines.append(
            f"JSONL output kept in {r.jsonl_out}; read it back with: fqm consume --from-dir "
            f"{r.jsonl_out} --topics-prefix {r.topics_prefix}"
        )
    return "\n".join(lines)
