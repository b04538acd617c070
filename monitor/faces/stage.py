"""``FaceStage``: detection (every frame or every Nth), tracking and landmarks for one stream.

Detection is the costly step and faces move little between frames, so ``detect_every=N``
runs the detector on one frame in N and lets the Kalman filters carry the boxes in between
(``FaceTracker.coast``). Landmarks are computed only for confirmed tracks detected on this
frame: tentative tracks may be false positives, and coasted boxes are predictions. On a hard
cut (edited video) every track ends before the new shot is tracked, so that no id jumps to a
different person who happens to stand where the last one was (``shot_cut``).

Threads: the stage is meant to run one per stream worker, single-threaded. The landmarker's
and the full-range detector's LiteRT interpreters use ``num_threads=1`` (and are not
thread-safe: one landmarker and one detector per worker thread),
and the process that runs stages should call ``torch.set_num_threads(1)`` (process-wide, so
it is the entry point's call, as ``fqm bench faces --threads`` does): torch only does the crop
warps here, and on a loaded 2-core machine 2 threads doubled the stage's time per frame (720p,
``fqm bench faces``: 33 ms at 1 thread, 70 ms at 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.faces.detections import FaceDetections
from monitor.faces.detector import FaceDetector
from monitor.faces.landmarks import MESH_POINTS, FaceLandmarker, FaceLandmarks
from monitor.faces.shot_cut import DEFAULT_CUT_THRESHOLD, ShotCutDetector
from monitor.faces.tracking.track import TrackEvent, TrackState
from monitor.faces.tracking.tracked import TrackedFaces
from monitor.faces.tracking.tracker import FaceTracker
from pipelines.frame import Frame


@dataclass(frozen=True, slots=True)
class FacesFrame:
    """What the face stage knows about one frame.

    Attributes:
        stream_id, index, pts: copied from the ``Frame``.
        detected: whether the detector ran on this frame.
        detections: the detector's output (empty when it did not run).
        faces: live tracks (tentative, confirmed, lost) after this frame.
        landmarks: one row per row of ``faces``; NaN rows where no mesh was computed (not
            confirmed, not detected on this frame, or no landmarker configured).
        events: track lifecycle events caused by this frame.
        shot_cut: whether this frame started a new shot (all earlier tracks ended on it).
    """

    stream_id: str
    index: int
    pts: float | None
    detected: bool
    detections: FaceDetections
    faces: TrackedFaces
    landmarks: FaceLandmarks
    events: tuple[TrackEvent, ...]
    shot_cut: bool = False


class FaceStage:
    """Runs detector, tracker and (optionally) landmarker on the frames of ONE stream.

    Args:
        detector: the face detector. It keeps no per-stream state, so stages run on one
            thread may share one; it is not thread-safe (LiteRT, MediaPipe), so stages on
            different threads need their own.
        tracker: this stream's tracker (default: ``FaceTracker()``).
        landmarker: computes meshes for confirmed faces; ``None`` skips landmarks.
        detect_every: run the detector on one frame in this many (1 = every frame).
        cut_threshold: thumbnail difference that counts as a shot cut (see ``shot_cut``);
            ``None`` never ends tracks on cuts.

    Example:
        >>> stage = FaceStage(FaceDetector(), landmarker=FaceLandmarker())  # doctest: +SKIP
        >>> for frame in source:
        ...     result = stage.process(frame)
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        tracker: FaceTracker | None = None,
        landmarker: FaceLandmarker | None = None,
        detect_every: int = 1,
        cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detector = detector
        self.tracker = tracker or FaceTracker()
        self.landmarker = landmarker
        self.detect_every = detect_every
        self._cuts = None if cut_threshold is None else ShotCutDetector(cut_threshold)
        self._count = 0

    def reset(self) -> None:
        """Starts over (new stream, or a reconnect that broke continuity)."""
        self.tracker.reset()
        if self._cuts is not None:
            self._cuts.reset()
        self._count = 0

    def process(self, frame: Frame) -> FacesFrame:
        cut = self._cuts is not None and self._cuts.is_cut(frame.image)
        ended = self.tracker.finish(frame.pts) if cut else ()
        if cut:
            self._count = 0  # detect on the new shot's first frame
        detect = self._count % self.detect_every == 0
        self._count += 1
        if detect:
            detections = self.detector.detect(frame.image)
            step = self.tracker.update(detections, pts=frame.pts, index=frame.index)
        else:
            detections = FaceDetections.empty()
            step = self.tracker.coast(pts=frame.pts, index=frame.index)
        faces = step.faces
        landmarks = FaceLandmarks(
            np.full((len(faces), MESH_POINTS, 3), np.nan, np.float32), np.zeros(len(faces))
        )
        if self.landmarker is not None and detect:
            rows = np.flatnonzero(
                (faces.states == TrackState.CONFIRMED) & (faces.detection_index >= 0)
            )
            if len(rows):
                det = detections[faces.detection_index[rows]]
                found = self.landmarker.landmarks(frame.image, det.xyxy, det.keypoints)
                points = landmarks.points.copy()
                presence = landmarks.presence.copy()
                points[rows] = found.points
                presence[rows] = found.presence
                landmarks = FaceLandmarks(points, presence)
        return FacesFrame(
            stream_id=frame.stream_id,
            index=frame.index,
            pts=frame.pts,
            detected=detect,
            detections=detections,
            faces=faces,
            landmarks=landmarks,
            events=ended + step.events,
            shot_cut=cut,
        )

    def finish(self, pts: float | None = None) -> tuple[TrackEvent, ...]:
        """Ends all tracks at the end of the stream; returns their ENDED events."""
        return self.tracker.finish(pts)
