"""Decoding throughput (``fqm bench decode``): one stream, or N copies at once in threads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.open import open_source
from pipelines.source import DecodeOptions, Source
from pipelines.threaded import ThreadedSource
from pipelines.urls import default_stream_id, mask_url


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
    path: str | Path,
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
    return DecodeResult(mask_url(str(path)), backend, width, height, frames, wall, cpu, decoder)


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
    path: str | Path,
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
                stream_id=f"{default_stream_id(path)}-{i}",
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
    path: str | Path,
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
