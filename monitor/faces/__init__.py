"""Faces in video: detection, tracking, dense landmarks and the 68-point iBUG layout.

Flow for one stream: ``FaceDetector.detect`` (``FaceDetections``; its full-range model is
``FullRangeDetector``) → ``FaceTracker.update`` (``TrackedFaces`` + ``TrackEvent``) →
``FaceLandmarker.landmarks`` (``FaceLandmarks``, with ``.ibug68`` for DSL-FIQA) →
``align_face`` (``AlignedFace``, 512x512 + 68 points; eye centres level, box padded, or the
official script's rule with ``rule="official"``) and ``quality_signals``. ``FaceStage``
wires detection, tracking and landmarks together for ``Frame`` objects, ending tracks at shot
cuts. The detector and the mesh see dark pictures brightened (``exposure``); the aligned face
is always cut from the frame as it is.
Everything that flows between these steps is an immutable dataclass of read-only arrays.
"""

from monitor.faces.align import AlignedFace, align_face
from monitor.faces.blazeface_full import FullRangeDetector
from monitor.faces.detections import KEYPOINT_NAMES, FaceDetections
from monitor.faces.detector import FaceDetector
from monitor.faces.ibug68 import MESH_FOR_IBUG68, mesh_to_ibug68
from monitor.faces.landmarks import FaceLandmarker, FaceLandmarks
from monitor.faces.quality import QualitySignals, quality_signals
from monitor.faces.shot_cut import ShotCutDetector
from monitor.faces.stage import FacesFrame, FaceStage
from monitor.faces.tracking import (
    FaceTracker,
    TrackedFaces,
    TrackerUpdate,
    TrackEvent,
    TrackEventKind,
    TrackState,
    TrackSummary,
)

__all__ = [
    "KEYPOINT_NAMES",
    "MESH_FOR_IBUG68",
    "AlignedFace",
    "FaceDetections",
    "FaceDetector",
    "FaceLandmarker",
    "FaceLandmarks",
    "FaceStage",
    "FaceTracker",
    "FacesFrame",
    "FullRangeDetector",
    "QualitySignals",
    "ShotCutDetector",
    "TrackEvent",
    "TrackEventKind",
    "TrackState",
    "TrackSummary",
    "TrackedFaces",
    "TrackerUpdate",
    "align_face",
    "mesh_to_ibug68",
    "quality_signals",
]
