"""``fqm bench``: throughput of each stage, printed as a table or JSON (never asserted in tests)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from pipelines.errors import SourceError
from pipelines.open import BACKENDS, open_source
from pipelines.source import DecodeOptions, Source
from pipelines.threaded import ThreadedSource


@dataclass(frozen=True)
class DecodeResult:
    source: str
    backend: str
    width: int
    height: int
    frames: int
    wall_s: float
    cpu_s: float
    decoder: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * self.cpu_s / self.frames if self.frames else 0.0


def bench_decode(
    path: Path,
    max_frames: int | None = None,
    *,
    backend: str = "av",
    options: DecodeOptions | None = None,
    hwaccel: str | None = None,
    decoder_threads: int = 0,
) -> DecodeResult:
    """Decode ``path`` to RGB frames and time it (wall clock and this process's CPU time).

    The clock starts after ``open``, so container probing and pipeline start-up are left out.
    """
    width = height = frames = 0
    source = open_source(
        path,
        backend,
        options=options,
        live=False,
        hwaccel=hwaccel,
        decoder_threads=decoder_threads,
    )
    with source:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for frame in source:
            frames += 1
            height, width = frame.height, frame.width
            if max_frames is not None and frames >= max_frames:
                break
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    decoder = source.stats.decoder_summary
    return DecodeResult(str(path), backend, width, height, frames, wall, cpu, decoder)


@dataclass(frozen=True)
class ConcurrentRun:
    """``streams`` copies of one file decoded at once, one ``ThreadedSource`` each.

    Attributes:
        frames: frames each stream delivered.
        seconds: when each stream delivered its last frame, from the common start.
        wall_s: until the last stream finished; cpu_s: this process's CPU time meanwhile.
    """

    streams: int
    frames: list[int]
    seconds: list[float]
    wall_s: float
    cpu_s: float
    width: int
    height: int
    decoder: str

    @property
    def aggregate_fps(self) -> float:
        return sum(self.frames) / self.wall_s if self.wall_s else 0.0

    @property
    def per_stream_fps(self) -> list[float]:
        return [f / s if s else 0.0 for f, s in zip(self.frames, self.seconds, strict=True)]


def _run_concurrent(
    path: Path,
    streams: int,
    max_frames: int | None,
    *,
    backend: str,
    options: DecodeOptions | None,
    hwaccel: str | None,
    decoder_threads: int,
) -> ConcurrentRun:
    sources: list[Source] = [
        ThreadedSource(
            open_source(
                path,
                backend,
                stream_id=f"{path.stem}-{i}",
                options=options,
                live=False,
                hwaccel=hwaccel,
                decoder_threads=decoder_threads,
            )
        )
        for i in range(streams)
    ]
    frames = [0] * streams
    seconds = [0.0] * streams
    width = height = 0
    try:
        for source in sources:
            source.open()  # returns once the inner source opened; decoding has begun
        wall0, cpu0 = time.perf_counter(), time.process_time()
        iterators = {i: iter(source) for i, source in enumerate(sources)}
        # Round-robin: every stream has its own thread and queue, so while this thread waits
        # on one, the others keep decoding; copies of one file run at the same pace.
        while iterators:
            for i, frames_of in list(iterators.items()):
                frame = next(frames_of, None)
                if frame is not None:
                    frames[i] += 1
                    height, width = frame.height, frame.width
                    seconds[i] = time.perf_counter() - wall0
                if frame is None or (max_frames is not None and frames[i] >= max_frames):
                    del iterators[i]
                    sources[i].close()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        for source in sources:
            source.close()
    decoder = sources[0].stats.decoder_summary
    return ConcurrentRun(streams, frames, seconds, wall, cpu, width, height, decoder)


def bench_streams(
    path: Path,
    streams: int,
    max_frames: int | None = None,
    *,
    backend: str = "av",
    options: DecodeOptions | None = None,
    hwaccel: str | None = None,
    decoder_threads: int = 0,
) -> tuple[ConcurrentRun, ConcurrentRun]:
    """Decode 1 stream, then ``streams`` at once, each in its own thread; return both runs.

    Threads only scale when decoding releases the GIL: ``aggregate_fps`` of the second run
    over the first's is then near ``min(streams, free cores / cores one stream uses)``. With
    FFmpeg's default of one decoder thread per core, one stream already fills the cores;
    ``decoder_threads=1`` shows the scaling stream by stream.
    """
    kw = {
        "backend": backend,
        "options": options,
        "hwaccel": hwaccel,
        "decoder_threads": decoder_threads,
    }
    single = _run_concurrent(path, 1, max_frames, **kw)
    many = _run_concurrent(path, streams, max_frames, **kw)
    return single, many


def streams_report(single: ConcurrentRun, many: ConcurrentRun) -> dict:
    """The JSON ``fqm bench decode --streams`` prints."""
    single_fps = single.aggregate_fps
    per_stream = many.per_stream_fps
    mean_per_stream = sum(per_stream) / len(per_stream) if per_stream else 0.0
    return {
        "streams": many.streams,
        "width": many.width,
        "height": many.height,
        "decoder": many.decoder,
        "frames_per_stream": many.frames,
        "wall_s": many.wall_s,
        "cpu_s": many.cpu_s,
        "aggregate_fps": many.aggregate_fps,
        "per_stream_fps": per_stream,
        "single_stream_fps": single_fps,
        "single_stream_frames": single.frames[0],
        # Aggregate throughput of N threads over one thread's: ~N when the GIL is free and
        # cores are; ~1 when one stream already fills the cores (or the GIL serialises).
        "aggregate_ratio": many.aggregate_fps / single_fps if single_fps else 0.0,
        "per_stream_ratio": mean_per_stream / single_fps if single_fps else 0.0,
    }


@click.group("bench")
def bench_cli() -> None:
    """Measure the throughput of fqm's stages on this machine."""


@bench_cli.command("decode")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="av",
    show_default=True,
    help="Decoder: PyAV (FFmpeg) or GStreamer.",
)
@click.option("--max-fps", type=click.FloatRange(min=0, min_open=True), help="Decimate to this.")
@click.option("--max-width", type=click.IntRange(min=2), help="Scale larger pictures down.")
@click.option("--max-height", type=click.IntRange(min=2), help="Scale larger pictures down.")
@click.option(
    "--hwaccel",
    help="Hardware decoding: 'auto' or a device type (av: cuda, qsv, ...; gst: cuda); "
    "falls back to software, and the report says which decoder ran.",
)
@click.option(
    "--decoder-threads",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="FFmpeg decoder threads per stream (av only); 0: one per core.",
)
@click.option(
    "--streams",
    type=click.IntRange(min=1),
    help="Decode this many copies of SOURCE at once, one thread each, after 1 alone; "
    "report aggregate and per-stream frames/s against the single stream.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def decode_cli(
    source: Path,
    max_frames: int | None,
    backend: str,
    max_fps: float | None,
    max_width: int | None,
    max_height: int | None,
    hwaccel: str | None,
    decoder_threads: int,
    streams: int | None,
    as_json: bool,
) -> None:
    """Decode SOURCE (a video file) to RGB and report frames/s and CPU ms per frame."""
    options = DecodeOptions(max_fps=max_fps, max_width=max_width, max_height=max_height)
    kw = {
        "backend": backend,
        "options": options,
        "hwaccel": hwaccel,
        "decoder_threads": decoder_threads,
    }
    try:
        if streams is not None:
            single, many = bench_streams(source, streams, max_frames, **kw)
        else:
            r = bench_decode(source, max_frames, **kw)
    except ValueError as exc:
        if isinstance(exc, SourceError):  # SourceDecodeError is a ValueError too: not usage
            raise
        raise click.UsageError(str(exc)) from exc
    if streams is not None:
        report = streams_report(single, many)
        if as_json:
            click.echo(json.dumps({"source": str(source), "backend": backend, **report}))
            return
        click.echo(f"{source.name} ({backend}, {report['decoder']})")
        click.echo(
            f"{'streams':>7} {'frames':>7} {'wall s':>7} {'agg fps':>8} {'per-stream fps':>15}"
        )
        for run in (single, many):
            per = run.per_stream_fps
            click.echo(
                f"{run.streams:>7} {sum(run.frames):>7} {run.wall_s:>7.2f} "
                f"{run.aggregate_fps:>8.1f} {min(per):>7.1f}-{max(per):<7.1f}"
            )
        click.echo(
            f"aggregate {report['aggregate_ratio']:.2f}x, per stream "
            f"{report['per_stream_ratio']:.2f}x of 1 stream"
        )
        return
    if as_json:
        click.echo(json.dumps({**asdict(r), "fps": r.fps, "cpu_ms_per_frame": r.cpu_ms_per_frame}))
        return
    click.echo(
        f"{'source':<40} {'backend':<7} {'size':>9} {'frames':>6} {'fps':>8} {'cpu ms/f':>8}"
    )
    click.echo(
        f"{source.name:<40} {r.backend:<7} {f'{r.width}x{r.height}':>9} {r.frames:>6} "
        f"{r.fps:>8.1f} {r.cpu_ms_per_frame:>8.2f}"
    )
    if r.decoder:
        click.echo(f"decoder: {r.decoder}")
