"""Dark pictures brightened for the models (detector, face mesh), never for the quality model.

BlazeFace and the face mesh were trained on well-exposed faces. In very dark video (RGB x 0.05)
the short-range detector scores a true face 0.4-0.7 and the mesh's face-presence flag fails
on most faces, although the picture still holds the face: darkness from exposure is a gain,
and its inverse restores what the models know. So a picture whose 90th luma percentile is
under ``DARK_P90`` is multiplied by the gain that brings that percentile to
``DARK_TARGET_P90`` (at most ``MAX_GAIN``). Normal video never qualifies: its 90th percentile
is 140 and more on 1,000 frames of this project's clips (fades to black excepted), and the
test costs one percentile of a subsample of about ``SAMPLES`` pixels (~0.1 ms). A linear
gain, not a gamma: it is the inverse of what made the picture dark, and it keeps the picture's
contrast ratios (a gamma flattens them, and the 13 grey levels left at x0.05 are few).

The aligned face that quality is scored on is cut from the original frame: how dark a face is
is part of its quality.
"""

from __future__ import annotations

import numpy as np

#: A picture whose 90th luma percentile (0-255) is under this is dark.
DARK_P90 = 64.0
#: A dark picture is brightened so that its 90th luma percentile lands here (normal video's).
DARK_TARGET_P90 = 150.0
#: The largest gain (x0.05 video needs about 20).
MAX_GAIN = 32.0
#: Luma samples the darkness test reads, at most (a regular subsample of the picture).
SAMPLES = 4096
#: ITU-R BT.601 luma weights.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def dark_gain(image: np.ndarray) -> float:
    """The gain that brightens a dark RGB ``uint8 [H, W, 3]`` picture; 1.0 when not dark."""
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / SAMPLES)))
    sample = image[::step, ::step].reshape(-1, 3).astype(np.float32) @ _LUMA
    if sample.size == 0:
        return 1.0
    k = int(0.9 * (sample.size - 1))
    p90 = float(np.partition(sample, k)[k])  # O(n), unlike np.percentile's full machinery
    if p90 >= DARK_P90:
        return 1.0
    return min(DARK_TARGET_P90 / max(p90, 1.0), MAX_GAIN)


def brighten(image: np.ndarray, gain: float) -> np.ndarray:
    """``image`` times ``gain``, rounded and saturated to ``uint8`` (through a 256-entry table)."""
    lut = np.clip(np.arange(256, dtype=np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
    return np.take(lut, image)  # faster than lut[image]


def normalised(image: np.ndarray) -> np.ndarray:
    """``image`` brightened if it is dark, else ``image`` itself."""
    gain = dark_gain(image)
    return image if gain == 1.0 else brighten(image, gain)
