"""Bounded hand-off from a decoding thread to its consumer, and file replay at real-time pace.

Live sources must never let a slow consumer build a backlog (memory grows and every result
arrives later and later), so their queue drops the OLDEST frame when full and counts it.
Files block the decoder instead, so that every frame is processed exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from enum import Enum

from pipelines.frame import Frame

#: Frames a live queue holds: like Frigate's 2, enough to absorb jitter and never stale.
LIVE_QUEUE_SIZE = 2
#: Frames a file queue holds: lets the decoder run ahead of a consumer with uneven cost.
FILE_QUEUE_SIZE = 8


class Overflow(Enum):
    """What ``FrameQueue.put`` does when the queue is full."""

    DROP_OLDEST = "drop_oldest"  # live: keep the newest frames, count the drop
    BLOCK = "block"  # files: wait for room, lose nothing


class QueueClosed(Exception):
    """``get`` on a queue that was closed and is empty."""


class FrameQueue:
    """A bounded, thread-safe FIFO of frames with an end marker that may carry an error.

    Args:
        maxsize: capacity in frames (see ``LIVE_QUEUE_SIZE`` / ``FILE_QUEUE_SIZE``).
        overflow: ``DROP_OLDEST`` or ``BLOCK``.
    """

    def __init__(self, maxsize: int, overflow: Overflow) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.overflow = overflow
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, frame: Frame) -> bool:
        """Add ``frame``; return ``False`` (frame discarded) once the queue is finished."""
        with self._cond:
            if self.overflow is Overflow.BLOCK:
                while len(self._items) >= self.maxsize and not self._finished:
                    self._cond.wait()
            elif len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            if self._finished:
                return False
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the end: ``get`` drains what is left, then raises ``error`` or ``QueueClosed``."""
        with self._cond:
            if not self._finished:
                self._finished, self._error = True, error
            self._cond.notify_all()

    def discard(self) -> None:
        """Finish and drop everything queued (the consumer is going away)."""
        with self._cond:
            self._items.clear()
            self._finished = True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame; ``None`` after ``timeout`` seconds without one.

        Raises:
            QueueClosed: the queue is finished and empty (and had no error).
            BaseException: the error the queue was finished with, once it is empty.
        """
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._finished:
                    if self._error is not None:
                        raise self._error
                    raise QueueClosed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame


def drain(queue: FrameQueue, on_frame: Callable[[], None]) -> Iterator[Frame]:
    """Yield the frames a reader thread puts in ``queue`` until it finishes.

    ``on_frame`` runs after each frame and once more when the stream ends, error or not, so the
    consumer's stats are current whenever control returns to it. An error the reader finished
    the queue with is raised here, in the consumer's thread.
    """
    while True:
        try:
            frame = queue.get()
        except QueueClosed:
            on_frame()
            return
        except BaseException:
            on_frame()
            raise
        if frame is not None:  # a wake-up without a frame
            on_frame()
            yield frame


def paced(
    frames: Iterable[Frame],
    speed: float = 1.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Frame]:
    """Yield ``frames`` no faster than their pts say: a file replayed like a live camera.

    Args:
        frames: frames with pts (frames without pts pass at once).
        speed: 1.0 is real time, 2.0 twice as fast.
        clock, sleep: injectable for tests.
    """
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    origin: tuple[float, float] | None = None  # (pts, clock) of the first frame
    for frame in frames:
        if frame.pts is not None:
            if origin is None or frame.pts < origin[0]:  # first frame, or the file looped
                origin = (frame.pts, clock())
            due = origin[1] + (frame.pts - origin[0]) / speed
            wait = due - clock()
            if wait > 0:
                sleep(wait)
        yield frame
