"""``fqm bench``: throughput of each stage, printed as a table or JSON (never asserted in tests)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from pipelines.av_source import AvSource
from pipelines.source import DecodeOptions, Source

#: Decoding backends ``fqm bench decode --backend`` can time.
BACKENDS = ("av", "gst")


def open_source(location: str | Path, backend: str, options: DecodeOptions) -> Source:
    """An unopened source of ``backend`` (``av`` or ``gst``) for ``location``."""
    if backend == "av":
        return AvSource(location, options=options)
    if backend == "gst":
        from pipelines.gst_source import GstSource  # GStreamer is optional

        return GstSource(location, options=options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


@dataclass(frozen=True)
class DecodeResult:
    source: str
    backend: str
    width: int
    height: int
    frames: int
    wall_s: float
    cpu_s: float

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
) -> DecodeResult:
    """Decode ``path`` to RGB frames and time it (wall clock and this process's CPU time).

    The clock starts after ``open``, so container probing and pipeline start-up are left out.
    """
    width = height = frames = 0
    with open_source(path, backend, options or DecodeOptions()) as source:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for frame in source:
            frames += 1
            height, width = frame.height, frame.width
            if max_frames is not None and frames >= max_frames:
                break
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return DecodeResult(str(path), backend, width, height, frames, wall, cpu)


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def decode_cli(
    source: Path,
    max_frames: int | None,
    backend: str,
    max_fps: float | None,
    max_width: int | None,
    max_height: int | None,
    as_json: bool,
) -> None:
    """Decode SOURCE (a video file) to RGB and report frames/s and CPU ms per frame."""
    options = DecodeOptions(max_fps=max_fps, max_width=max_width, max_height=max_height)
    r = bench_decode(source, max_frames, backend=backend, options=options)
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
