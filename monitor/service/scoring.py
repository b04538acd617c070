"""``StreamScorer``: one stream's glue between the policy, the shared batcher and the book.

Per frame:

1. **look** only at faces that may be scored (``ScoringPolicy.wants_look``: not tiny, a
   token in the budget, the track new, due or not looked at for ``look_interval``):
   landmarks, alignment and cheap signals cost about as much as detection, so the other
   faces of the frame get none of them;
2. let ``ScoringPolicy.select`` choose among those, and submit the chosen faces to the
   shared ``MicroBatcher`` without waiting;
3. queue the frame (its lifecycle events and its faces' futures) behind the frames still
   waiting for scores, and hand every frame at the head of that queue whose scores are all
   in to the ``TrackQualityBook``, in frame order; the policy gets the book's updates back.

So the stream keeps detecting while the engine scores (pipelining), and its events stay in
frame order. The queue holds at most ``max_pending`` frames that wait for scores (frames
without scored faces pass straight through when nothing is ahead of them); when it is full
the stream waits for its oldest frame's scores: a file is thereby slowed to the engine's
pace (backpressure), and a live source, which keeps decoding on its reader thread, drops
frames in its own bounded queue instead. When the batcher's queue is full a file blocks on
``submit``; a live stream drops the face at once (counted in ``faces_dropped``). A score
that does not come within ``score_timeout_s`` (the engine is stuck) fails the stream with
that reason instead of hanging it.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from engines.batcher import BatchedFace, BatcherFullError, MicroBatcher
from monitor.faces import FaceLandmarker, FacesFrame
from monitor.faces.tracking import TrackEvent
from monitor.tracks import (
    PolicyConfig,
    ScoredFace,
    ScoringBudget,
    ScoringPolicy,
    TrackQualityBook,
    TrackQualityConfig,
    TrackUpdate,
)
from monitor.tracks.candidates import (
    face_size,
    frame_candidates,
    lookable_rows,
    with_landmarks,
    with_score,
)
from pipelines.frame import Frame

#: How long a file's submit waits for room in a full batcher queue before trying again.
FILE_SUBMIT_WAIT_S = 5.0
#: Frames waiting for scores, at most: 20 s at 30 fps, longer than the slowest engine the
#: budget allows takes for one face (the official model on one CPU thread: 3-8 s), so a
#: stream does not stall on the engine. A waiting frame without scored faces keeps only its
#: lifecycle events; the aligned faces in flight are bounded by the budget and the batcher.
MAX_PENDING_FRAMES = 600
#: Longest wait for one face's score before the stream gives up on the engine.
SCORE_TIMEOUT_S = 300.0


class EngineStuckError(RuntimeError):
    """A score did not come back in time: the engine is stuck or far too slow."""


@dataclass
class _Pending:
    """A frame whose book step waits for its faces' scores."""

    wall_time: float
    events: tuple[TrackEvent, ...]
    faces: list[tuple[ScoredFace, Future[BatchedFace]]]


class FrameUpdates(NamedTuple):
    """The book's updates for one frame, with that frame's wall time (its events')."""

    wall_time: float
    updates: tuple[TrackUpdate, ...]


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent in this scorer's stages on one frame (for metrics)."""

    look: float = 0.0
    submit: float = 0.0
    book: float = 0.0


