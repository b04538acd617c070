"""``StreamWorker``: one thread per stream: source -> face stage -> scorer -> emitter.

The source is opened here (``open_source``: files are read at the pipeline's pace, live
streams are supervised, with a bounded frame queue that drops the oldest frame when the
worker lags). The face stage (detector and landmarker: not thread-safe) is this thread's own.

A stream's ``analyse_fps`` is the source's ``DecodeOptions.max_fps``: pictures beyond it are
decoded (later pictures depend on them) but dropped before their RGB conversion, and the
face stage, tracker and scorer never see them, as Frigate's ``detect.fps`` does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.faces import TrackState
from monitor.service.emit import EventEmitter
from monitor.service.observe import NULL_OBSERVER, ServiceObserver
from monitor.service.scoring import StreamScorer
from monitor.service.snapshots import FrameRate, StreamStatus
from pipelines.events import Reconnecting
from pipelines.source import Source
from pipelines.supervisor import SupervisedSource
from pipelines.urls import mask_url

log = logging.getLogger(__name__)


#: Names of the stages a worker times (``on_stage`` callback; metrics' ``stage`` label).
STAGES = ("decode", "faces", "look", "submit", "book", "emit")


@dataclass
class StreamProgress:
    """Counters the worker updates and the runner reads (plain ints: racy reads are fine).

    ``frames`` counts frames the face stage saw; ``frames_skipped`` pictures decoded but
    thinned out by the stream's ``analyse_fps``; ``position_s`` is the last frame's pts;
    ``status`` the last status (``up``, ``reconnecting``, ... ``down``).
    """

    frames: int = 0
    frames_skipped: int = 0
    position_s: float | None = None
    status: str = "starting"
    faces_seen: int = 0
    faces_looked: int = 0
    faces_scored: int = 0
    faces_dropped: int = 0
    tracks: int = 0
    best_score: float | None = None
    done: bool = False
    error: str = ""


class StreamWorker(threading.Thread):
    """Runs one stream until it ends, ``max_frames`` are read, or ``stop`` is set."""

    #: The plan it runs (``monitor.config.StreamPlan``), set by the service.
    plan = None
    #: The ``down`` status's reason when it is told to stop (``request_stop``).
    stop_reason = "stopped"

    def __init__(
        self,
        location: str,
        source: Source,
        scorer: StreamScorer,
        emitter: EventEmitter,
        make_stage: Callable[[], tuple[object, object, Callable[[], None]]],
        *,
        live: bool,
        max_frames: int | None = None,
        observer: ServiceObserver = NULL_OBSERVER,
    ) -> None:
        super().__init__(name=f"fqm-stream-{source.stream_id}", daemon=True)
        self.location = mask_url(location)
        self.source = source
        self.scorer = scorer
        self.emitter = emitter
        self.make_stage = make_stage
        self.live = live
        self.max_frames = max_frames
        self.observer = observer
        self.started_at: float | None = None
        self.stop = threading.Event()
        self.progress = StreamProgress()
        self.status = StreamStatus.now("connecting", "starting")
        self.rate = FrameRate()
        self._broken = threading.Event()
        self._tracks: set[int] = set()
        if isinstance(source, SupervisedSource):
            source.on_event = self._on_status

    @property
    def stream_id(self) -> str:
        return self.source.stream_id

    def request_stop(self, reason: str | None = None) -> None:
        """Stop reading; a live source is closed at once (its reader may be blocked).
        ``reason`` is the ``down`` status's reason (default ``stopped``)."""
        if reason:
            self.stop_reason = reason
        self.stop.set()
        if self.live:
            self.source.close()

    def _counts(self) -> dict:
        s = self.source.stats  # frames: every picture decoded, analysed or thinned out
        return {"frames": s.frames + s.skipped, "dropped": s.dropped, "corrupt": s.corrupt_packets}

    def _on_status(self, event) -> None:
        if isinstance(event, Reconnecting):
            self._broken.set()  # the worker ends every track before the next frame
        with contextlib.suppress(TypeError):  # not a state change
            self.status = StreamStatus.from_event(event)
        state = self.emitter.source_status(event, **self._counts())
        if state is not None:
            self.progress.status = state

    def run(self) -> None:
        p = self.progress
        stage, closer = None, None
        pts = None
        sid = self.stream_id
        observer = self.observer

        def timed(name: str, seconds: float) -> None:
            observer.stage(sid, name, seconds)

        try:
            stage, self.scorer.landmarker, closer = self.make_stage()
            self.source.open()
            started = self.started_at = time.monotonic()
            if not self.live:
                p.status = "up"
                self.status = StreamStatus.now("up", f"reading {self.location}")
                self.emitter.status("up", f"reading {self.location}", **self._counts())
            frames = iter(self.source)
            while self.max_frames is None or p.frames < self.max_frames:
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None or self.stop.is_set():
                    break
                if self._broken.is_set():  # a reconnect broke continuity: tracks end here
                    self._broken.clear()
                    self._finish(stage, pts)
                p.frames += 1
                self.rate.tick()
                pts = p.position_s = frame.pts
                now = self._clock(frame)
                t1 = time.perf_counter()
                timed("decode", t1 - t0)
                result = stage.process(frame)
                t2 = time.perf_counter()
                timed("faces", t2 - t1)
                confirmed = [
                    int(t)
                    for t, st in zip(result.faces.track_ids, result.faces.states, strict=True)
                    if st == TrackState.CONFIRMED
                ]
                self._tracks.update(confirmed)
                self.emitter.seen(confirmed, frame.wall_time)
                ready = self.scorer.step(frame, result, now)
                t3 = time.perf_counter()
                times = self.scorer.last_times
                timed("look", times.look)
                timed("submit", times.submit)
                timed("book", times.book)
                for wall_time, updates in ready:
                    self.emitter.updates(updates, wall_time)
                timed("emit", time.perf_counter() - t3)
                self._update(p)
            fps = self._counts()["frames"] / max(time.monotonic() - started, 1e-6)
            reason = self.stop_reason if self.stop.is_set() else "end of stream"
            if self.max_frames is not None and p.frames >= self.max_frames:
                reason = f"max frames ({self.max_frames}) read"
            self._finish(stage, pts)
            p.status = "down"
            self.status = StreamStatus.now("down", reason)
            self.emitter.status("down", reason, fps=round(fps, 3), **self._counts())
        except Exception as exc:  # one failing stream must not take the others down
            log.error("%s: %s", self.stream_id, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            p.error = mask_url(str(exc))
            p.status = "down"
            self.status = StreamStatus.now("down", p.error)
            try:
                if stage is not None:
                    self._finish(stage, pts)
                self.emitter.status("down", p.error, **self._counts())
            except Exception as inner:
                log.error("%s: could not report the failure: %s", self.stream_id, inner)
        finally:
            self.source.close()
            if closer is not None:
                closer()
            self._update(p)
            p.done = True

    def _clock(self, frame) -> float:
        """The stream's time: a file's pts (its index at 25 fps without pts), a live
        stream's arrival time."""
        if self.live:
            return time.monotonic()
        return frame.pts if frame.pts is not None else frame.index / 25.0

    def _finish(self, stage, pts) -> None:
        for wall_time, updates in self.scorer.finish(stage.finish(pts), time.time()):
            self.emitter.updates(updates, wall_time)

    def _update(self, p: StreamProgress) -> None:
        p.frames_skipped = self.source.stats.skipped
        p.faces_seen = self.scorer.faces_seen
        p.faces_looked = self.scorer.faces_looked
        p.faces_scored = self.scorer.faces_scored
        p.faces_dropped = self.scorer.faces_dropped
        p.tracks = len(self._tracks)
        p.best_score = self.emitter.best_score
