"""From the face stage's output to what the policy and the book take, once for every caller."""

from __future__ import annotations

import dataclasses

import numpy as np

from monitor.faces import FacesFrame, TrackState, align_face, quality_signals
from monitor.tracks.observation import ScoredFace
from monitor.tracks.policy import Candidate


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
