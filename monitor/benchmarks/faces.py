"""``fqm bench faces``: throughput of the face stage's steps on a video (never asserted in tests).

Runs ``FaceStage`` (detection, tracking with shot cuts, landmarks for confirmed faces) and
``align_face`` for every face that got a mesh, on every frame of SOURCE, and times each step
with the wall clock. Decoding is not counted (``fqm bench decode`` measures it). For each step
the report gives its calls, milliseconds per call, and the frames per second the step alone
would sustain on this video (frames / its total time); ``total`` is all steps together.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    error: str | None = None  # what ended the run early (a decode failure), else None

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
    location: str | Path,
    *,
    detect_every: int = 1,
    max_frames: int | None = None,
    model: str = "short",
    threads: int = 1,
) -> FacesBenchResult:
    """Runs the face stage and alignment over ``location`` and times each step.

    The source is opened before the models load, so a missing or unreadable video fails in
    milliseconds. A decode failure later on ends the run: the result then holds the steps
    timed so far and ``error`` says what stopped it.

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
    from pipelines.errors import SourceError
    from pipelines.open import open_source
    from pipelines.urls import mask_url

    steps = {name: StepTime() for name in STEPS}
    events: list = []
    frames = width = height = landmarked = aligned = 0
    error = None
    with (
        open_source(location, "av", live=False) as source,
        FaceDetector(model, num_threads=threads) as detector,  # type: ignore[arg-type]
    ):
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
        try:
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
        except SourceError as exc:
            error = str(exc)
        events.extend(stage.finish())
    return FacesBenchResult(
        source=mask_url(str(location)),
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
        error=error,
    )


def format_table(r: FacesBenchResult) -> str:
    """The human-readable report: a summary line, then one row per step plus ``total``."""
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
    if r.error is not None:
        lines.append(f"partial: stopped after {r.frames} frames ({r.error})")
    return "\n".join(lines)
