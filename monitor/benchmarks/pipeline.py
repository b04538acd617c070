"""``fqm bench pipeline``: the whole service on N copies of a video at once; how many it holds.

Runs the real :class:`monitor.service.Service` in this process on ``streams`` copies of one
video file (each copy its own stream id), once per stream count asked for, and measures,
through a :class:`~monitor.service.observe.ServiceObserver`:

* **real-time factor** per stream: seconds of video read (up to its last analysed frame's
  pts) divided by the wall time the stream took (its ``up`` status event to the end of its
  last frame; the wait for the last scores once the file has ended, ``drain_s``, is left
  out: a camera never ends).
  A file is read at the pipeline's pace, so this is how much faster than real time the
  pipeline could follow that camera; a run **holds** its N streams when every stream's
  factor is at least 1.0;
* **frame-to-event latency**: the time a ``face_observation`` or ``best_frame`` event is
  handed to the sink minus its frame's wall time (when it was decoded), p50 and p99;
* **faces** seen, looked at (landmarks and alignment), scored (by the engine), and faces
  scored per second (over the first ``up`` to the last ``down``: the engine's window, the
  end-of-file drain included, as for the engine's busy share);
* **time per stage** (``monitor.service.stream.STAGES``) per stream as a share of that
  stream's wall time (the rest, ``other``, is mostly waiting), and over all streams in
  cores (stage seconds / run wall seconds); the engine's inference seconds (the shared
  batcher's records) and the process's CPU time (``os.times``, every thread) likewise;
* **cores per stream**: the process's CPU seconds per second of video per stream, and the
  streams this CPU would hold at that cost with every core to itself (cores / that): an
  upper bound that stays readable on a shared host, where wall times and real-time
  factors fall with other load;
* **peak memory**: the process's peak RSS during the run (``VmHWM``, reset before each run
  where the kernel allows it, else ``ru_maxrss``: the process's peak so far).

Stage times are wall times on each stream's thread: with more busy threads than cores they
include time spent waiting for a core. Numbers are printed, never asserted (tests check the
structure on a tiny run).

``720p`` as the source is :func:`make_720p`'s clip: franck.mp4 (360x288, 24 fps, one face)
scaled up and padded to 1280x720 at 30 fps with libx264, made once with the ffmpeg CLI into
``$FQM_CACHE/bench`` so that a fresh clone reproduces it.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from monitor.events import Event
from monitor.service.stream import STAGES

#: The built-in 720p30 source's name on the command line.
BUILTIN_720P = "720p"
#: Seconds of franck.mp4 the built-in 720p clip holds.
CLIP_720P_SECONDS = 60
CLIP_720P_NAME = f"franck-720p30-{CLIP_720P_SECONDS}s.mp4"
#: A stream is held when its real-time factor is at least this.
REALTIME = 1.0
#: Events whose hand-off is timed against their frame's wall time.
LATENCY_KINDS = ("face_observation", "best_frame")


class ClipError(RuntimeError):
    """The benchmark's clip could not be made or read."""


# ------------------------------------------------------------------------------ the clip


@dataclass(frozen=True)
class ClipInfo:
    path: str
    width: int
    height: int
    fps: float
    frames: int
    seconds: float


def probe(path: Path) -> ClipInfo:
    """Size, frame rate and length of a video file (PyAV; the container's numbers)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 25.0  # the service's own default without pts
            seconds = float(container.duration / 1e6) if container.duration else 0.0
            frames = int(stream.frames or round(seconds * fps))
            return ClipInfo(str(path), stream.width, stream.height, fps, frames, seconds)
    except (av.error.FFmpegError, IndexError) as exc:
        raise ClipError(f"{path}: not a readable video: {exc}") from exc


def clip_cache_dir() -> Path:
    from monitor.assets import cache_dir

    return cache_dir() / "bench"


def make_720p(folder: Path | None = None) -> Path:
    """The 720p30 clip (made once): franck.mp4's first :data:`CLIP_720P_SECONDS` s scaled to
    900x720, padded to 1280x720, 30 fps, H.264 (libx264, keyframe every 2 s, yuv420p)."""
    from monitor.assets import asset_path

    folder = folder or clip_cache_dir()
    out = folder / CLIP_720P_NAME
    if out.is_file() and out.stat().st_size > 0:
        return out
    if shutil.which("ffmpeg") is None:
        raise ClipError("making the 720p clip needs the ffmpeg CLI (scripts/bootstrap.sh)")
    src = asset_path("franck.mp4")
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{out.stem}.{uuid.uuid4().hex[:8]}.mp4"
    vf = "scale=-2:720:flags=bicubic,pad=1280:720:(ow-iw)/2:0,fps=30,format=yuv420p"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-t", str(CLIP_720P_SECONDS), "-an"]
    cmd += ["-vf", vf, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60"]
    cmd += ["-movflags", "+faststart", str(part)]
    try:
        subprocess.run(cmd, check=True, timeout=600, capture_output=True, text=True)
        part.replace(out)  # atomic: a concurrent maker or a killed run leaves no half clip
    except subprocess.CalledProcessError as exc:
        raise ClipError(f"ffmpeg could not make {out}: {exc.stderr.strip()[-500:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"ffmpeg took over {exc.timeout:.0f} s making {out}") from exc
    finally:
        part.unlink(missing_ok=True)
    return out


def resolve_source(source: str | Path) -> Path:
    """A video file, or :data:`BUILTIN_720P` for :func:`make_720p`'s clip."""
    if str(source) == BUILTIN_720P and not Path(source).exists():
        return make_720p()
    path = Path(str(source).removeprefix("file://"))
    if not path.is_file():
        raise ClipError(f"{source}: not a video file (give a file, or {BUILTIN_720P!r})")
    return path


