"""``ScoringPolicy``: which faces reach the quality engine, and ``ScoringBudget``: how many.

Scoring every face of every frame is out of reach (DSL-FIQA center mode: ~1.6 s per face on
a 2-core CPU), and mostly useless: consecutive frames of a track look alike. The policy
decides per frame, from the cheap signals only, with time passed in (deterministic):

1. **tiny faces never**: ``face_size < min_face_size`` is not scored at all;
2. **new tracks at once**: a track never scored is scored on its first eligible face
   (priority ``NEW``);
3. **routine rescoring**: then once per ``rescore_interval`` (seconds or frames, see
   ``interval_unit``) per track (priority ``ROUTINE``), so the curve keeps up with the track;
4. **promising faces sooner**: before the interval is up, a face is scored when its cheap
   signals promise a better frame (priority ``PROMISING``): better than the track's best
   frame's signals by at least one threshold — ``bigger_pct`` % larger, ``frontal_deg``
   degrees more frontal (``hypot(yaw, pitch)``), or ``sharper_pct`` % sharper (Laplacian
   variance) — and worse by none of them; and the same against the last face scored, so a
   plateau of promising-looking frames that scored no better is not scored frame after
   frame. At least ``min_promising_gap`` (same unit) must pass since the track's last score.
5. **budget**: every chosen face takes one token from a ``ScoringBudget``, a token bucket
   whose rate follows the engine's measured faces/s (EMA). When tokens run short, faces are
   served by priority — NEW, then PROMISING, then ROUTINE — and within a priority NEW by
   larger face, PROMISING by larger face, ROUTINE by the longest wait; ROUTINE faces are
   also served only while ``routine_reserve`` tokens would remain, which keeps a little
   room for new tracks (of this stream or of others sharing the budget). A face that does
   not get a token is ``deferred``: its track stays due and competes again on the next
   frame.

One policy per stream (it keeps per-track state, deleted with the track); one budget may
be shared by the policies of all streams of a process (it is thread-safe), and then the
budget's time (``budget_now``) must be one clock for all of them (the processing wall
time), while ``now`` stays each stream's own time (its pts).

**Looking before scoring.** Landmarks, alignment and the cheap signals cost about as much
as detection, so they too are computed only for faces that may be chosen:
``wants_look`` says, from the box alone, whether a face could be scored now — not tiny, a
token available, and the track new, due, or not looked at for ``look_interval`` (the
PROMISING check needs the signals, so a track between routine scores is looked at that
often, not on every frame).
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from monitor.faces.quality import QualitySignals
from monitor.faces.tracking import TrackEvent, TrackEventKind
from monitor.tracks.book import BestFrameChanged, TrackEnded, TrackUpdate
from monitor.tracks.observation import pose_deviation


class Priority(enum.IntEnum):
    """Why a face is wanted; lower values are served first when the budget is short."""

    NEW = 0
    PROMISING = 1
    ROUTINE = 2


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's thresholds (see the module docstring for the rules).

    Attributes:
        min_face_size: faces whose box's shorter side is below this (frame pixels) are
            never scored: upscaled to 512, they carry no detail for the model to judge.
        rescore_interval: least time between two routine scores of a track.
        interval_unit: ``"seconds"`` (of the time given to ``select``) or ``"frames"``.
        bigger_pct: a face this many percent larger than the reference promises better.
        frontal_deg: a face this many degrees more frontal promises better.
        sharper_pct: a face this many percent sharper (Laplacian variance) promises better.
        min_promising_gap: least time (same unit) between a track's scores for PROMISING.
        routine_reserve: tokens a ROUTINE face must leave in the budget.
        look_interval: least time (same unit) between two looks (landmarks, alignment,
            signals) at a track that is neither new nor due, to find PROMISING faces.
    """

    min_face_size: float = 32.0
    rescore_interval: float = 1.0
    interval_unit: Literal["seconds", "frames"] = "seconds"
    bigger_pct: float = 20.0
    frontal_deg: float = 10.0
    sharper_pct: float = 30.0
    min_promising_gap: float = 0.0
    routine_reserve: float = 1.0
    look_interval: float = 0.5

    def __post_init__(self) -> None:
        if self.interval_unit not in ("seconds", "frames"):
            raise ValueError(
                f"interval_unit must be 'seconds' or 'frames', got {self.interval_unit!r}"
            )
        for name in (
            "min_face_size",
            "rescore_interval",
            "bigger_pct",
            "frontal_deg",
            "sharper_pct",
            "min_promising_gap",
            "routine_reserve",
            "look_interval",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PolicyConfig.{name} must be a number >= 0, got {value}")


class ScoringBudget:
    """A token bucket of faces the quality engine may take; its rate follows the engine.

    Args:
        faces_per_s: initial rate; ``None`` = unlimited until the engine's speed is measured.
        burst: most tokens saved up (a burst of new tracks scored at once); >= 1.
        ema_alpha: weight of each new speed measurement in the rate's EMA, (0, 1].
        utilisation: fraction of the measured speed to hand out, (0, 1]; below 1 leaves the
            engine slack so its queue does not grow.

    Time is given in (``refill(now)``), never read from a clock. Thread-safe: one budget
    may serve the policies of every stream of a process.

    Example:
        >>> budget = ScoringBudget(faces_per_s=2.0, burst=2.0)
        >>> budget.refill(0.0); budget.take(), budget.take(), budget.take()
        (True, True, False)
        >>> budget.refill(0.5); budget.take()
        True
    """

    def __init__(
        self,
        faces_per_s: float | None = None,
        *,
        burst: float = 4.0,
        ema_alpha: float = 0.2,
        utilisation: float = 1.0,
    ) -> None:
        if faces_per_s is not None and not faces_per_s > 0:
            raise ValueError(f"faces_per_s must be > 0 or None, got {faces_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 (one face), got {burst}")
        if not 0 < ema_alpha <= 1 or not 0 < utilisation <= 1:
            raise ValueError(
                f"ema_alpha and utilisation must be in (0, 1], got {ema_alpha}, {utilisation}"
            )
        self.burst = float(burst)
        self.ema_alpha = ema_alpha
        self.utilisation = utilisation
        self._speed = faces_per_s  # EMA of the engine's faces/s
        self._tokens = float(burst)
        self._now: float | None = None
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """Faces/s handed out (``None``: unlimited)."""
        return None if self._speed is None else self._speed * self.utilisation

    @property
    def tokens(self) -> float:
        return math.inf if self._speed is None else self._tokens

    def observe_engine(self, faces: int, seconds: float) -> None:
        """The engine scored ``faces`` in ``seconds``: updates the rate's EMA."""
        if faces <= 0 or not seconds > 0:
            return
        speed = faces / seconds
        with self._lock:
            self._speed = (
                speed
                if self._speed is None
                else self._speed + self.ema_alpha * (speed - self._speed)
            )

    def refill(self, now: float) -> None:
        """Adds the tokens earned since the last call (time going backwards adds none)."""
        with self._lock:
            if self._now is not None and self.rate is not None and now > self._now:
                self._tokens = min(self.burst, self._tokens + self.rate * (now - self._now))
            if self._now is None or now > self._now:
                self._now = now

    def available(self, reserve: float = 0.0) -> bool:
        """Whether ``take(reserve)`` would succeed now (takes nothing)."""
        with self._lock:
            return self._speed is None or self._tokens + 1e-9 >= 1.0 + reserve

    def take(self, reserve: float = 0.0) -> bool:
        """Takes one token if at least ``1 + reserve`` are there."""
        with self._lock:
            if self._speed is None:
                return True
            if self._tokens + 1e-9 < 1.0 + reserve:
                return False
            self._tokens -= 1.0
            return True


@dataclass(frozen=True, slots=True)
class Candidate:
    """A face the policy may send to the engine.

    Attributes:
        track_id: its confirmed track.
        signals: its cheap signals.
        detection_score: the detector's confidence.
        row: the caller's index for it (e.g. its row in ``FacesFrame.faces``).
    """

    track_id: int
    signals: QualitySignals
    detection_score: float = 1.0
    row: int = -1


@dataclass(frozen=True, slots=True)
class Decision:
    """A wanted face and why (``deferred``: it did not get a token)."""

    candidate: Candidate
    priority: Priority
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class ScoringPlan:
    """One frame's decisions.

    Attributes:
        score: faces to send to the engine now, in priority order.
        deferred: faces wanted but over budget (their tracks stay due).
        tiny: faces below ``min_face_size``.
        skipped: faces not due and not promising.
    """

    frame: int
    now: float
    score: tuple[Decision, ...]
    deferred: tuple[Decision, ...]
    tiny: int
    skipped: int


@dataclass(slots=True)
class _TrackPlan:
    last_time: float
    last_signals: QualitySignals
    best_signals: QualitySignals | None = None
    last_look: float = -math.inf


class ScoringPolicy:
    """Chooses the faces of ONE stream to score (see the module docstring for the rules).

    Args:
        config: thresholds.
        budget: the token bucket (share one across streams); default: unlimited.

    Example:
        >>> policy = ScoringPolicy(PolicyConfig(rescore_interval=1.0))
        >>> s = QualitySignals(100.0, 40.0, 0.0, 0.0, 0.0, 50.0, 120.0, 40.0)
        >>> [d.priority.name for d in policy.select([Candidate(1, s)], frame=0, now=0.0).score]
        ['NEW']
        >>> policy.select([Candidate(1, s)], frame=1, now=0.04).score
        ()
    """

    def __init__(self, config: PolicyConfig | None = None, budget: ScoringBudget | None = None):
        self.config = config or PolicyConfig()
        self.budget = budget or ScoringBudget()
        self._tracks: dict[int, _TrackPlan] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def reset(self) -> None:
        self._tracks.clear()

    def forget(self, track_id: int) -> None:
        """Drops a track's state (it ended)."""
        self._tracks.pop(track_id, None)

    def note_best(self, track_id: int, signals: QualitySignals) -> None:
        """The track's best frame is now a face with these signals (the promise reference)."""
        plan = self._tracks.get(track_id)
        if plan is not None:
            plan.best_signals = signals

    def apply(self, items: Iterable[TrackUpdate | TrackEvent]) -> None:
        """Follows a book's updates (new best frames, ends) and the tracker's ENDED events."""
        for item in items:
            if isinstance(item, BestFrameChanged) and item.top_changed:
                self.note_best(item.track_id, item.face.signals)
            elif isinstance(item, TrackEnded) or (
                isinstance(item, TrackEvent) and item.kind is TrackEventKind.ENDED
            ):
                self.forget(item.track_id)

    # ------------------------------------------------------------------------- the rules

    def _promises(self, s: QualitySignals, ref: QualitySignals) -> bool:
        c = self.config
        big = 1 + c.bigger_pct / 100
        sharp = 1 + c.sharper_pct / 100
        dev, ref_dev = pose_deviation(s), pose_deviation(ref)
        better = (
            s.face_size >= ref.face_size * big
            or ref_dev - dev >= c.frontal_deg
            or (ref.sharpness > 0 and s.sharpness >= ref.sharpness * sharp)
        )
        worse = (
            s.face_size * big <= ref.face_size
            or dev - ref_dev >= c.frontal_deg
            or (s.sharpness > 0 and s.sharpness * sharp <= ref.sharpness)
        )
        return better and not worse

    def classify(self, candidate: Candidate, frame: int, now: float) -> Priority | None:
        """The priority a face would get, or ``None`` if it is not wanted now (no side effect).

        Tiny faces are ``None`` as well; ``select`` counts them apart.
        """
        c = self.config
        if candidate.signals.face_size < c.min_face_size:
            return None
        plan = self._tracks.get(candidate.track_id)
        if plan is None:
            return Priority.NEW
        t = now if c.interval_unit == "seconds" else float(frame)
        waited = t - plan.last_time
        if waited >= c.rescore_interval:
            return Priority.ROUTINE
        if waited >= c.min_promising_gap and all(
            self._promises(candidate.signals, ref)
            for ref in (plan.best_signals, plan.last_signals)
            if ref is not None
        ):
            return Priority.PROMISING
        return None

    def wants_look(
        self,
        track_id: int,
        face_size: float,
        *,
        frame: int,
        now: float,
        budget_now: float | None = None,
    ) -> bool:
        """Whether this face is worth its landmarks, alignment and signals now: it could be
        chosen by ``select`` (see "Looking before scoring"). A ``True`` for a track between
        routine scores counts as a look (its ``look_interval`` restarts)."""
        c = self.config
        if face_size < c.min_face_size:
            return False
        self.budget.refill(now if budget_now is None else budget_now)
        if not self.budget.available():
            return False
        plan = self._tracks.get(track_id)
        if plan is None:
            return True
        t = now if c.interval_unit == "seconds" else float(frame)
        waited = t - plan.last_time
        if waited >= c.rescore_interval:
            return self.budget.available(c.routine_reserve)
        if waited < c.min_promising_gap or t - plan.last_look < c.look_interval - 1e-9:
            return False
        plan.last_look = t
        return True

    def select(
        self,
        candidates: Sequence[Candidate],
        *,
        frame: int,
        now: float,
        budget_now: float | None = None,
    ) -> ScoringPlan:
        """Decides which of one frame's faces to score (one candidate per track).

        Args:
            candidates: the frame's faces of confirmed tracks, with their cheap signals.
            frame: the stream frame index (``Frame.index``).
            now: the stream's time in seconds (its pts, or wall time for a live stream);
                must not go backwards for a stream.
            budget_now: the budget's time when it is shared across streams (one clock for
                all of them, e.g. ``time.monotonic()``); default ``now``.

        The chosen faces count as scored now (their tracks' clocks restart), whether or not
        the caller's engine has returned their scores yet.
        """
        c = self.config
        self.budget.refill(now if budget_now is None else budget_now)
        t = now if c.interval_unit == "seconds" else float(frame)
        wanted: list[tuple[tuple[float, ...], Decision]] = []
        tiny = skipped = 0
        seen: set[int] = set()
        for cand in candidates:
            if cand.track_id in seen:
                raise ValueError(f"track {cand.track_id} has two candidates on frame {frame}")
            seen.add(cand.track_id)
            if cand.signals.face_size < c.min_face_size:
                tiny += 1
                continue
            priority = self.classify(cand, frame, now)
            if priority is None:
                skipped += 1
                continue
            if priority is Priority.ROUTINE:
                order = -(t - self._tracks[cand.track_id].last_time)  # longest wait first
            else:
                order = -cand.signals.face_size
            wanted.append(((int(priority), order, cand.track_id), Decision(cand, priority)))
        wanted.sort(key=lambda w: w[0])
        chosen: list[Decision] = []
        deferred: list[Decision] = []
        for _, d in wanted:
            reserve = c.routine_reserve if d.priority is Priority.ROUTINE else 0.0
            if self.budget.take(reserve):
                chosen.append(d)
                plan = self._tracks.get(d.candidate.track_id)
                if plan is None:
                    self._tracks[d.candidate.track_id] = _TrackPlan(
                        t, d.candidate.signals, last_look=t
                    )
                else:
                    plan.last_time, plan.last_signals, plan.last_look = t, d.candidate.signals, t
            else:
                deferred.append(Decision(d.candidate, d.priority, deferred=True))
        return ScoringPlan(frame, now, tuple(chosen), tuple(deferred), tiny, skipped)
