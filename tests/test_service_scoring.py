"""``StreamScorer`` on real frames, the real face stage and a real (tiny, random) engine whose
scores are held back at a gate: the stream keeps going while scores are out, the book sees
frames in order, and the queue of frames waiting for scores is bounded."""

from __future__ import annotations

import threading

import pytest

from engines.batcher import BatcherConfig, MicroBatcher
from monitor.assets import asset_path
from monitor.faces import FaceDetector, FaceLandmarker, FaceStage
from monitor.service.run import ServiceConfig, open_model
from monitor.service.scoring import StreamScorer
from monitor.tracks import ScoreRecorded
from pipelines.open import open_source
from tests.support.clips import cut


class GatedEngine:
    """The real engine, run only when the gate is open (a slow engine, on demand)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.gate = threading.Event()

    def score_faces(self, images, landmarks):
        assert self.gate.wait(60), "the test never opened the gate"
        return self.engine.score_faces(images, landmarks)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list:
    clip = cut(asset_path("franck.mp4"), tmp_path_factory.mktemp("c") / "franck.mp4", 40)
    detector = FaceDetector()
    stage = FaceStage(detector)
    source = open_source(str(clip))
    source.open()
    try:
        return [(f, stage.process(f)) for f in source]
    finally:
        source.close()
        detector.close()


@pytest.fixture
def gated():
    engine, _ = open_model(ServiceConfig(sources=(), variant="dslfiqa-tiny"))
    gated = GatedEngine(engine)
    batcher = MicroBatcher(gated, BatcherConfig(max_batch=4, max_wait_ms=1.0, max_queue=16))
    yield gated, batcher
    gated.gate.set()
    batcher.close(drain=False, timeout=10)


def scorer(batcher: MicroBatcher, max_pending: int) -> StreamScorer:
    return StreamScorer("franck", batcher, FaceLandmarker(), live=False, max_pending=max_pending)


def test_the_stream_goes_on_while_scores_are_out_and_the_book_sees_frames_in_order(
    frames: list, gated
) -> None:
    engine, batcher = gated
    s = scorer(batcher, max_pending=64)
    early = []
    for frame, result in frames[:30]:
        early += [u for _, ups in s.step(frame, result, frame.pts) for u in ups]
    assert s.faces_looked > 0
    assert s.pending_frames > 0  # frames queued behind the first scored face
    assert not [u for u in early if isinstance(u, ScoreRecorded)]
    engine.gate.set()
    ready = []
    for frame, result in frames[30:]:
        ready += s.step(frame, result, frame.pts)
    ready += s.finish((), 0.0)
    walls = [w for w, _ in ready]
    assert walls[:-1] == sorted(walls[:-1])  # each frame's own wall time, in order
    late = [u for _, ups in ready for u in ups]
    recorded = [u.face.frame for u in late if isinstance(u, ScoreRecorded)]
    assert recorded, "no face was scored"
    assert recorded == sorted(recorded)
    assert s.pending_frames == 0
    assert s.faces_scored == len(recorded)


def test_a_full_queue_of_waiting_frames_holds_the_stream(frames: list, gated) -> None:
    engine, batcher = gated
    s = scorer(batcher, max_pending=3)
    done = threading.Event()

    def feed() -> None:
        for frame, result in frames:
            s.step(frame, result, frame.pts)
        done.set()

    worker = threading.Thread(target=feed, daemon=True)
    worker.start()
    assert not done.wait(3.0), "the stream ran on with its scores held back"
    assert s.pending_frames <= 4  # the bound, plus the frame being stepped
    engine.gate.set()
    assert done.wait(120)
    worker.join()


def test_a_stuck_engine_fails_the_stream_with_the_reason(frames: list, gated) -> None:
    _engine, batcher = gated
    s = StreamScorer("franck", batcher, FaceLandmarker(), live=False, score_timeout_s=0.5)
    for frame, result in frames[:10]:
        s.step(frame, result, frame.pts)
    with pytest.raises(RuntimeError, match="no score from the quality engine"):
        s.finish((), 0.0)
