"""``fqm bench``: throughput of each stage, printed as a table or JSON (never asserted in tests)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from pipelines.av_source import AvFileSource


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


def bench_decode(path: Path, max_frames: int | None = None) -> DecodeResult:
    """Decode ``path`` to RGB frames and time it (wall clock and this process's CPU time)."""
    width = height = frames = 0
    with AvFileSource(path) as source:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for frame in source:
            frames += 1
            height, width = frame.height, frame.width
            if max_frames is not None and frames >= max_frames:
                break
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return DecodeResult(str(path), "av", width, height, frames, wall, cpu)


@click.group("bench")
def bench_cli() -> None:
    """Measure the throughput of fqm's stages on this machine."""


@bench_cli.command("decode")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def decode_cli(source: Path, max_frames: int | None, as_json: bool) -> None:
    """Decode SOURCE (a video file) with PyAV and report frames/s and CPU ms per frame."""
    r = bench_decode(source, max_frames)
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
