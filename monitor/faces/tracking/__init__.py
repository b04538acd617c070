"""Multi-face tracking after ByteTrack: Kalman motion, IoU matching, a track state machine."""

from monitor.faces.tracking.kalman import KalmanFilter
from monitor.faces.tracking.track import (
    PROVISIONAL_ID,
    TrackEvent,
    TrackEventKind,
    TrackState,
    TrackSummary,
)
from monitor.faces.tracking.tracked import TrackedFaces
from monitor.faces.tracking.tracker import FaceTracker, TrackerUpdate

__all__ = [
    "PROVISIONAL_ID",
    "FaceTracker",
    "KalmanFilter",
    "TrackEvent",
    "TrackEventKind",
    "TrackState",
    "TrackSummary",
    "TrackedFaces",
    "TrackerUpdate",
]
