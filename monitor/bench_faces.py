"""``fqm bench faces``: throughput of the face stage's steps on a video (never asserted in tests).

Runs ``FaceStage`` (detection, tracking with shot cuts, landmarks for confirmed faces) and
``align_face`` for every face that got a mesh, on every frame of SOURCE, and times each step
with the wall clock. Decoding is not counted (``fqm bench decode`` measures it). For each step
the report gives its calls, milliseconds per call, and the frames per second the step alone
would sustain on this video (frames / its total time); ``total`` is all steps together.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

STEPS = ("detection", "tracking", "landmarks", "alignment")


@dataclass
class StepTime:
    calls: int = 0
    seconds: float = 0.0


@dataclass
class FacesBenchResult:
    source: str
    width: int
    height: int
    frames: int
    detect_every: int
    model: str
    threads: int
    tracks: int
    faces_landmarked: int
    faces_aligned: int
    steps: dict[str, StepTime] = field(default_factory=dict)

    def fps(self, seconds: float) -> float:
        return self.frames / seconds if seconds > 0 else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per step plus ``total``: calls, ms per call, ms per frame, fps."""
        out = []
        total = sum(s.seconds for s in self.steps.values())
        for name, s in [*self.steps.items(), ("total", StepTime(self.frames, total))]:
            out.append(
                {
                    "step": name,
                    "calls": s.calls,
                    "ms_per_call": 1000 * s.seconds / s.calls if s.calls else 0.0,
                    "ms_per_frame": 1000 * s.seconds / self.frames if self.frames else 0.0,
                    "fps": self.fps(s.seconds),
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = {r["step"]: r for r in self.rows()}
        return d


class _Timed:
    """Delegates to ``target``, adding the wall time of the named methods to a ``StepTime``."""

    def __init__(self, target: object, timings: dict[str, StepTime]) -> None:
        self._target = target
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        step = self._timings.get(name)
        if step is None or not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                step.seconds += time.perf_counter() - t0
                step.calls += 1

        return timed


def bench_faces(
    path: Path,
    *,
    detect_every: int = 1,
    max_frames: int | None = None,
    model: str = "short",
    threads: int = 1,
) -> FacesBenchResult:
    """Runs the face stage and alignment over ``path`` and times each step.

    ``threads`` is the LiteRT interpreters' thread count (the landmarker's and the full-range
    detector's ``num_threads``); torch's thread count (crop warps, the full-range detector's
    resize) is whatever the caller set.
    """
    import numpy as np

    from monitor.faces import (
        FaceDetector,
        FaceLandmarker,
        FaceStage,
        FaceTracker,
        TrackEventKind,
    )
    from monitor.faces.align import align_face
    from pipelines.av_source import AvFileSource

    steps = {name: StepTime() for name in STEPS}
    with FaceDetector(model, num_threads=threads) as detector:  # type: ignore[arg-type]
        stage = FaceStage(
            _Timed(detector, {"detect": steps["detection"]}),  # type: ignore[arg-type]
            tracker=_Timed(  # type: ignore[arg-type]
                FaceTracker(), {m: steps["tracking"] for m in ("update", "coast", "finish")}
            ),
            landmarker=_Timed(  # type: ignore[arg-type]
                FaceLandmarker(num_threads=threads), {"landmarks": steps["landmarks"]}
            ),
            detect_every=detect_every,
        )
        events: list = []
        frames = width = height = landmarked = aligned = 0
        with AvFileSource(path) as source:
            for frame in source:
                if max_frames is not None and frames >= max_frames:
                    break
                frames += 1
                height, width = frame.height, frame.width
                before = sum(s.seconds for s in steps.values())
                t0 = time.perf_counter()
                result = stage.process(frame)
                elapsed = time.perf_counter() - t0
                # Shot-cut checks and the stage's own bookkeeping count as tracking.
                steps["tracking"].seconds += elapsed - (
                    sum(s.seconds for s in steps.values()) - before
                )
                events.extend(result.events)
                found = np.flatnonzero(result.landmarks.found)
                landmarked += len(found)
                t0 = time.perf_counter()
                for row in found:
                    align_face(frame.image, result.faces.xyxy[row], result.landmarks.ibug68[row])
                if len(found):
                    steps["alignment"].calls += len(found)
                    steps["alignment"].seconds += time.perf_counter() - t0
                aligned += len(found)
        events.extend(stage.finish())
    return FacesBenchResult(
        source=str(path),
        width=width,
        height=height,
        frames=frames,
        detect_every=detect_every,
        model=model,
        threads=threads,
        tracks=len({e.track_id for e in events if e.kind == TrackEventKind.CONFIRMED}),
        faces_landmarked=landmarked,
        faces_aligned=aligned,
        steps=steps,
    )


def _table(r: FacesBenchResult) -> str:
    lines = [
        f"{Path(r.source).name}: {r.width}x{r.height}, {r.frames} frames, model {r.model}, "
        f"detect every {r.detect_every}, {r.threads} LiteRT thread(s); {r.tracks} track(s), "
        f"{r.faces_landmarked} meshes, {r.faces_aligned} aligned faces",
        f"{'step':<10} {'calls':>6} {'ms/call':>8} {'ms/frame':>8} {'fps':>8}",
    ]
    for row in r.rows():
        lines.append(
            f"{row['step']:<10} {row['calls']:>6} {row['ms_per_call']:>8.2f} "
            f"{row['ms_per_frame']:>8.2f} {row['fps']:>8.1f}"
        )
    return "\n".join(lines)


@click.command("faces")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--detect-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run the detector on one frame in N (the tracker coasts in between).",
)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--model",
    type=click.Choice(["short", "full", "both"]),
    default="short",
    show_default=True,
    help="Detector model.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPU threads for LiteRT (landmarks, full-range detection) and torch in this process.",
)
def faces_cli(
    source: Path,
    as_json: bool,
    detect_every: int,
    max_frames: int | None,
    model: str,
    threads: int,
) -> None:
    """Frames/s of face detection, tracking, landmarks and alignment on SOURCE (a video)."""
    import torch

    torch.set_num_threads(threads)  # this command owns its process
    r = bench_faces(
        source, detect_every=detect_every, max_frames=max_frames, model=model, threads=threads
    )
    click.echo(json.dumps(r.to_json()) if as_json else _table(r))
