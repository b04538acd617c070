"""Micro-batching of faces from many streams and tracks into one quality engine.

Producers (one per stream, or one per tracker) call :meth:`MicroBatcher.submit` with an
aligned face, its landmarks and an opaque ``tag`` (say ``(stream_id, track_id, pts)``) and
get a :class:`concurrent.futures.Future` of a :class:`BatchedFace`. A worker thread takes
pending faces, oldest first, as soon as ``max_batch`` are waiting or the oldest has waited
``max_wait_ms``, scores them with one ``engine.score_faces`` call and resolves the futures.
The batcher knows nothing of video or Kafka: faces in, scores out.

When the queue (faces waiting, not yet in a running batch) holds ``max_queue`` faces, the
``when_full`` policy applies:

* ``"block"`` (backpressure): ``submit`` waits up to ``block_timeout_s`` (or its own
  ``timeout``) for room, then raises :class:`BatcherFullError`; counted in ``rejected``.
  For producers that can slow down (a file, a replay).
* ``"reject"`` (load shedding): ``submit`` raises :class:`BatcherFullError` at once; counted
  in ``rejected``. For live streams, whose producer must not stall: drop the face and go on.

:meth:`close` stops accepting faces and either drains (scores what is pending) or fails
the pending futures with :class:`BatcherClosedError`; a running batch always completes.
:meth:`stats` gives per-batch latency (the oldest face's queue wait + inference), per-face
queue wait, inference time, mean batch size and occupancy, with p50/p99 over a window.

Time is injectable (``clock``), and ``start=False`` runs no thread: the caller drives the
batcher with :meth:`run_once`, which makes scripted arrivals deterministic in tests.

Example:
    >>> batcher = MicroBatcher(engine, BatcherConfig(max_batch=16))  # doctest: +SKIP
    >>> future = batcher.submit(face512, landmarks68, tag=("cam1", 7))  # doctest: +SKIP
    >>> future.result(timeout=5).quality.score  # doctest: +SKIP
    >>> batcher.close(drain=True)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from engines.quality_engine import FaceQuality, QualityScores, check_faces

__all__ = [
    "BatchRecord",
    "BatchedFace",
    "BatcherClosedError",
    "BatcherConfig",
    "BatcherFullError",
    "BatcherStats",
    "FaceScorer",
    "MicroBatcher",
]

WhenFull = Literal["block", "reject"]


class BatcherFullError(RuntimeError):
    """The queue is full (``reject``), or stayed full for the whole timeout (``block``)."""


class BatcherClosedError(RuntimeError):
    """The batcher is closed: no new faces, and pending ones were failed (``drain=False``)."""


class FaceScorer(Protocol):
    """What the batcher needs of an engine (every QualityEngine is one)."""

    def score_faces(self, images: Any, landmarks: Any) -> QualityScores: ...


@dataclass(frozen=True, kw_only=True)
class BatcherConfig:
    """Batching and queue policy.

    Attributes:
        max_batch: faces per engine call (each face is 1, 5 or 20 crops by mode; the
            engine splits crops into its own forward size).
        max_wait_ms: a batch starts when the oldest waiting face has waited this long,
            even if it is not full.
        max_queue: faces waiting at most (not counting a running batch); >= max_batch.
        when_full: ``block`` (wait up to ``block_timeout_s``, then raise) or ``reject``
            (raise at once); see the module docstring.
        block_timeout_s: ``block``: longest a ``submit`` waits for room.
        stats_window: batches (and faces) the percentiles are computed over.
    """

    max_batch: int = 16
    max_wait_ms: float = 10.0
    max_queue: int = 256
    when_full: WhenFull = "block"
    block_timeout_s: float = 1.0
    stats_window: int = 4096

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_queue < self.max_batch:
            raise ValueError(
                f"max_queue ({self.max_queue}) must be >= max_batch ({self.max_batch}), "
                "or batches could never fill"
            )
        if self.when_full not in ("block", "reject"):
            raise ValueError(f"when_full must be 'block' or 'reject', got {self.when_full!r}")
        if self.block_timeout_s < 0 or self.stats_window < 1:
            raise ValueError("block_timeout_s must be >= 0 and stats_window >= 1")


@dataclass(frozen=True)
class BatchedFace:
    """One scored face: the caller's tag, the score, and how it was batched."""

    tag: Any
    quality: FaceQuality
    batch_id: int
    batch_size: int
    queue_wait_s: float
    inference_s: float


