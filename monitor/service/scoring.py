"""``StreamScorer``: one stream's glue between the policy, the shared batcher and the book.

Per frame: align each confirmed face that has landmarks and compute its cheap signals, let
``ScoringPolicy.select`` choose, submit the chosen faces to the shared ``MicroBatcher``,
wait for their scores, feed them to the ``TrackQualityBook`` with the frame's lifecycle
events, give the updates back to the policy, and feed each batch's measured engine speed
to the policy's budget (``ScoringBudget.observe_engine``).

The stream waits for its own faces' scores before the next frame (other streams' faces
batch with them meanwhile): a file is thereby slowed to the engine's pace (backpressure),
and a live source, which keeps decoding on its reader thread, drops frames in its own
bounded queue instead. When the batcher's queue is full a file blocks on ``submit``; a
live stream drops the face at once (counted in ``faces_dropped``).
"""

from __future__ import annotations

from concurrent.futures import Future

from engines.batcher import BatchedFace, BatcherFullError, MicroBatcher
from monitor.faces import FacesFrame
from monitor.tracks import (
    PolicyConfig,
    ScoredFace,
    ScoringBudget,
    ScoringPolicy,
    TrackQualityBook,
    TrackQualityConfig,
    TrackUpdate,
)
from monitor.tracks.candidates import frame_candidates, with_score
from pipelines.frame import Frame

#: How long a file's submit waits for room in a full batcher queue before trying again.
FILE_SUBMIT_WAIT_S = 5.0


class StreamScorer:
    """One stream's policy and book, scoring through the shared batcher."""

    def __init__(
        self,
        stream_id: str,
        batcher: MicroBatcher,
        *,
        live: bool,
        policy: PolicyConfig | None = None,
        quality: TrackQualityConfig | None = None,
        budget: ScoringBudget | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.batcher = batcher
        self.live = live
        self.policy = ScoringPolicy(policy or PolicyConfig(), budget or ScoringBudget())
        self.book = TrackQualityBook(stream_id, quality or TrackQualityConfig())
        self.faces_seen = 0
        self.faces_scored = 0
        self.faces_dropped = 0
        self._batches_seen: set[int] = set()

    def step(self, frame: Frame, result: FacesFrame, now: float) -> tuple[TrackUpdate, ...]:
        """Score what the policy chooses on this frame; the book's updates, in order."""
        pairs = frame_candidates(frame.image, result, result.pts)
        pending = {face.track_id: face for face, _ in pairs}
        candidates = [candidate for _, candidate in pairs]
        self.faces_seen += len(candidates)
        scored: list[ScoredFace] = []
        if candidates:
            plan = self.policy.select(candidates, frame=frame.index, now=now)
            futures: list[tuple[ScoredFace, Future[BatchedFace]]] = []
            for decision in plan.score:
                face = pending[decision.candidate.track_id]
                future = self._submit(face)
                if future is not None:
                    futures.append((face, future))
            for face, future in futures:
                done = future.result()
                self._observe(done)
                scored.append(with_score(face, done.quality.score))
        self.faces_scored += len(scored)
        updates = self.book.step(result.events, scored)
        self.policy.apply(updates)
        return updates

    def finish(self, events) -> tuple[TrackUpdate, ...]:
        """The stage's final ENDED events: every live track's summary."""
        updates = self.book.step(events)
        self.policy.apply(updates)
        return updates

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