class StreamScorer:
    """One stream's policy and book, scoring through the shared batcher.

    Args:
        stream_id: the stream.
        batcher: the process's shared batcher.
        landmarker: this stream's landmarker (not thread-safe: made on the stream's thread,
            which sets it before the first ``step``).
        live: live streams drop faces when the batcher is full; files wait.
        budget: a budget shared with other streams (then its clock is ``time.monotonic``);
            default: this stream's own budget on the stream's clock.
    """

    def __init__(
        self,
        stream_id: str,
        batcher: MicroBatcher,
        landmarker: FaceLandmarker | None = None,
        *,
        live: bool,
        policy: PolicyConfig | None = None,
        quality: TrackQualityConfig | None = None,
        budget: ScoringBudget | None = None,
        max_pending: int = MAX_PENDING_FRAMES,
        score_timeout_s: float = SCORE_TIMEOUT_S,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.stream_id = stream_id
        self.batcher = batcher
        self.landmarker = landmarker
        self.live = live
        self.shared_budget = budget is not None
        self.policy = ScoringPolicy(policy or PolicyConfig(), budget or ScoringBudget())
        self.book = TrackQualityBook(stream_id, quality or TrackQualityConfig())
        self.max_pending = max_pending
        self.score_timeout_s = score_timeout_s
        self.faces_seen = 0
        self.faces_looked = 0
        self.faces_scored = 0
        self.faces_dropped = 0
        self.last_times = StageTimes()
        self._pending: deque[_Pending] = deque()
        self._batches_seen: set[int] = set()

    @property
    def pending_frames(self) -> int:
        """Frames waiting for scores (a queue depth)."""
        return len(self._pending)

    def step(self, frame: Frame, result: FacesFrame, now: float) -> list[FrameUpdates]:
        """Looks, selects and submits this frame's faces; returns the book's updates of every
        frame whose scores are in (this one's, or earlier ones'), in frame order."""
        t0 = time.perf_counter()
        budget_now = time.monotonic() if self.shared_budget else None
        rows = lookable_rows(result)
        self.faces_seen += len(rows)
        wanted = [
            row
            for row in rows
            if self.policy.wants_look(
                int(result.faces.track_ids[row]),
                face_size(result.faces.xyxy[row]),
                frame=frame.index,
                now=now,
                budget_now=budget_now,
            )
        ]
        self.faces_looked += len(wanted)
        if wanted and self.landmarker is None:
            raise RuntimeError("StreamScorer.step before its landmarker was set")
        futures: list[tuple[ScoredFace, Future[BatchedFace]]] = []
        t1 = t0
        if wanted:
            looked = with_landmarks(
                frame.image, result, np.asarray(wanted, np.int64), self.landmarker
            )
            pairs = frame_candidates(frame.image, looked, result.pts)
            t1 = time.perf_counter()
            pending = {face.track_id: face for face, _ in pairs}
            plan = self.policy.select(
                [c for _, c in pairs], frame=frame.index, now=now, budget_now=budget_now
            )
            for decision in plan.score:
                face = pending[decision.candidate.track_id]
                future = self._submit(face)
                if future is not None:
                    futures.append((face, future))
        t2 = time.perf_counter()
        self._pending.append(_Pending(frame.wall_time, result.events, futures))
        updates = self._drain()
        self.last_times = StageTimes(t1 - t0, t2 - t1, time.perf_counter() - t2)
        return updates

    def finish(self, events, wall_time: float) -> list[FrameUpdates]:
        """Waits for every pending score, then applies the stage's final ENDED events."""
        updates = self._drain(everything=True)
        final = self.book.step(events)
        self.policy.apply(final)
        return [*updates, FrameUpdates(wall_time, final)]

    def _drain(self, *, everything: bool = False) -> list[FrameUpdates]:
        """Book steps for the frames at the head whose scores are in; waits for the oldest
        while more than ``max_pending`` are queued (for all of them with ``everything``)."""
        out: list[FrameUpdates] = []
        while self._pending:
            head = self._pending[0]
            must = everything or len(self._pending) > self.max_pending
            if not must and not all(f.done() for _, f in head.faces):
                break
            self._pending.popleft()
            scored = []
            for face, future in head.faces:
                try:
                    done = future.result(timeout=self.score_timeout_s)
                except FutureTimeout:
                    raise EngineStuckError(
                        f"no score from the quality engine in {self.score_timeout_s:.0f} s"
                    ) from None
                self._observe(done)
                scored.append(with_score(face, done.quality.score))
            self.faces_scored += len(scored)
            updates = self.book.step(head.events, scored)
            self.policy.apply(updates)
            out.append(FrameUpdates(head.wall_time, updates))
        return out

    def _submit(self, face: ScoredFace) -> Future[BatchedFace] | None:
        assert face.face is not None
        tag = (self.stream_id, face.track_id, face.frame)
        if self.live:
            try:
                return self.batcher.submit(face.face.image, face.face.landmarks, tag=tag, timeout=0)
            except BatcherFullError:
                self.faces_dropped += 1
                return None
        while True:  # a file waits for room: backpressure
            try:
                return self.batcher.submit(
                    face.face.image, face.face.landmarks, tag=tag, timeout=FILE_SUBMIT_WAIT_S
                )
            except BatcherFullError:
                continue

    def _observe(self, done: BatchedFace) -> None:
        if done.batch_id in self._batches_seen:
            return
        if len(self._batches_seen) > 4096:
            self._batches_seen.clear()
        self._batches_seen.add(done.batch_id)
        self.policy.budget.observe_engine(done.batch_size, done.inference_s)
