"""The micro-batcher: scripted arrivals on a fake clock, queue policies, shutdown, stats.

Most tests run without a worker thread (``start=False``) and drive the batcher with
``run_once`` on a fake clock, so batch composition is deterministic; the engine is a fake
that records its calls. One test runs the worker thread with the real tiny engine. No
assertion depends on wall-clock speed; waits on futures are generous timeouts.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from engines.batcher import (
    BatcherClosedError,
    BatcherConfig,
    BatcherFullError,
    MicroBatcher,
)
from engines.quality_engine import EngineInfo, QualityScores
from tests.support.faces import generic_landmarks68

INFO = EngineInfo(variant="fake", mode="center", backend="fake", device="cpu")


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1000.0


class FakeEngine:
    """Scores a face by its first pixel; records batch sizes; can block or fail."""

    def __init__(self, clock: FakeClock | None = None, cost_ms: float = 0.0) -> None:
        self.calls: list[int] = []
        self.clock, self.cost_ms = clock, cost_ms
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.fail = False

    def score_faces(self, images: Any, landmarks: Any) -> QualityScores:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        if self.fail:
            raise RuntimeError("engine exploded")
        self.calls.append(len(images))
        if self.clock is not None:
            self.clock.advance_ms(self.cost_ms)
        n = len(images)
        scores = images[:, 0, 0, 0].astype(np.float32)
        return QualityScores(scores, scores[:, None], np.zeros((n, 1, 2), np.int64), INFO)


def face(value: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((512, 512, 3), value, np.uint8)
    return img, generic_landmarks68()


def manual(engine: FakeEngine, clock: FakeClock, **cfg: Any) -> MicroBatcher:
    return MicroBatcher(engine, BatcherConfig(**cfg), clock=clock, start=False)


def test_batches_close_at_max_size_or_at_the_deadline() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock, cost_ms=2)
    b = manual(engine, clock, max_batch=4, max_wait_ms=10, max_queue=16)
    # Script: (arrival ms, stream, track): six faces in a burst from three cameras.
    script = [(0, "cam1", 1), (1, "cam2", 5), (1, "cam1", 2), (2, "cam3", 9), (3, "cam2", 5)]
    script += [(4, "cam1", 1)]
    futures = []
    sizes = []
    for at, stream, track in script:
        clock.t = at / 1000.0
        futures.append(b.submit(*face(len(futures)), tag=(stream, track)))
        sizes.append(b.run_once())
    # The 4th face fills a batch at once; the 5th and 6th wait for their deadline.
    assert sizes == [0, 0, 0, 4, 0, 0]
    clock.t = 0.0129  # 9.9 ms after the 5th face arrived (at 3 ms): not due yet
    assert b.run_once() == 0
    clock.t = 0.003 + 0.010  # the oldest waiting face (at 3 ms) has waited 10 ms
    assert b.run_once() == 2
    # A straggler at 30 ms is alone: due at 40 ms.
    clock.t = 0.030
    script.append((30, "cam3", 9))
    futures.append(b.submit(*face(6), tag=("cam3", 9)))
    assert b.run_once() == 0
    clock.t = 0.0399
    assert b.run_once() == 0
    clock.t = 0.030 + 0.010
    assert b.run_once() == 1
    assert engine.calls == [4, 2, 1]
    results = [f.result(timeout=0) for f in futures]
    assert [r.tag for r in results] == [(s, t) for _, s, t in script]
    assert [r.quality.score for r in results] == [float(i) for i in range(7)]
    assert [r.batch_id for r in results] == [1, 1, 1, 1, 2, 2, 3]
    assert results[4].queue_wait_s == pytest.approx(0.010)
    assert results[5].queue_wait_s == pytest.approx(0.009)
    assert results[0].inference_s == pytest.approx(0.002)
    assert results[0].quality.backend == "fake"

    stats = b.stats()
    assert (stats.submitted, stats.completed, stats.batches, stats.pending) == (7, 7, 3, 0)
    assert stats.mean_batch_size == pytest.approx(7 / 3)
    assert stats.occupancy == pytest.approx(7 / 12)
    # Batch latency = oldest wait + inference: 2+2, 10+2, 10+2 ms.
    assert [r.latency_s for r in b.records()] == pytest.approx([0.004, 0.012, 0.012])
    assert stats.latency_p50_s == pytest.approx(0.012)
    assert stats.latency_p99_s == pytest.approx(0.012)
    assert stats.inference_p50_s == pytest.approx(0.002)


def test_reject_policy_counts_and_raises_at_once() -> None:
    clock = FakeClock()
    b = manual(FakeEngine(clock), clock, max_batch=2, max_queue=3, when_full="reject")
    for i in range(3):
        b.submit(*face(i))
    with pytest.raises(BatcherFullError, match="when_full=reject"):
        b.submit(*face(9))
    assert b.stats().rejected == 1
    assert b.run_once() == 2  # room again
    b.submit(*face(3))
    assert b.stats().pending == 2


def test_block_policy_waits_then_raises_with_advice() -> None:
    clock = FakeClock()
    b = manual(FakeEngine(clock), clock, max_batch=1, max_queue=1, block_timeout_s=0.0)
    b.submit(*face(0))
    with pytest.raises(BatcherFullError, match="stayed full"):
        b.submit(*face(1))
    assert b.stats().rejected == 1


def test_block_policy_resumes_when_the_worker_makes_room() -> None:
    engine = FakeEngine()
    engine.gate = threading.Event()
    b = MicroBatcher(engine, BatcherConfig(max_batch=1, max_wait_ms=0, max_queue=1))
    first = b.submit(*face(0))
    assert engine.entered.wait(30)  # the worker holds face 0 in a running batch
    b.submit(*face(1))  # fills the queue
    unblocked: list[Any] = []
    producer = threading.Thread(
        target=lambda: unblocked.append(b.submit(*face(2), timeout=60)), daemon=True
    )
    producer.start()
    engine.gate.set()  # the engine finishes, the worker takes face 1, face 2 gets room
    producer.join(60)
    assert len(unblocked) == 1
    assert unblocked[0].result(timeout=30).quality.score == 2.0
    assert first.result(timeout=30).quality.score == 0.0
    b.close()
    assert b.stats().rejected == 0


def test_close_drains_or_fails_pending() -> None:
    clock = FakeClock()
    b = manual(FakeEngine(clock), clock, max_batch=2, max_wait_ms=1000)
    futures = [b.submit(*face(i)) for i in range(3)]
    b.close(drain=True)  # no deadline needed: pending faces are scored in full batches
    assert [f.result(timeout=0).quality.score for f in futures] == [0.0, 1.0, 2.0]
    with pytest.raises(BatcherClosedError):
        b.submit(*face(0))

    b2 = manual(FakeEngine(clock), clock, max_batch=2, max_wait_ms=1000)
    pending = [b2.submit(*face(i)) for i in range(3)]
    b2.close(drain=False)
    for f in pending:
        with pytest.raises(BatcherClosedError):
            f.result(timeout=0)
    assert b2.stats().failed == 3


def test_engine_errors_fail_that_batch_only() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock)
    b = manual(engine, clock, max_batch=2)
    bad = [b.submit(*face(i)) for i in range(2)]
    engine.fail = True
    assert b.run_once() == 2
    engine.fail = False
    good = [b.submit(*face(i)) for i in range(2)]
    assert b.run_once() == 2
    for f in bad:
        with pytest.raises(RuntimeError, match="exploded"):
            f.result(timeout=0)
    assert [f.result(timeout=0).quality.score for f in good] == [0.0, 1.0]
    stats = b.stats()
    assert (stats.failed, stats.completed) == (2, 2)


def test_cancelled_faces_are_skipped() -> None:
    clock = FakeClock()
    engine = FakeEngine(clock)
    b = manual(engine, clock, max_batch=3)
    futures = [b.submit(*face(i)) for i in range(3)]
    assert futures[1].cancel()
    assert b.run_once() == 2
    assert engine.calls == [2]
    assert b.stats().cancelled == 1


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        BatcherConfig(max_batch=8, max_queue=4)
    with pytest.raises(ValueError, match="when_full"):
        BatcherConfig(when_full="drop")  # type: ignore[arg-type]


@pytest.mark.usefixtures("one_torch_thread")
def test_worker_thread_with_the_tiny_engine() -> None:
    from engines.backends import open_engine
    from engines.dslfiqa.random_weights import build_random

    model = build_random("dslfiqa-tiny", seed=1)
    engine = open_engine(model, "torch", mode="center")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 512, 512, 3), dtype=np.uint8)
    landmarks = np.stack([generic_landmarks68()] * 6)
    want = engine.score_faces(images, landmarks).scores
    with MicroBatcher(engine, BatcherConfig(max_batch=4, max_wait_ms=5)) as b:
        futures = [b.submit(images[i], landmarks[i], tag=(f"cam{i % 2}", i)) for i in range(6)]
        results = [f.result(timeout=120) for f in futures]
    assert [r.tag for r in results] == [(f"cam{i % 2}", i) for i in range(6)]
    np.testing.assert_allclose([r.quality.score for r in results], want, atol=1e-6)
    assert {r.quality.variant for r in results} == {"dslfiqa-tiny"}
    assert {r.quality.backend for r in results} == {"torch"}
    stats = b.stats()
    assert stats.completed == 6
    assert 1 <= stats.mean_batch_size <= 4
    print(stats)
