"""``Service``: the process-level runner: one engine and batcher, one sink, a worker per stream.

Streams come from ``ServiceConfig.sources`` (the command line) and ``ServiceConfig.streams``
(``StreamPlan``s of a fleet file); ``add_stream``/``remove_stream`` change them while the
service runs (a SIGHUP reload, later the Kafka fleet), and ``supervise`` restarts a live
stream whose worker failed, with a growing delay, without touching the others.

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
from monitor.config.plan import StreamPlan
from monitor.events import Topics, default_producer
from monitor.service.emit import EventEmitter, ModelLabel
from monitor.service.observe import NULL_OBSERVER, ServiceObserver
from monitor.service.scoring import StreamScorer
from monitor.service.sink import LockedSink
from monitor.service.snapshots import Heartbeat, ServiceSnapshot
from monitor.service.stream import StreamProgress, StreamWorker
from monitor.tracks import ScoringBudget
from pipelines.urls import default_stream_id, mask_url, source_kind

log = logging.getLogger(__name__)

#: Seed of the random model used for a variant asked for without weights.
RANDOM_WEIGHTS_SEED = 0
#: The variant of the weights shipped in the package, used when none are given.
SHIPPED_VARIANT = "dslfiqa-lite"


@dataclass(frozen=True)
class ServiceConfig:
    """What ``fqm run`` runs.

    Attributes:
        sources: files, RTSP/HTTP URLs, devices (stream ids from their names; with
            ``max_frames`` and ``analyse_fps`` below).
        streams: streams planned by a fleet file (their own ids and knobs).
        producer: the events' ``producer`` (default ``host:pid``).
        out: the output folder (JSONL events and crops; the Kafka spool under it).
        weights: DSL-FIQA weights folder; ``None``: ``$FQM_WEIGHTS``, else random weights.
        backend, mode, device: the engine (``engines.backends.open_engine``).
        variant: the model variant; with random weights the shape drawn (``dslfiqa-tiny``
            for fast tests).
        kafka: a ``Bootstrap`` to publish to Kafka instead of JSONL files.
        topics: topic names.
        replication: Kafka topics' replication factor when fqm creates them.
        max_frames: stop each stream after this many frames.
        analyse_fps: frames per second each stream's face stage sees (``None``: all); the
            rest are dropped after decoding, before their RGB conversion.
        batch: the shared batcher's policy.
        torch_threads: torch's intra-op threads for the process (engine and face warps);
            ``None`` leaves torch's default. See docs/service.md: on small hosts the stream
            threads already use every core, and more torch threads only contend.
    """

    sources: tuple[str, ...] = ()
    streams: tuple[StreamPlan, ...] = ()
    producer: str | None = None
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
    """The engine and its label: the given weights, else ``$FQM_WEIGHTS``, else the shipped
    DSL-FIQA-Lite weights; random weights only for a ``variant`` asked for without weights
    (``dslfiqa-tiny``: the testing aid)."""
    from engines.backends import open_engine
    from engines.weights import WEIGHTS_ENV, check_device, default_weights_dir

    weights, note = config.weights, None
    if weights is None and (config.variant is None or config.variant == SHIPPED_VARIANT):
        weights = default_weights_dir()
        if not os.environ.get(WEIGHTS_ENV, "").strip():
            note = f"the shipped {SHIPPED_VARIANT} weights"
    if weights is not None:
        engine = open_engine(weights, config.backend, mode=config.mode, variant=config.variant)
        info = engine.info
        label = ModelLabel(info.variant, info.mode, info.backend, False, note or str(weights))
        return engine, label
    from engines.dslfiqa.random_weights import build_random

    variant = config.variant
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


#: Restart delays of a live stream whose worker failed: 5 s, doubling up to a minute.
RESTART_FIRST_S = 5.0
RESTART_MAX_S = 60.0


def plans_from_sources(config: ServiceConfig) -> tuple[StreamPlan, ...]:
    """Command-line sources as stream plans, ids from their names, made unique (``-2``...)."""
    taken = {p.stream_id for p in config.streams}
    plans = []
    for location in config.sources:
        sid = default_stream_id(location)
        unique, n = sid, 2
        while unique in taken:
            unique, n = f"{sid}-{n}", n + 1
        taken.add(unique)
        live = source_kind(location).is_live
        plans.append(StreamPlan(unique, location, live, config.max_frames, config.analyse_fps))
    return tuple(plans)


@dataclass
class _Restart:
    plan: StreamPlan
    due: float
    delay: float


class Service:
    """Opens everything in ``start``; ``supervise`` restarts failed live streams; ``close``
    shuts down. Stream changes (``add_stream``, ``remove_stream``, ``reload``) and
    ``supervise`` are called from one thread (the command's loop)."""

    def __init__(self, config: ServiceConfig, observer: ServiceObserver = NULL_OBSERVER) -> None:
        self.config = config
        self.observer = observer
        self.engine = None
        self.label: ModelLabel | None = None
        self.batcher: MicroBatcher | None = None
        self.sink: LockedSink | None = None
        self.budget = ScoringBudget()  # one engine, one budget: streams share its speed
        self.workers: dict[str, StreamWorker] = {}
        self.finished: list[StreamWorker] = []
        self.restarts: dict[str, int] = {}
        self._pending_restarts: dict[str, _Restart] = {}
        self._producer = config.producer or default_producer()
        self._started = time.monotonic()
        self._stopping = False
        self.heartbeat = Heartbeat()

    def start(self) -> None:
        """Checks every stream's location, loads the model, opens the sink, starts the
        streams. A bad location fails here, before anything slow is loaded."""
        cfg = self.config
        plans = (*cfg.streams, *plans_from_sources(cfg))
        sources = [(plan, self._open(plan)) for plan in plans]
        if cfg.torch_threads is not None:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self.engine, self.label = open_model(cfg)
        self.batcher = MicroBatcher(self.engine, cfg.batch)
        self.sink = open_sink(cfg)
        self._started = time.monotonic()
        for plan, source in sources:
            self._start_worker(plan, source)

    def _open(self, plan: StreamPlan):
        from pipelines.open import open_source
        from pipelines.source import DecodeOptions

        options = DecodeOptions(max_fps=plan.analyse_fps)
        return open_source(plan.location, live=plan.live, stream_id=plan.stream_id, options=options)

    def _start_worker(self, plan: StreamPlan, source) -> StreamWorker:
        if self.batcher is None or self.sink is None or self.label is None:
            raise RuntimeError("Service.start must run before streams are added")
        scorer = StreamScorer(
            plan.stream_id,
            self.batcher,
            live=plan.live,
            policy=plan.policy_config(),
            budget=self.budget,
        )
        emitter = EventEmitter(
            plan.stream_id,
            self._producer,
            self.label,
            self.sink.publish_all,
            self.config.topics,
            observer=self.observer,
        )
        worker = StreamWorker(
            plan.location,
            source,
            scorer,
            emitter,
            _make_stage,
            live=plan.live,
            max_frames=plan.max_frames,
            observer=self.observer,
        )
        worker.plan = plan
        self.workers[plan.stream_id] = worker
        worker.start()
        return worker

    def add_stream(self, plan: StreamPlan) -> None:
        """Starts one more stream (its id must be new)."""
        if plan.stream_id in self.workers:
            raise ValueError(f"stream {plan.stream_id!r} is already running")
        self._start_worker(plan, self._open(plan))

    def remove_stream(
        self, stream_id: str, deadline_s: float = 30.0, reason: str | None = None
    ) -> bool:
        """Stops one stream: its tracks end and their summaries are published, then a
        ``down`` status with ``reason`` (default ``stopped``). False when it did not stop
        within the deadline (it is still told to stop)."""
        self._pending_restarts.pop(stream_id, None)
        worker = self.workers.pop(stream_id, None)
        if worker is None:
            return True
        worker.request_stop(reason)
        worker.join(deadline_s)
        self.finished.append(worker)
        self.observer.stream_removed(stream_id)
        return not worker.is_alive()

    def plans(self) -> dict[str, StreamPlan]:
        """The running (or restarting) streams' plans, by stream id."""
        out = {sid: w.plan for sid, w in self.workers.items()}
        out.update({sid: r.plan for sid, r in self._pending_restarts.items()})
        return out

    def supervise(self, now: float | None = None) -> list[str]:
        """Restarts live streams whose worker failed, after a growing delay; returns the
        ids restarted now. Files that fail stay down (their error is in the summary)."""
        now = time.monotonic() if now is None else now
        for sid, w in list(self.workers.items()):
            if w.is_alive() or self._stopping or not (w.live and w.progress.error):
                continue
            delay = RESTART_FIRST_S
            if sid in self.restarts:
                delay = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** self.restarts[sid])
            log.warning("%s failed (%s); restarting in %.0f s", sid, w.progress.error, delay)
            self.finished.append(self.workers.pop(sid))
            self._pending_restarts[sid] = _Restart(w.plan, now + delay, delay)
        restarted = []
        for sid, r in list(self._pending_restarts.items()):
            if now < r.due or self._stopping:
                continue
            del self._pending_restarts[sid]
            self.restarts[sid] = self.restarts.get(sid, 0) + 1
            try:
                self.add_stream(r.plan)
                restarted.append(sid)
            except Exception as exc:
                log.error("%s: restart failed: %s", sid, mask_url(str(exc)))
                self._pending_restarts[sid] = _Restart(r.plan, now + r.delay * 2, r.delay * 2)
        return restarted

    def request_stop(self) -> None:
        """Stop every source (signal-safe enough: sets flags; live sources close)."""
        self._stopping = True
        self._pending_restarts.clear()
        for w in list(self.workers.values()):
            w.request_stop()

    @property
    def running(self) -> bool:
        """Whether any stream runs or waits to restart."""
        return bool(self._pending_restarts) or any(w.is_alive() for w in self.workers.values())

    def beat(self) -> None:
        """The service loop is alive (``/healthz`` reads its age)."""
        self.heartbeat.beat()

    def snapshot(self) -> ServiceSnapshot:
        """Everything metrics and health read, now (called from the HTTP server's thread)."""
        from monitor.service.snapshots import engine_snapshot, sink_snapshot, stream_snapshot

        streams = tuple(
            stream_snapshot(
                sid,
                w.progress,
                w.source.stats,
                live=w.live,
                alive=w.is_alive(),
                status=w.status,
                rate=w.rate,
            )
            for sid, w in list(self.workers.items())
        )
        return ServiceSnapshot(
            streams=streams,
            engine=None if self.batcher is None else engine_snapshot(self.batcher),
            sink=None if self.sink is None else sink_snapshot(self.sink),
            heartbeat_age_s=self.heartbeat.age_s(),
            stopping=self._stopping,
        )

    def progress(self) -> list[tuple[str, StreamProgress]]:
        return [(sid, w.progress) for sid, w in self.workers.items()]

    def close(self, deadline_s: float = 30.0) -> RunSummary:
        """Stop sources, join workers, drain the batcher, flush and close the sink."""
        end = time.monotonic() + deadline_s

        def left() -> float:
            return max(0.0, end - time.monotonic())

        self.request_stop()
        for w in self.workers.values():
            w.join(left())
        clean = not any(w.is_alive() for w in (*self.workers.values(), *self.finished))
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
            for w in (*self.finished, *self.workers.values())
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
