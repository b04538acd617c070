"""``FaceTracker``: ByteTrack-style multi-face tracking with an explicit track lifecycle.

Each ``update`` predicts every track one frame ahead with its Kalman filter, then associates
detections with the predicted boxes in three IoU passes:

1. confident detections (``score >= high_threshold``) with confirmed and lost tracks;
2. ByteTrack's second pass: the remaining *low-score* detections (``low_threshold`` to
   ``high_threshold``) with confirmed tracks still unmatched, which keeps a track through
   blur, occlusion or a turned head, when the detector's score drops but the box is right;
3. remaining confident detections with tentative tracks.

Unmatched confident detections scoring at least ``new_track_threshold`` start tentative
tracks; low-score detections never do, so logos and textures scoring 0.3-0.65 cannot create
faces but a real face whose score dips is not lost. Between detection frames, ``coast``
advances the tracks without counting misses, so detection can run every Nth frame.

Ending follows ByteTrack: only a detection frame that misses a confirmed track makes it LOST,
and a LOST track ends once it has gone undetected for more than ``max_lost_frames`` stream
frames. Coasting alone never loses or ends a confirmed track (no detector looked), but it
does age LOST tracks, and so do frame indices skipped between calls.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from monitor.faces.boxes import box_iou
from monitor.faces.detections import FaceDetections
from monitor.faces.tracking.kalman import KalmanFilter
from monitor.faces.tracking.matching import greedy_match
from monitor.faces.tracking.track import (
    Track,
    TrackEvent,
    TrackEventKind,
    TrackState,
)
from monitor.faces.tracking.tracked import TrackedFaces


@dataclass(frozen=True, slots=True)
class TrackerUpdate:
    """One step's result: the live tracks and the lifecycle events the step caused."""

    faces: TrackedFaces
    events: tuple[TrackEvent, ...]


