"""A track's best K frames, with tie-breaks and hysteresis.

Order: the higher quality score first. Scores within ``tie_tolerance`` of each other are a
tie, broken by (1) the larger face, (2) the more frontal pose (smaller ``hypot(yaw, pitch)``),
(3) the higher detection score, as Frigate picks thumbnails (bigger face, higher detection
score) when the model cannot tell two frames apart. A full tie keeps the incumbent.

Hysteresis: a candidate must beat a kept frame by more than ``margin`` to replace it (its
score is handicapped by ``margin`` before the comparison above), and to take the top place
from the current best. Without it, near-identical frames of a still face would swap the best
frame, and with it the published best crop, on every scoring. A candidate that fills a free
slot (fewer than K kept) needs no margin to enter, but still needs it to become the top.

Near-duplicates: with ``min_gap_frames > 0`` a candidate within that many frames of a kept
frame competes with that frame only (replaces it or is dropped), so the K frames are spread
over the track instead of being K neighbours of the same moment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from monitor.tracks.observation import ScoredFace


def compare(
    candidate: ScoredFace, incumbent: ScoredFace, margin: float = 0.0, tie_tolerance: float = 0.0
) -> int:
    """+1 if ``candidate`` beats ``incumbent`` by more than ``margin``, -1 if it loses, 0 on a
    full tie (see the module docstring for the tie-breaks)."""
    d = (candidate.score - margin) - incumbent.score
    if d > tie_tolerance:
        return 1
    if d < -tie_tolerance:
        return -1
    for a, b in (
        (candidate.face_size, incumbent.face_size),
        (-candidate.pose_deviation, -incumbent.pose_deviation),
        (candidate.detection_score, incumbent.detection_score),
    ):
        if a != b:
            return 1 if a > b else -1
    return 0


@dataclass(frozen=True, slots=True, eq=False)
class BestChange:
    """A candidate entered the best K.

    Attributes:
        entered: the new best frame.
        rank: its place, 0 = the track's best frame.
        replaced: the frame it pushed out, ``None`` when it took a free slot.
        top_changed: whether the track's best frame (rank 0) is now a different frame.
        best: the K frames after the change, best first.
    """

    entered: ScoredFace
    rank: int
    replaced: ScoredFace | None
    top_changed: bool
    best: tuple[ScoredFace, ...]


class BestFrames:
    """The best ``k`` scored faces of one track (mutable; one per live track).

    Args:
        k: frames kept (>= 1).
        margin: score a candidate must beat a kept frame by to replace it (>= 0).
        tie_tolerance: score difference below which two frames tie (>= 0).
        min_gap_frames: frames within this distance of a kept frame compete with it only.
        keep_faces: keep the aligned face of the K frames (``False``: scalars only).
    """

    def __init__(
        self,
        k: int = 3,
        *,
        margin: float = 0.02,
        tie_tolerance: float = 0.005,
        min_gap_frames: int = 0,
        keep_faces: bool = True,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if margin < 0 or tie_tolerance < 0 or min_gap_frames < 0:
            raise ValueError(
                "margin, tie_tolerance and min_gap_frames must be >= 0, got "
                f"{margin}, {tie_tolerance}, {min_gap_frames}"
            )
        self.k = k
        self.margin = margin
        self.tie_tolerance = tie_tolerance
        self.min_gap_frames = min_gap_frames
        self.keep_faces = keep_faces
        self._kept: list[ScoredFace] = []

    @property
    def frames(self) -> tuple[ScoredFace, ...]:
        """The kept frames, best first."""
        return tuple(self._kept)

    @property
    def top(self) -> ScoredFace | None:
        return self._kept[0] if self._kept else None

    def __len__(self) -> int:
        return len(self._kept)

    def _beats(self, candidate: ScoredFace, incumbent: ScoredFace, margin: float) -> bool:
        return compare(candidate, incumbent, margin, self.tie_tolerance) > 0

    def offer(self, candidate: ScoredFace) -> BestChange | None:
        """Considers one scored face; returns the change, or ``None`` if the K stay as they are."""
        kept = self._kept
        top_before = kept[0] if kept else None
        near = [
            f
            for f in kept
            if self.min_gap_frames and abs(f.frame - candidate.frame) <= self.min_gap_frames
        ]
        if near:
            target: ScoredFace | None = min(near, key=lambda f: abs(f.frame - candidate.frame))
        elif len(kept) < self.k:
            target = None
        else:
            target = kept[-1]
        if target is not None and not self._beats(candidate, target, self.margin):
            return None
        if not self.keep_faces and candidate.face is not None:
            candidate = dataclasses.replace(candidate, face=None)
        rest = [f for f in kept if f is not target]
        rank = next((i for i, f in enumerate(rest) if self._beats(candidate, f, 0.0)), len(rest))
        if (
            rank == 0
            and top_before is not None
            and top_before is not target
            and not self._beats(candidate, top_before, self.margin)
        ):
            rank = 1  # the best frame is sticky: taking the top needs the margin too
        rest.insert(rank, candidate)
        self._kept = rest
        return BestChange(
            entered=candidate,
            rank=rank,
            replaced=target,
            top_changed=rank == 0,
            best=tuple(rest),
        )
