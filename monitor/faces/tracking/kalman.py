"""Constant-velocity Kalman filter on a box's centre and size, as pure functions.

State ``[cx, cy, w, h, vcx, vcy, vw, vh]``, measurement ``[cx, cy, w, h]``. Width and height
are filtered separately (not ByteTrack's aspect ratio) because a face box's aspect changes
little and MediaPipe's boxes are square anyway. Noise is proportional to the box size, as in
SORT/ByteTrack, so one setting suits faces of 30 and of 300 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Smallest width/height the filter will report; keeps a coasting box from collapsing.
MIN_SIZE = 1.0


@dataclass(frozen=True, slots=True)
class KalmanFilter:
    """Box motion model; holds only settings, the state is passed in and returned.

    Args:
        std_position: position noise as a fraction of the box size per step (ByteTrack: 1/20).
        std_velocity: velocity noise as a fraction of the box size per step (ByteTrack: 1/160).
    """

    std_position: float = 1.0 / 20
    std_velocity: float = 1.0 / 160

    def _motion(self) -> np.ndarray:
        f = np.eye(8)
        f[:4, 4:] = np.eye(4)
        return f

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of a new track from its first ``[cx, cy, w, h]``."""
        z = np.asarray(measurement, np.float64)
        mean = np.concatenate([z, np.zeros(4)])
        w, h = z[2], z[3]
        p, v = self.std_position, self.std_velocity
        std = [
            2 * p * w,
            2 * p * h,
            2 * p * w,
            2 * p * h,
            10 * v * w,
            10 * v * h,
            10 * v * w,
            10 * v * h,
        ]
        return mean, np.diag(np.square(std))

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead."""
        w, h = mean[2], mean[3]
        p, v = self.std_position, self.std_velocity
        q = np.diag(np.square([p * w, p * h, p * w, p * h, v * w, v * h, v * w, v * h]))
        f = self._motion()
        new_mean = f @ mean
        new_mean[2:4] = np.maximum(new_mean[2:4], MIN_SIZE)
        return new_mean, f @ cov @ f.T + q

    def update(
        self, mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Corrects the state with a measured ``[cx, cy, w, h]``."""
        z = np.asarray(measurement, np.float64)
        w, h = mean[2], mean[3]
        p = self.std_position
        r = np.diag(np.square([p * w, p * h, p * w, p * h]))
        s = cov[:4, :4] + r
        gain = np.linalg.solve(s, cov[:4, :]).T  # cov H^T S^-1, S symmetric
        new_mean = mean + gain @ (z - mean[:4])
        new_mean[2:4] = np.maximum(new_mean[2:4], MIN_SIZE)
        new_cov = cov - gain @ s @ gain.T
        return new_mean, (new_cov + new_cov.T) / 2