# ------------------------------------------------------------------------------ measuring


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (VmHWM) of this process; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_mb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_mb(reset: bool) -> tuple[float, str]:
    hwm = _rss_mb("VmHWM")
    if reset and hwm is not None:
        return hwm, "VmHWM since the run started"
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024, "ru_maxrss: the process's peak so far"


def _unix(wall: datetime | float) -> float:
    return wall.timestamp() if isinstance(wall, datetime) else float(wall)


@dataclass
class _StreamTally:
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    latencies: list[float] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    up: float | None = None
    last_frame: float | None = None  # its last frame's last stage ended
    down: float | None = None


class PipelineObserver:
    """Per stream: seconds per stage, frame-to-event latencies, event counts, the times of
    its ``up`` and ``down`` status events and of its last frame's end; the process CPU time
    at the first ``up`` and at the latest frame's end. Thread-safe (the stream threads call
    it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.streams: dict[str, _StreamTally] = {}
        self.cpu_first_up: float | None = None
        self.cpu_last_frame: float | None = None

    def _tally(self, stream_id: str) -> _StreamTally:
        t = self.streams.get(stream_id)
        if t is None:
            t = self.streams[stream_id] = _StreamTally()
        return t

    def stage(self, stream_id: str, stage: str, seconds: float) -> None:
        with self._lock:
            t = self._tally(stream_id)
            t.stages[stage] = t.stages.get(stage, 0.0) + seconds
            if stage == STAGES[-1]:  # a frame's last stage
                t.last_frame = time.monotonic()
                self.cpu_last_frame = _cpu_seconds()

    def event(self, event: Event) -> None:
        now, mono = time.time(), time.monotonic()
        with self._lock:
            t = self._tally(event.stream_id)
            t.events[event.kind] = t.events.get(event.kind, 0) + 1
            if event.kind in LATENCY_KINDS:
                t.latencies.append(max(0.0, now - _unix(event.wall_time)))  # type: ignore[attr-defined]
            elif event.kind == "stream_status":
                state = event.state  # type: ignore[attr-defined]
                if state == "up" and t.up is None:
                    t.up = mono
                    if self.cpu_first_up is None:
                        self.cpu_first_up = _cpu_seconds()
                elif state == "down":
                    t.down = mono


# ------------------------------------------------------------------------------ results


def _pct_ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1000 if values else None


@dataclass
class StreamResult:
    stream_id: str
    frames_read: int
    frames_analysed: int
    video_s: float
    wall_s: float
    drain_s: float
    realtime_factor: float
    fps_read: float
    fps_analysed: float
    faces_seen: int
    faces_looked: int
    faces_scored: int
    faces_dropped: int
    tracks: int
    events: dict[str, int]
    latency_events: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    stage_s: dict[str, float]
    stage_share: dict[str, float]
    error: str

    @property
    def held(self) -> bool:
        return not self.error and self.realtime_factor >= REALTIME


@dataclass
class RunResult:
    streams: int
    wall_s: float
    held: bool
    min_realtime_factor: float
    frames_read: int
    faces_scored: int
    faces_scored_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    stage_cores: dict[str, float]
    engine_batches: int
    engine_mean_batch: float | None
    engine_inference_s: float
    engine_wall_s: float
    engine_cores: float
    engine_faces_per_s: float | None
    process_cpu_s: float
    process_cores: float
    cpu_share: float
    video_s: float
    cores_per_stream: float
    streams_estimate: float
    peak_rss_mb: float
    peak_rss_how: str
    clean: bool
    per_stream: list[StreamResult]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for s, row in zip(self.per_stream, d["per_stream"], strict=True):
            row["held"] = s.held
        return d


@dataclass
class PipelineBenchReport:
    source: ClipInfo
    model: dict[str, Any]
    config: dict[str, Any]
    sink: str
    cpu: str
    cores: int
    torch: str
    runs: list[RunResult]

    @property
    def max_held(self) -> int:
        """The most streams a run held (0: none)."""
        return max((r.streams for r in self.runs if r.held), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": asdict(self.source),
            "model": self.model,
            "config": self.config,
            "sink": self.sink,
            "cpu": self.cpu,
            "cores": self.cores,
            "torch": self.torch,
            "realtime_threshold": REALTIME,
            "max_streams_held": self.max_held,
            "runs": [r.to_json() for r in self.runs],
        }


@dataclass(frozen=True)
class PipelineOptions:
    """What each run's ``ServiceConfig`` gets (see ``monitor.service.ServiceConfig``)."""

    weights: Path | None = None
    variant: str | None = None
    backend: str = "torch"
    mode: str = "center"
    device: str = "cpu"
    analyse_fps: float | None = None
    torch_threads: int | None = 1
    max_frames: int | None = None
    seconds: float | None = None
    kafka: object | None = None  # a Bootstrap: publish to Kafka (temporary topics)

    def frames_cap(self, clip: ClipInfo) -> int | None:
        """Each stream's ``max_frames`` (frames its face stage sees): ``max_frames``, or
        ``seconds`` of video at the analysed rate, whichever is smaller."""
        caps = [] if self.max_frames is None else [self.max_frames]
        if self.seconds is not None:
            rate = min(clip.fps, self.analyse_fps or clip.fps)
            caps.append(max(1, math.ceil(self.seconds * rate)))
        return min(caps, default=None)


