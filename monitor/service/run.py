"""``Service``: the process-level runner: one engine and batcher, one sink, a worker per stream.

Shutdown order (``close``): stop the sources first (workers end their tracks and publish
the summaries), then drain the batcher, then flush and close the sink last, each within
what is left of the deadline.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from engines.batcher import BatcherConfig, MicroBatcher
from monitor.events import Topics, default_producer
from monitor.service.emit import EventEmitter, ModelLabel
from monitor.service.observe import NULL_OBSERVER, ServiceObserver
from monitor.service.scoring import StreamScorer
from monitor.service.sink import LockedSink
from monitor.service.stream import StreamProgress, StreamWorker
from monitor.tracks import ScoringBudget
from pipelines.urls import mask_url, source_kind

log = logging.getLogger(__name__)

#: Seed of the random model used when no weights are given.
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class ServiceConfig:
    """What ``fqm run`` runs.

    Attributes:
        sources: files, RTSP/HTTP URLs, devices.
        out: the output folder (JSONL events and crops; the Kafka spool under it).
        weights: DSL-FIQA weights folder; ``None``: ``$FQM_WEIGHTS``, else random weights.
        backend, mode, device: the engine (``engines.backends.open_engine``).
        variant: the model variant; with random weights the shape drawn (``dslfiqa-tiny``
            for fast tests).
        kafka: a ``Bootstrap`` to publish to Kafka instead of JSONL files.
        topics: topic names.
        replication: Kafka topics' replication factor when fqm creates them.
        max_frames: stop each stream after this many frames.
        analyse_fps: frames per second each stream's face stage sees (``None``: all).
        batch: the shared batcher's policy.
        torch_threads: torch's intra-op threads for the process (engine and face warps);
            ``None`` leaves torch's default. See docs/service.md: on small hosts the stream
            threads already use every core, and more torch threads only contend.
    """

    sources: tuple[str, ...]
    out: Path = Path("fqm-out")
    weights: Path | None = None
    backend: str = "torch"
    mode: str = "center"
    device: str = "cpu"
    variant: str | None = None
    kafka: object | None = None
    topics: Topics = field(default_factory=Topics)
    replication: int = 1
    max_frames: int | None = None
    analyse_fps: float | None = None
    batch: BatcherConfig = field(default_factory=lambda: BatcherConfig(max_batch=8, max_queue=64))
    torch_threads: int | None = 1


@dataclass(frozen=True)
class StreamSummary:
    stream_id: str
    location: str
    frames: int
    faces_seen: int
    faces_scored: int
    faces_dropped: int
    tracks: int
    best_score: float | None
    events: dict[str, int]
    error: str


@dataclass(frozen=True)
class RunSummary:
    streams: tuple[StreamSummary, ...]
    events_written: int
    crops_written: int
    where: str
    model: ModelLabel
    seconds: float
    clean: bool

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.streams)


def open_model(config: ServiceConfig):
    """The engine and its label: the given (or ``$FQM_WEIGHTS``) weights, else random ones."""
    from engines.backends import open_engine
    from engines.weights import WEIGHTS_ENV, check_device

    weights = config.weights
    if weights is None and os.environ.get(WEIGHTS_ENV, "").strip():
        weights = Path(os.environ[WEIGHTS_ENV].strip())
    if weights is not None:
        engine = open_engine(weights, config.backend, mode=config.mode, variant=config.variant)
        info = engine.info
        return engine, ModelLabel(info.variant, info.mode, info.backend, False, str(weights))
    from engines.dslfiqa.random_weights import build_random

    variant = config.variant or "dslfiqa"
    model = build_random(variant, seed=RANDOM_WEIGHTS_SEED, device=check_device(config.device))
    engine = open_engine(model, config.backend, mode=config.mode, variant=variant)
    info = engine.info
    note = f"random {variant}-shaped weights (seed {RANDOM_WEIGHTS_SEED})"
    return engine, ModelLabel(f"{info.variant}-random", info.mode, info.backend, True, note)


def open_sink(config: ServiceConfig) -> LockedSink:
    """JSONL files in ``out``, or Kafka (topics ensured first) with its spool in ``out``."""
    config.out.mkdir(parents=True, exist_ok=True)
    if config.kafka is None:
        from monitor.delivery.jsonl_sink import JsonlSink

        return LockedSink(JsonlSink(config.out), str(config.out))
    from dataclasses import fields

    from monitor.delivery.kafka_sink import KafkaSink, TopicSpec, ensure_topics

    names = [getattr(config.topics, f.name) for f in fields(config.topics)]
    ensure_topics(
        config.kafka, [TopicSpec(n, replication_factor=config.replication) for n in names]
    )
    sink = KafkaSink(config.kafka, config.out / "spool")
    return LockedSink(sink, f"Kafka {config.kafka} (topics {', '.join(names)})")


def _make_stage():
    """A stream thread's face stage (no landmarker: the scorer looks only at the faces it
    may score) and its landmarker; neither is thread-safe."""
    from monitor.faces import FaceDetector, FaceLandmarker, FaceStage

    detector = FaceDetector()
    return FaceStage(detector), FaceLandmarker(), detector.close


class Service:
    """Opens everything in ``start``; ``wait`` follows the workers; ``close`` shuts down."""

    def __init__(self, config: ServiceConfig, observer: ServiceObserver = NULL_OBSERVER) -> None:
        self.config = config
        self.observer = observer
        self.engine = None
        self.label: ModelLabel | None = None
        self.batcher: MicroBatcher | None = None
        self.sink: LockedSink | None = None
        self.workers: list[StreamWorker] = []
        self._started = time.monotonic()
        self._stopping = False

    def start(self) -> None:
        from pipelines.open import open_source

        cfg = self.config
        sources = []
        ids: set[str] = set()
        for location in cfg.sources:  # fail on a bad location before loading anything
            live = source_kind(location).is_live
            source = open_source(location, live=live)
            sid, n = source.stream_id, 2
            while source.stream_id in ids:
                source = open_source(location, live=live, stream_id=f"{sid}-{n}")
                n += 1
            ids.add(source.stream_id)
            sources.append((location, source, live))
        if cfg.torch_threads is not None:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self.engine, self.label = open_model(cfg)
        self.batcher = MicroBatcher(self.engine, cfg.batch)
        self.sink = open_sink(cfg)
        producer = default_producer()
        budget = ScoringBudget()  # one engine, one budget: streams share its measured speed
        for location, source, live in sources:
            scorer = StreamScorer(source.stream_id, self.batcher, live=live, budget=budget)
            emitter = EventEmitter(
                source.stream_id,
                producer,
                self.label,
                self.sink.publish_all,
                cfg.topics,
                observer=self.observer,
            )
            worker = StreamWorker(
                location,
                source,
                scorer,
                emitter,
                _make_stage,
                live=live,
                max_frames=cfg.max_frames,
                analyse_fps=cfg.analyse_fps,
                observer=self.observer,
            )
            self.workers.append(worker)
        self._started = time.monotonic()
        for w in self.workers:
            w.start()

    def request_stop(self) -> None:
        """Stop every source (signal-safe enough: sets flags; live sources close)."""
        self._stopping = True
        for w in self.workers:
            w.request_stop()

    @property
    def running(self) -> bool:
        return any(w.is_alive() for w in self.workers)

    def progress(self) -> list[tuple[str, StreamProgress]]:
        return [(w.stream_id, w.progress) for w in self.workers]

    def close(self, deadline_s: float = 30.0) -> RunSummary:
        """Stop sources, join workers, drain the batcher, flush and close the sink."""
        end = time.monotonic() + deadline_s

        def left() -> float:
            return max(0.0, end - time.monotonic())

        self.request_stop()
        for w in self.workers:
            w.join(left())
        clean = not self.running
        if self.batcher is not None:
            self.batcher.close(drain=True, timeout=left())
        if self.sink is not None:
            clean = self.sink.flush(left()) and clean
            self.sink.close(left())
        return self.summary(clean)

    def summary(self, clean: bool = True) -> RunSummary:
        streams = tuple(
            StreamSummary(
                stream_id=w.stream_id,
                location=w.location,
                frames=w.progress.frames,
                faces_seen=w.progress.faces_seen,
                faces_scored=w.progress.faces_scored,
                faces_dropped=w.progress.faces_dropped,
                tracks=w.progress.tracks,
                best_score=w.progress.best_score,
                events=dict(w.emitter.counts),
                error=w.progress.error,
            )
            for w in self.workers
        )
        sink = self.sink
        return RunSummary(
            streams=streams,
            events_written=0 if sink is None else sink.events,
            crops_written=0 if sink is None else sink.crops,
            where="" if sink is None else mask_url(sink.where),
            model=self.label or ModelLabel("none", self.config.mode, self.config.backend),
            seconds=time.monotonic() - self._started,
            clean=clean,
        )
