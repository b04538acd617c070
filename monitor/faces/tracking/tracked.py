"""``TrackedFaces``: the tracker's per-frame output, immutable parallel arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.faces.detections import NUM_KEYPOINTS
from monitor.faces.tracking.track import TrackState


def _frozen(array: object, dtype: type, shape: tuple[int | None, ...], name: str) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    ok = out.ndim == len(shape) and all(
        s is None or s == g for g, s in zip(out.shape, shape, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"TrackedFaces.{name} must have shape {want}, got {out.shape}")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class TrackedFaces:
    """The tracks alive after one tracker step, one row per track.

    Attributes:
        track_ids: ``int64 [N]``; ``-1`` for tentative tracks (ids are given at confirmation).
        states: ``int8 [N]`` of ``TrackState`` values.
        xyxy: ``float32 [N, 4]``, the Kalman estimate (smoothed box; predicted while coasting).
        scores: ``float32 [N]``, the last matched detection's score.
        keypoints: ``float32 [N, 6, 2]``, the last matched detection's keypoints.
        detection_index: ``int64 [N]``, the row of this step's ``FaceDetections`` matched to
            the track, or ``-1`` when the track was not detected this step. Extras computed per
            detection (landmarks, crops) follow their track through this index.
    """

    track_ids: np.ndarray
    states: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    detection_index: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.track_ids).reshape(-1).shape[0]
        for name, dtype, shape in (
            ("track_ids", np.int64, (n,)),
            ("states", np.int8, (n,)),
            ("xyxy", np.float32, (n, 4)),
            ("scores", np.float32, (n,)),
            ("keypoints", np.float32, (n, NUM_KEYPOINTS, 2)),
            ("detection_index", np.int64, (n,)),
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype, shape, name))

    @classmethod
    def empty(cls) -> TrackedFaces:
        return cls(
            track_ids=np.zeros(0),
            states=np.zeros(0),
            xyxy=np.zeros((0, 4)),
            scores=np.zeros(0),
            keypoints=np.zeros((0, NUM_KEYPOINTS, 2)),
            detection_index=np.zeros(0),
        )

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> TrackedFaces:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return TrackedFaces(
            track_ids=self.track_ids[index],
            states=self.states[index],
            xyxy=self.xyxy[index],
            scores=self.scores[index],
            keypoints=self.keypoints[index],
            detection_index=self.detection_index[index],
        )

    def in_state(self, *states: TrackState) -> TrackedFaces:
        """The rows whose track is in one of ``states``."""
        return self[np.isin(self.states, [int(s) for s in states])]

    @property
    def confirmed(self) -> TrackedFaces:
        """Confirmed tracks detected this step: the faces worth landmarking and scoring."""
        return self[(self.states == TrackState.CONFIRMED) & (self.detection_index >= 0)]