def _stream_result(worker, tally: _StreamTally, fps: float, end: float) -> StreamResult:
    p = worker.progress
    up = tally.up if tally.up is not None else worker.started_at
    down = tally.down if tally.down is not None else end
    last = tally.last_frame if tally.last_frame is not None else down
    # Up to its last frame: the wait for the last scores at the end of a file (``drain_s``)
    # is not a camera's cost.
    wall = max((last - up) if up is not None else 0.0, 1e-9)
    read = p.frames + p.frames_skipped  # decoded: analysed + thinned out by analyse_fps
    # Video time covered: up to the last analysed frame's pts (a frame lasts 1/fps).
    video = p.position_s + 1.0 / fps if p.position_s is not None else read / fps
    stages = dict(tally.stages)
    share = {k: v / wall for k, v in stages.items()}
    share["other"] = max(0.0, 1.0 - sum(share.values()))
    lat = tally.latencies
    return StreamResult(
        stream_id=worker.stream_id,
        frames_read=read,
        frames_analysed=p.frames,
        video_s=video,
        wall_s=wall,
        drain_s=max(0.0, down - last),
        realtime_factor=video / wall,
        fps_read=read / wall,
        fps_analysed=p.frames / wall,
        faces_seen=p.faces_seen,
        faces_looked=p.faces_looked,
        faces_scored=p.faces_scored,
        faces_dropped=p.faces_dropped,
        tracks=p.tracks,
        events=dict(tally.events),
        latency_events=len(lat),
        latency_p50_ms=_pct_ms(lat, 50),
        latency_p99_ms=_pct_ms(lat, 99),
        stage_s=stages,
        stage_share=share,
        error=p.error,
    )