@dataclass(frozen=True)
class BatchRecord:
    """One engine call: its size, the oldest face's wait, inference time, success."""

    batch_id: int
    size: int
    oldest_wait_s: float
    inference_s: float
    ok: bool

    @property
    def latency_s(self) -> float:
        """Worst face latency of the batch: the oldest face's queue wait + inference."""
        return self.oldest_wait_s + self.inference_s


@dataclass(frozen=True)
class BatcherStats:
    """Counters since start, and percentiles over the last ``stats_window`` batches/faces.

    ``occupancy`` is mean batch size / max_batch; ``pending`` the faces waiting now.
    Percentiles are ``nan`` before the first batch.
    """

    submitted: int
    completed: int
    failed: int
    rejected: int
    cancelled: int
    pending: int
    batches: int
    mean_batch_size: float
    occupancy: float
    latency_p50_s: float
    latency_p99_s: float
    queue_wait_p50_s: float
    queue_wait_p99_s: float
    inference_p50_s: float
    inference_p99_s: float


@dataclass
class _Request:
    image: np.ndarray
    landmarks: np.ndarray
    tag: Any
    future: Future[BatchedFace]
    arrived: float


def _pct(values: deque[float], q: float) -> float:
    return float(np.percentile(np.fromiter(values, float), q)) if values else float("nan")


