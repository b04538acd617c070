"""``ShotCutDetector``: notices hard cuts, where tracks must end rather than jump.

In edited video (broadcast, films, compilations) the next shot often has a different face
exactly where the last one was; IoU matching would then hand the old track's id to the new
person, merging two people into one track and one best shot. A cut changes the whole
picture at once: the mean absolute difference of 32x32 thumbnails of consecutive frames is
40+ (0-255 scale) at Megamind.avi's cuts, and below 6 on every frame of franck.mp4 and
carphone. Live cameras have no cuts; a sudden light switch may trip it, which only splits a
track (a new id), the lesser error.
"""

from __future__ import annotations

import numpy as np

#: Mean absolute thumbnail difference (0-255) above which two frames are different shots.
DEFAULT_CUT_THRESHOLD = 25.0
THUMB = 32


def thumbnail(image: np.ndarray, size: int = THUMB) -> np.ndarray:
    """``float32 [size, size]`` block means of the green channel (a cheap stand-in for luma)."""
    g = image[:, :, 1]
    h, w = g.shape
    bh, bw = max(h // size, 1), max(w // size, 1)
    g = g[: bh * size, : bw * size].astype(np.float32)
    if g.shape != (bh * size, bw * size):  # smaller than the thumbnail: no cut detection
        return np.resize(g, (size, size))
    return g.reshape(size, bh, size, bw).mean(axis=(1, 3))


class ShotCutDetector:
    """Says whether a frame starts a new shot, compared with the previous frame it was given.

    Args:
        threshold: mean absolute thumbnail difference (0-255) that counts as a cut.
    """

    def __init__(self, threshold: float = DEFAULT_CUT_THRESHOLD) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def is_cut(self, image: np.ndarray) -> bool:
        thumb = thumbnail(image)
        previous, self._previous = self._previous, thumb
        if previous is None:
            return False
        return float(np.abs(thumb - previous).mean()) > self.threshold
