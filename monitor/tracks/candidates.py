"""From the face stage's output to what the policy and the book take, once for every caller."""

from __future__ import annotations

import dataclasses

import numpy as np

from monitor.faces import (
    FaceLandmarker,
    FaceLandmarks,
    FacesFrame,
    TrackState,
    align_face,
    quality_signals,
)
from monitor.tracks.observation import ScoredFace
from monitor.tracks.policy import Candidate


def lookable_rows(result: FacesFrame) -> np.ndarray:
    """Rows of ``result.faces`` a landmarker can look at: confirmed and detected this frame
    (the detector's keypoints level the landmarker's crop)."""
    faces = result.faces
    return np.flatnonzero((faces.states == TrackState.CONFIRMED) & (faces.detection_index >= 0))


def face_size(xyxy: np.ndarray) -> float:
    """A box's shorter side, as ``QualitySignals.face_size`` measures it."""
    return float(min(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]))


def with_landmarks(
    image: np.ndarray, result: FacesFrame, rows: np.ndarray, landmarker: FaceLandmarker
) -> FacesFrame:
    """``result`` with meshes computed for ``rows`` only (from a stage run without a
    landmarker: the caller looks only at faces it may score)."""
    if len(rows) == 0:
        return result
    det = result.detections[result.faces.detection_index[rows]]
    found = landmarker.landmarks(image, det.xyxy, det.keypoints)
    points = result.landmarks.points.copy()
    presence = result.landmarks.presence.copy()
    points[rows] = found.points
    presence[rows] = found.presence
    return dataclasses.replace(result, landmarks=FaceLandmarks(points, presence))


def frame_candidates(
    image: np.ndarray, result: FacesFrame, pts: float | None
) -> list[tuple[ScoredFace, Candidate]]:
    """Each confirmed face of this frame that has landmarks: aligned, with its cheap signals,
    as a not-yet-scored ``ScoredFace`` (score 0.0, see :func:`with_score`) and the
    ``Candidate`` the policy judges it by (``row`` is its row in ``result.faces``)."""
    rows = np.flatnonzero(result.landmarks.found & (result.faces.states == TrackState.CONFIRMED))
    out = []
    for row in rows:
        track = int(result.faces.track_ids[row])
        xyxy = result.faces.xyxy[row]
        aligned = align_face(image, xyxy, result.landmarks.ibug68[row])
        signals = quality_signals(
            xyxy, result.landmarks.points[row], aligned.image, aligned.landmarks
        )
        det = float(result.faces.scores[row])
        box = (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))
        face = ScoredFace(track, result.index, pts, 0.0, det, signals, box, aligned)
        out.append((face, Candidate(track, signals, det, int(row))))
    return out


def with_score(face: ScoredFace, score: float) -> ScoredFace:
    """``face`` with the quality engine's score filled in."""
    return dataclasses.replace(face, score=float(score))