class FaceTracker:
    """Tracks faces across frames of ONE stream (use one tracker per stream).

    Args:
        high_threshold: detections at or above this score take part in the first pass.
        low_threshold: detections below this are ignored entirely; between the two they only
            extend existing confirmed tracks (second pass).
        new_track_threshold: least score of an unmatched detection that starts a track; above
            ``high_threshold`` so that a borderline detection never spawns a duplicate.
        match_iou: least IoU, predicted box vs detection, for passes 1 and 3.
        low_match_iou: least IoU for the second pass; stricter, as low scores are less sure.
        min_hits: consecutive detections that confirm a tentative track (1 confirms at once).
        max_lost_frames: frames a LOST track may go undetected, counted from its last
            detection, before it ends; in stream frames (``coast`` frames and skipped indices
            count), so it means the same whatever the detection interval. A confirmed track
            becomes LOST only on a detection frame that misses it.
        kalman: the motion model's settings.

    Example:
        >>> tracker = FaceTracker()
        >>> step = tracker.update(FaceDetections.empty(), pts=0.0)
        >>> len(step.faces), step.events
        (0, ())
    """

    def __init__(
        self,
        *,
        high_threshold: float = 0.6,
        low_threshold: float = 0.2,
        new_track_threshold: float = 0.7,
        match_iou: float = 0.2,
        low_match_iou: float = 0.4,
        min_hits: int = 3,
        max_lost_frames: int = 30,
        kalman: KalmanFilter | None = None,
    ) -> None:
        if not 0.0 <= low_threshold <= high_threshold <= new_track_threshold <= 1.0:
            raise ValueError(
                "thresholds must satisfy 0 <= low_threshold <= high_threshold <= "
                f"new_track_threshold <= 1, got {low_threshold}, {high_threshold}, "
                f"{new_track_threshold}"
            )
        if min_hits < 1 or max_lost_frames < 0:
            raise ValueError(
                f"min_hits must be >= 1 and max_lost_frames >= 0, got {min_hits}, {max_lost_frames}"
            )
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.new_track_threshold = new_track_threshold
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.min_hits = min_hits
        self.max_lost_frames = max_lost_frames
        self.kalman = kalman or KalmanFilter()
        self.reset()

    def reset(self) -> None:
        """Forgets every track and restarts ids at 1 (a new stream, or after a reconnect)."""
        self._tracks: list[Track] = []
        self._frame = -1
        self._keys = itertools.count()
        self._ids = itertools.count(1)

    @property
    def frame(self) -> int:
        """The current frame's index (given, or counted by ``update`` and ``coast``)."""
        return self._frame

    def __len__(self) -> int:
        return len(self._tracks)

    # ----------------------------------------------------------------------------- steps

    def _advance(self, index: int | None) -> None:
        if index is None:
            self._frame += 1
        elif index <= self._frame:
            raise ValueError(
                f"frame index {index} is not after the previous one ({self._frame}); "
                "call reset() before feeding a stream from its start again"
            )
        else:
            self._frame = index

    def coast(self, pts: float | None = None, index: int | None = None) -> TrackerUpdate:
        """Advances a frame with no detection run on it (detect-every-Nth-frame mode).

        No track counts a miss, so confirmed tracks stay confirmed however long detection
        pauses; LOST tracks undetected for more than ``max_lost_frames`` end here (``ENDED``).
        """
        self._advance(index)
        for t in self._tracks:
            t.predict()
        events = self._expire(pts)
        return TrackerUpdate(self._snapshot({}), tuple(events))

    def update(
        self, detections: FaceDetections, pts: float | None = None, index: int | None = None
    ) -> TrackerUpdate:
        """Advances a frame on which the detector ran and associates its detections.

        Args:
            detections: this frame's detections, faces and low-score candidates.
            pts: the frame's time, recorded in events and summaries.
            index: the frame's index in the stream (``Frame.index``); ages and summaries are
                then in stream frames even when frames are skipped. Default: one more than
                the last call's.
        """
        self._advance(index)
        frame = self._frame
        for t in self._tracks:
            t.predict()
        # Lost tracks past their age end before matching, as they would have on the frames
        # in between had those been given (coasted), so skipped indices cannot revive them.
        events = self._expire(pts)
        scores = detections.scores
        high = np.flatnonzero(scores >= self.high_threshold)
        low = np.flatnonzero((scores >= self.low_threshold) & (scores < self.high_threshold))
        matched: dict[int, int] = {}  # track key -> detection row

        # Pass 1: confident detections vs confirmed and lost tracks.
        pool = [t for t in self._tracks if t.state in (TrackState.CONFIRMED, TrackState.LOST)]
        high = self._associate(pool, detections, high, self.match_iou, matched)
        # Pass 2: low-score detections vs confirmed tracks still unmatched.
        pool = [t for t in self._tracks if t.state == TrackState.CONFIRMED and t.key not in matched]
        self._associate(pool, detections, low, self.low_match_iou, matched)
        # Pass 3: remaining confident detections vs tentative tracks.
        pool = [t for t in self._tracks if t.state == TrackState.TENTATIVE]
        high = self._associate(pool, detections, high, self.match_iou, matched)

        kept: list[Track] = []
        for t in self._tracks:
            row = matched.get(t.key)
            if row is not None:
                t.observe(detections.xyxy[row], scores[row], detections.keypoints[row], frame, pts)
                if t.state == TrackState.LOST:
                    t.state = TrackState.CONFIRMED
                    events.append(TrackEvent(TrackEventKind.RECOVERED, t.track_id, frame, pts))
                elif t.state == TrackState.TENTATIVE and t.consecutive_hits >= self.min_hits:
                    events.append(self._confirm(t, pts))
                kept.append(t)
                continue
            t.miss()
            if t.state == TrackState.TENTATIVE:
                continue  # never confirmed: dropped silently, it had no public id
            if t.state == TrackState.CONFIRMED:
                t.state = TrackState.LOST
                events.append(TrackEvent(TrackEventKind.LOST, t.track_id, frame, pts))
            kept.append(t)
        self._tracks = kept

        for row in high:
            if scores[row] < self.new_track_threshold:
                continue
            t = Track(
                next(self._keys),
                detections.xyxy[row],
                scores[row],
                detections.keypoints[row],
                frame,
                pts,
                self.kalman,
            )
            self._tracks.append(t)
            matched[t.key] = int(row)
            if self.min_hits <= 1:
                events.append(self._confirm(t, pts))
        events.extend(self._expire(pts))
        return TrackerUpdate(self._snapshot(matched), tuple(events))

    def finish(self, pts: float | None = None) -> tuple[TrackEvent, ...]:
        """Ends every confirmed or lost track (end of stream) and returns their ENDED events."""
        events = [self._end(t, pts) for t in self._tracks if t.was_confirmed]
        self._tracks = []
        return tuple(events)

    # --------------------------------------------------------------------------- helpers

    def _associate(
        self,
        tracks: list[Track],
        detections: FaceDetections,
        rows: np.ndarray,
        min_iou: float,
        matched: dict[int, int],
    ) -> np.ndarray:
        """Matches ``tracks`` to detection ``rows``; records pairs, returns unmatched rows."""
        if not tracks or len(rows) == 0:
            return rows
        boxes = np.stack([t.xyxy for t in tracks])
        iou = box_iou(boxes, detections.xyxy[rows])
        pairs, _, free = greedy_match(iou, min_iou)
        for ti, di in pairs:
            matched[tracks[ti].key] = int(rows[di])
        return rows[free]

    def _confirm(self, t: Track, pts: float | None) -> TrackEvent:
        t.state = TrackState.CONFIRMED
        t.was_confirmed = True
        t.track_id = next(self._ids)
        return TrackEvent(TrackEventKind.CONFIRMED, t.track_id, self._frame, pts)

    def _end(self, t: Track, pts: float | None) -> TrackEvent:
        t.state = TrackState.ENDED
        return TrackEvent(TrackEventKind.ENDED, t.track_id, self._frame, pts, t.summary())

    def _expire(self, pts: float | None) -> list[TrackEvent]:
        """Ends LOST tracks undetected for more than ``max_lost_frames``; confirmed tracks
        never end here (they must first be missed on a detection frame and become LOST)."""
        events: list[TrackEvent] = []
        kept: list[Track] = []
        for t in self._tracks:
            if t.state == TrackState.LOST and self._frame - t.last_frame > self.max_lost_frames:
                events.append(self._end(t, pts))
            else:
                kept.append(t)
        self._tracks = kept
        return events

    def _snapshot(self, matched: dict[int, int]) -> TrackedFaces:
        ts = self._tracks
        if not ts:
            return TrackedFaces.empty()
        return TrackedFaces(
            track_ids=[t.track_id for t in ts],
            states=[int(t.state) for t in ts],
            xyxy=np.stack([t.xyxy for t in ts]),
            scores=[t.score for t in ts],
            keypoints=np.stack([t.keypoints for t in ts]),
            detection_index=[matched.get(t.key, -1) for t in ts],
        )