def run_streams(
    clip: ClipInfo,
    streams: int,
    options: PipelineOptions,
    out: Path,
    topics_prefix: str | None = None,
) -> tuple[RunResult, Any]:
    """One run of the service on ``streams`` copies of ``clip``; the result and the model
    label the service used."""
    from monitor.events import Topics
    from monitor.service import Service, ServiceConfig

    observer = PipelineObserver()
    config = ServiceConfig(
        sources=(clip.path,) * streams,
        out=out,
        weights=options.weights,
        backend=options.backend,
        mode=options.mode,
        device=options.device,
        variant=options.variant,
        kafka=options.kafka,
        topics=Topics.prefixed(topics_prefix) if topics_prefix else Topics(),
        max_frames=options.frames_cap(clip),
        analyse_fps=options.analyse_fps,
        torch_threads=options.torch_threads,
    )
    service = Service(config, observer)
    reset = _reset_peak_rss()
    cpu0, t0 = _cpu_seconds(), time.monotonic()
    service.start()
    try:
        while service.running:
            time.sleep(0.05)
    finally:
        end = time.monotonic()
        summary = service.close()
    cpu1 = _cpu_seconds()
    peak, how = _peak_rss_mb(reset)
    records = service.batcher.records() if service.batcher is not None else []
    per = [
        _stream_result(w, observer.streams.get(w.stream_id, _StreamTally()), clip.fps, end)
        for w in (*service.finished, *service.workers.values())
    ]
    ups = [t.up for t in observer.streams.values() if t.up is not None]
    downs = [
        t.last_frame if t.last_frame is not None else t.down
        for t in observer.streams.values()
        if t.down is not None or t.last_frame is not None
    ]
    start = min(ups) if ups else t0
    stop = max(downs) if downs else end
    # The engine scores until the last stream's down (the drain included): its rates are
    # over first up to last down.
    finals = [t.down for t in observer.streams.values() if t.down is not None]
    engine_wall = max((max(finals) if finals else end) - start, 1e-9)
    wall = max(stop - start, 1e-9)
    if observer.cpu_first_up is not None and observer.cpu_last_frame is not None:
        cpu = observer.cpu_last_frame - observer.cpu_first_up
    else:
        cpu = cpu1 - cpu0
    inference = sum(r.inference_s for r in records)
    scored = sum(s.faces_scored for s in per)
    lat = [x for t in observer.streams.values() for x in t.latencies]
    stage_cores = {k: sum(s.stage_s.get(k, 0.0) for s in per) / wall for k in STAGES}
    cores = os.cpu_count() or 1
    video = sum(s.video_s for s in per)
    per_stream = cpu / video if video > 0 else 0.0  # CPU seconds per second of video
    result = RunResult(
        streams=streams,
        wall_s=wall,
        held=bool(per) and all(s.held for s in per),
        min_realtime_factor=min((s.realtime_factor for s in per), default=0.0),
        frames_read=sum(s.frames_read for s in per),
        faces_scored=scored,
        faces_scored_per_s=scored / engine_wall,
        latency_p50_ms=_pct_ms(lat, 50),
        latency_p99_ms=_pct_ms(lat, 99),
        stage_cores=stage_cores,
        engine_batches=len(records),
        engine_mean_batch=float(np.mean([r.size for r in records])) if records else None,
        engine_inference_s=inference,
        engine_wall_s=engine_wall,
        engine_cores=inference / engine_wall,
        engine_faces_per_s=sum(r.size for r in records) / inference if inference > 0 else None,
        process_cpu_s=cpu,
        process_cores=cpu / wall,
        cpu_share=cpu / wall / cores,
        video_s=video,
        cores_per_stream=per_stream,
        streams_estimate=cores / per_stream if per_stream > 0 else 0.0,
        peak_rss_mb=peak,
        peak_rss_how=how,
        clean=summary.clean,
        per_stream=per,
    )
    return result, summary.model


def bench_pipeline(
    source: str | Path,
    stream_counts: tuple[int, ...] = (1,),
    options: PipelineOptions | None = None,
    *,
    out: Path | None = None,
    progress=None,
) -> PipelineBenchReport:
    """Runs the service on 1..N copies of ``source`` (one run per count, in turn).

    ``out`` keeps each run's JSONL output (or Kafka spool) in ``out/<N>-streams``; by
    default a temporary folder, deleted after. With ``options.kafka`` each run publishes to
    its own ``fqm-bench-<id>.*`` topics, deleted after the run.
    """
    import torch

    options = options or PipelineOptions()
    clip = probe(resolve_source(source))
    keep = out is not None
    base = out if out is not None else Path(tempfile.mkdtemp(prefix="fqm-bench-pipeline-"))
    runs: list[RunResult] = []
    label = None
    try:
        for n in stream_counts:
            if progress is not None:
                progress(f"{n} stream(s) of {Path(clip.path).name} ...")
            prefix = f"fqm-bench-{uuid.uuid4().hex[:8]}" if options.kafka is not None else None
            try:
                result, label = run_streams(clip, n, options, base / f"{n}-streams", prefix)
            finally:
                if prefix is not None:
                    _delete_topics(options.kafka, prefix)
            runs.append(result)
            if progress is not None:
                progress(
                    f"{n} stream(s): min real-time factor {result.min_realtime_factor:.2f}, "
                    f"{result.faces_scored} faces scored in {result.wall_s:.1f} s"
                )
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    model = {} if label is None else asdict(label)
    config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(options).items()
        if k != "kafka"
    }
    config["torch_threads_effective"] = torch.get_num_threads()
    sink = "jsonl" if options.kafka is None else "kafka"
    return PipelineBenchReport(
        source=clip,
        model=model,
        config=config,
        sink=sink,
        cpu=platform.processor() or platform.machine(),
        cores=os.cpu_count() or 1,
        torch=torch.__version__,
        runs=runs,
    )


