"""What the service runs for a fleet, and what a reload changes: pure functions, no I/O.

``fleet_plan`` turns a :class:`FleetConfig` into process-level settings (named like
``monitor.service.ServiceConfig``'s fields) and one :class:`StreamPlan` per enabled
camera. ``diff_cameras`` compares two fleets for SIGHUP: stop ``removed`` and ``changed``,
start ``changed`` and ``added``, leave ``unchanged`` alone; ``changed_settings`` names the
process-level sections that differ (those need a restart, a reload cannot apply them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config.model import CameraConfig, FleetConfig, KafkaSinkConfig, MetricsConfig
from monitor.kafka_bootstrap import Bootstrap
from pipelines.urls import mask_url

if TYPE_CHECKING:
    from engines.batcher import BatcherConfig
    from monitor.events import Topics


@dataclass(frozen=True)
class StreamPlan:
    """One camera as the service opens it.

    Attributes:
        stream_id: the camera id (events' ``stream_id`` and Kafka key).
        location: the source (may hold a password: print ``masked_location``).
        live: live sources drop frames and faces when behind; files are read completely.
        max_frames: stop after this many frames; ``None``: run to the end.
        analyse_fps: frames per second the face stage sees; ``None``: every frame.
        min_face_size, rescore_interval_s: the scoring policy's knobs; ``None``: default.
    """

    stream_id: str
    location: str
    live: bool
    max_frames: int | None = None
    analyse_fps: float | None = None
    min_face_size: float | None = None
    rescore_interval_s: float | None = None

    @property
    def masked_location(self) -> str:
        return mask_url(self.location)

    def __repr__(self) -> str:
        return (
            f"StreamPlan(stream_id={self.stream_id!r}, location={self.masked_location!r}, "
            f"live={self.live}, max_frames={self.max_frames}, analyse_fps={self.analyse_fps}, "
            f"min_face_size={self.min_face_size}, rescore_interval_s={self.rescore_interval_s})"
        )

    def policy_config(self):
        """The stream's ``monitor.tracks.PolicyConfig`` (defaults for unset knobs)."""
        from monitor.tracks import PolicyConfig

        knobs: dict[str, Any] = {}
        if self.min_face_size is not None:
            knobs["min_face_size"] = self.min_face_size
        if self.rescore_interval_s is not None:
            knobs |= {"rescore_interval": self.rescore_interval_s, "interval_unit": "seconds"}
        return PolicyConfig(**knobs)


@dataclass(frozen=True)
class ProcessSettings:
    """The fleet's process-level settings; the first eleven are ``ServiceConfig``'s fields."""

    out: Path
    weights: Path | None
    backend: str
    mode: str
    device: str
    variant: str | None
    kafka: Bootstrap | None
    topics: Topics
    replication: int
    batch: BatcherConfig
    torch_threads: int | None
    producer: str | None
    shutdown_deadline_s: float
    metrics: MetricsConfig

    def service_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ServiceConfig``: all but the per-stream ones (``sources``,
        ``max_frames``, ``analyse_fps``: see :class:`StreamPlan`)."""
        names = ("out", "weights", "backend", "mode", "device", "variant", "kafka", "topics",
                 "replication", "batch", "torch_threads")  # fmt: skip
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class FleetPlan:
    process: ProcessSettings
    streams: tuple[StreamPlan, ...]


@dataclass(frozen=True)
class CameraDiff:
    """Camera ids by what a reload does with them (each tuple in file order).

    Only enabled cameras count: enabling a camera adds it, disabling removes it.
    """

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def to_stop(self) -> tuple[str, ...]:
        """Stop these first (a changed camera restarts with its new config)."""
        return self.removed + self.changed

    @property
    def to_start(self) -> tuple[str, ...]:
        return self.changed + self.added

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def stream_plan(camera_id: str, camera: CameraConfig) -> StreamPlan:
    """One camera as the service opens it (used per camera on reload)."""
    return StreamPlan(
        stream_id=camera_id,
        location=camera.source,
        live=camera.is_live,
        max_frames=camera.max_frames,
        analyse_fps=camera.analyse_fps,
        min_face_size=camera.min_face_size,
        rescore_interval_s=camera.rescore_interval_s,
    )


def process_settings(fleet: FleetConfig) -> ProcessSettings:
    """The fleet's process-level settings, as the service's own types."""
    from engines.batcher import BatcherConfig
    from monitor.events import Topics

    sink = fleet.sink
    kafka = sink if isinstance(sink, KafkaSinkConfig) else None
    prefix = None if kafka is None else kafka.topics_prefix
    return ProcessSettings(
        out=fleet.out,
        weights=fleet.model.weights,
        backend=fleet.model.backend,
        mode=fleet.model.mode,
        device=fleet.model.device,
        variant=fleet.model.variant,
        kafka=None if kafka is None else kafka.to_bootstrap(),
        topics=Topics() if prefix is None else Topics.prefixed(prefix),
        replication=1 if kafka is None else kafka.replication,
        batch=BatcherConfig(
            max_batch=fleet.batch.max_batch,
            max_queue=fleet.batch.max_queue,
            max_wait_ms=fleet.batch.max_wait_ms,
        ),
        torch_threads=fleet.torch_threads,
        producer=fleet.producer,
        shutdown_deadline_s=fleet.shutdown_deadline_s,
        metrics=fleet.metrics,
    )


def fleet_plan(fleet: FleetConfig) -> FleetPlan:
    """Process settings and a :class:`StreamPlan` per enabled camera, in file order."""
    streams = tuple(stream_plan(cid, cam) for cid, cam in fleet.enabled_cameras().items())
    return FleetPlan(process_settings(fleet), streams)


def diff_cameras(old: FleetConfig, new: FleetConfig) -> CameraDiff:
    """What a reload from ``old`` to ``new`` does to each enabled camera.

    A camera is ``changed`` when any of its fields differs (its source, ``live``, a knob):
    it restarts; cameras whose entry is equal keep running untouched.
    """
    before, after = old.enabled_cameras(), new.enabled_cameras()
    return CameraDiff(
        added=tuple(cid for cid in after if cid not in before),
        removed=tuple(cid for cid in before if cid not in after),
        changed=tuple(cid for cid in after if cid in before and before[cid] != after[cid]),
        unchanged=tuple(cid for cid in after if cid in before and before[cid] == after[cid]),
    )


def changed_settings(old: FleetConfig, new: FleetConfig) -> tuple[str, ...]:
    """Top-level fields other than ``cameras`` that differ (they need a process restart)."""
    return tuple(
        name
        for name in FleetConfig.model_fields
        if name != "cameras" and getattr(old, name) != getattr(new, name)
    )