class MicroBatcher:
    """Batch faces from many producers into one engine; see the module docstring.

    Args:
        engine: anything with ``score_faces(images, landmarks) -> QualityScores`` (a
            QualityEngine, opened with the crop mode to use).
        config: batching and queue policy.
        clock: seconds, monotonic; stamps arrivals and deadlines. With a worker thread it
            must advance in real time (the default); with ``start=False`` any clock works.
        start: start the worker thread; ``False`` = drive it with :meth:`run_once`.
    """

    def __init__(
        self,
        engine: FaceScorer,
        config: BatcherConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ):
        self.engine = engine
        self.config = config or BatcherConfig()
        self._clock = clock
        self._max_wait_s = self.config.max_wait_ms / 1000.0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._pending: deque[_Request] = deque()
        self._closing = False
        self._batch_id = 0
        window = self.config.stats_window
        self._records: deque[BatchRecord] = deque(maxlen=window)
        self._waits: deque[float] = deque(maxlen=window)
        self._counts = dict.fromkeys(
            ("submitted", "completed", "failed", "rejected", "cancelled", "batches", "faces"), 0
        )
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._work, name="fqm-batcher", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ producers

    def submit(
        self, image: Any, landmarks: Any, *, tag: Any = None, timeout: float | None = None
    ) -> Future[BatchedFace]:
        """Queue one aligned face (uint8 [512,512,3], landmarks [68,2]) for scoring.

        Args:
            tag: returned with the result (e.g. ``(stream_id, track_id, pts)``).
            timeout: ``block`` policy: longest wait for room; ``None`` = ``block_timeout_s``.

        Raises:
            BatcherFullError: the queue is full (see ``when_full``).
            BatcherClosedError: :meth:`close` was called.
            ValueError: the face or landmarks have the wrong shape or dtype.
        """
        images, points = check_faces(image, landmarks)
        if len(images) != 1:
            raise ValueError(f"submit takes one face, got {len(images)}; submit them one by one")
        future: Future[BatchedFace] = Future()
        with self._lock:
            if self._closing:
                raise BatcherClosedError("the batcher is closed; it accepts no more faces")
            if len(self._pending) >= self.config.max_queue:
                self._wait_for_room(timeout)
            self._pending.append(_Request(images[0], points[0], tag, future, self._clock()))
            self._counts["submitted"] += 1
            self._not_empty.notify()
        return future

    def _wait_for_room(self, timeout: float | None) -> None:
        """Lock held, queue full: apply ``when_full``; returns when there is room."""
        cap = self.config.max_queue
        if self.config.when_full == "block":
            wait = self.config.block_timeout_s if timeout is None else timeout
            self._not_full.wait_for(lambda: len(self._pending) < cap or self._closing, wait)
            if self._closing:
                raise BatcherClosedError("the batcher closed while this face waited for room")
            if len(self._pending) < cap:
                return
            self._counts["rejected"] += 1
            raise BatcherFullError(
                f"the quality queue stayed full ({cap} faces) for {wait:g} s; the engine is "
                "slower than the faces arrive: score fewer faces or use a faster backend"
            )
        self._counts["rejected"] += 1
        raise BatcherFullError(
            f"the quality queue is full ({cap} faces); this face was dropped (when_full=reject)"
        )

    # ------------------------------------------------------------ worker

    def _ready(self, now: float) -> bool:
        if not self._pending:
            return False
        if len(self._pending) >= self.config.max_batch or self._closing:
            return True
        return now >= self._pending[0].arrived + self._max_wait_s  # the oldest's deadline

    def _take(self) -> list[_Request]:
        n = min(self.config.max_batch, len(self._pending))
        batch = [self._pending.popleft() for _ in range(n)]
        self._not_full.notify_all()
        return batch

    def run_once(self) -> int:
        """Without a worker (``start=False``): run one batch if one is due now.

        Returns:
            The batch size (0 when nothing was due).
        """
        if self._thread is not None:
            raise RuntimeError("run_once is for a batcher made with start=False")
        with self._lock:
            if not self._ready(self._clock()):
                return 0
            batch = self._take()
        return self._run(batch)

    def _work(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._closing and not self._pending:
                        return
                    now = self._clock()
                    if self._ready(now):
                        batch = self._take()
                        break
                    wait = (
                        None
                        if not self._pending
                        else self._pending[0].arrived + self._max_wait_s - now
                    )
                    self._not_empty.wait(wait)
            self._run(batch)

    def _run(self, batch: list[_Request]) -> int:
        """Score ``batch`` (lock not held) and resolve its futures; returns the faces run."""
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        with self._lock:
            self._counts["cancelled"] += len(batch) - len(live)
            self._batch_id += 1
            batch_id = self._batch_id
        if not live:
            return 0
        start = self._clock()
        waits = [start - r.arrived for r in live]
        try:
            out = self.engine.score_faces(
                np.stack([r.image for r in live]), np.stack([r.landmarks for r in live])
            )
            if len(out) != len(live):
                raise RuntimeError(f"the engine returned {len(out)} scores for {len(live)} faces")
        except Exception as exc:  # every face of the batch gets the engine's error
            inference = self._clock() - start
            self._record(BatchRecord(batch_id, len(live), max(waits), inference, False), waits)
            for r in live:
                r.future.set_exception(exc)
            return len(live)
        inference = self._clock() - start
        self._record(BatchRecord(batch_id, len(live), max(waits), inference, True), waits)
        for i, (r, wait) in enumerate(zip(live, waits, strict=True)):
            r.future.set_result(BatchedFace(r.tag, out[i], batch_id, len(live), wait, inference))
        return len(live)

    def _record(self, record: BatchRecord, waits: list[float]) -> None:
        with self._lock:
            self._records.append(record)
            self._waits.extend(waits)
            self._counts["batches"] += 1
            self._counts["faces"] += record.size
            self._counts["completed" if record.ok else "failed"] += record.size

    # ------------------------------------------------------------ life and stats

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting faces; score (``drain``) or fail the pending ones; stop the worker.

        Args:
            drain: ``True`` scores every pending face (in full batches, without waiting for
                deadlines); ``False`` fails them with :class:`BatcherClosedError`.
            timeout: longest wait for the worker thread to finish.
        """
        with self._lock:
            self._closing = True
            dropped = [] if drain else list(self._pending)
            if not drain:
                self._pending.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()
        for r in dropped:
            if r.future.set_running_or_notify_cancel():
                r.future.set_exception(BatcherClosedError("the batcher closed before scoring"))
        with self._lock:
            self._counts["failed"] += len(dropped)
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            while True:
                with self._lock:
                    if not self._pending:
                        break
                    batch = self._take()
                self._run(batch)

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    def stats(self) -> BatcherStats:
        """Counters and percentiles now (see :class:`BatcherStats`)."""
        with self._lock:
            records, waits = list(self._records), deque(self._waits)
            c, pending = dict(self._counts), len(self._pending)
        sizes = [r.size for r in records]
        mean = float(np.mean(sizes)) if sizes else float("nan")
        latency = deque(r.latency_s for r in records)
        inference = deque(r.inference_s for r in records)
        return BatcherStats(
            submitted=c["submitted"],
            completed=c["completed"],
            failed=c["failed"],
            rejected=c["rejected"],
            cancelled=c["cancelled"],
            pending=pending,
            batches=c["batches"],
            mean_batch_size=mean,
            occupancy=mean / self.config.max_batch,
            latency_p50_s=_pct(latency, 50),
            latency_p99_s=_pct(latency, 99),
            queue_wait_p50_s=_pct(waits, 50),
            queue_wait_p99_s=_pct(waits, 99),
            inference_p50_s=_pct(inference, 50),
            inference_p99_s=_pct(inference, 99),
        )

    def records(self) -> list[BatchRecord]:
        """The last ``stats_window`` batches, oldest first."""
        with self._lock:
            return list(self._records)