def _delete_topics(bootstrap, prefix: str) -> None:
    from dataclasses import fields

    from kafka import KafkaAdminClient

    from monitor.events import Topics

    topics = Topics.prefixed(prefix)
    names = [getattr(topics, f.name) for f in fields(topics)]
    try:
        admin = KafkaAdminClient(**bootstrap.client_kwargs(), client_id="fqm-bench-cleanup")
    except Exception:  # cleanup only: leftover bench topics are harmless
        return
    try:
        admin.delete_topics(names)
    except Exception:
        pass
    finally:
        admin.close()


# ------------------------------------------------------------------------------ report


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}"


def format_report(r: PipelineBenchReport) -> str:
    """A summary, one row per run, then one per stream, then stage shares per run."""
    c = r.source
    m = r.model
    random = " (random weights: speed only, scores meaningless)" if m.get("random_weights") else ""
    fps = r.config.get("analyse_fps")
    lines = [
        f"{Path(c.path).name}: {c.width}x{c.height} {c.fps:g} fps, {c.seconds:.0f} s; "
        f"model {m.get('variant', '?')} ({m.get('backend', '?')}, {m.get('mode', '?')}){random}",
        f"analyse {'every frame' if not fps else f'{fps:g} fps'}, "
        f"torch threads {r.config.get('torch_threads')}, sink {r.sink}; "
        f"{r.cores} cores ({r.cpu}), torch {r.torch}",
        "",
        f"{'streams':>7} {'held':>4} {'min RTF':>7} {'wall s':>7} {'faces/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'engine':>6} {'CPU':>5} {'core/str':>8} "
        f"{'est. str':>8} {'peak MB':>7}",
    ]
    for run in r.runs:
        lines.append(
            f"{run.streams:>7} {'yes' if run.held else 'no':>4} "
            f"{run.min_realtime_factor:>7.2f} {run.wall_s:>7.1f} "
            f"{run.faces_scored_per_s:>8.2f} {_ms(run.latency_p50_ms):>7} "
            f"{_ms(run.latency_p99_ms):>7} {run.engine_cores:>6.2f} "
            f"{100 * run.cpu_share:>4.0f}% {run.cores_per_stream:>8.2f} "
            f"{run.streams_estimate:>8.1f} {run.peak_rss_mb:>7.0f}"
        )
    lines += [
        "",
        f"{'streams':>7} {'stream':<24} {'RTF':>5} {'read/s':>7} {'anal/s':>7} "
        f"{'seen':>6} {'looked':>6} {'scored':>6} {'p50 ms':>7} {'p99 ms':>7} {'drain s':>7}",
    ]
    for run in r.runs:
        for s in run.per_stream:
            err = f"  error: {s.error}" if s.error else ""
            lines.append(
                f"{run.streams:>7} {s.stream_id[:24]:<24} {s.realtime_factor:>5.2f} "
                f"{s.fps_read:>7.1f} {s.fps_analysed:>7.1f} {s.faces_seen:>6} "
                f"{s.faces_looked:>6} {s.faces_scored:>6} {_ms(s.latency_p50_ms):>7} "
                f"{_ms(s.latency_p99_ms):>7} {s.drain_s:>7.1f}{err}"
            )
    lines += [
        "",
        "cores busy per stage (stage seconds / wall seconds, all streams):",
        f"{'streams':>7} "
        + " ".join(f"{k:>6}" for k in STAGES)
        + f" {'engine':>6} {'proc':>6}  engine alone: faces/s",
    ]
    for run in r.runs:
        lines.append(
            f"{run.streams:>7} "
            + " ".join(f"{run.stage_cores[k]:>6.2f}" for k in STAGES)
            + f" {run.engine_cores:>6.2f} {run.process_cores:>6.2f}  "
            + ("n/a" if run.engine_faces_per_s is None else f"{run.engine_faces_per_s:.2f}")
        )
    lines.append("")
    lines.append(
        "core/str: process CPU seconds per second of video per stream; est. str: "
        f"{r.cores} cores / core/str, the streams this CPU would hold if the pipeline had "
        "every core to itself (an upper bound: other load, the GIL and the engine's single "
        "thread are ignored)"
    )
    lines.append(
        f"holds {r.max_held} stream(s) in real time (every stream's RTF >= {REALTIME:g})"
        if r.max_held
        else f"holds no stream count tried in real time (RTF >= {REALTIME:g})"
    )
    return "\n".join(lines)
