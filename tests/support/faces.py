"""Pre-aligned face inputs for tests that must not depend on the face detector."""

from __future__ import annotations

import av
import numpy as np

from engines.dslfiqa.constants import IMAGE_SIZE

# A generic iBUG 68-point layout in a 512x512 aligned face, placed as the official alignment
# (box + 80-100 % margin per side) puts a frontal face: eyes near y=240, chin near y=370.
# Jaw 0-16 (subject's right ear -> chin -> left ear), brows 17-26, nose 27-35, eyes 36-47,
# lips 48-67. Every point lies in [128, 384], i.e. inside every official 384 crop.
_JAW_T = np.pi - np.pi * np.arange(17) / 16
_GENERIC_68 = np.concatenate(
    [
        np.stack([256 + 97 * np.cos(_JAW_T), 235 + 135 * np.sin(_JAW_T)], axis=1),
        [[175, 212], [190, 203], [206, 200], [222, 202], [238, 207]],  # right brow
        [[274, 207], [290, 202], [306, 200], [322, 203], [337, 212]],  # left brow
        [[256, 235], [256, 252], [256, 269], [256, 286]],  # nose bridge
        [[236, 298], [246, 301], [256, 303], [266, 301], [276, 298]],  # nose base
        [[191, 240], [204, 234], [218, 234], [231, 240], [218, 245], [204, 245]],  # right eye
        [[281, 240], [294, 234], [308, 234], [321, 240], [308, 245], [294, 245]],  # left eye
        [[221, 330], [233, 322], [246, 318], [256, 320], [266, 318], [279, 322]],  # outer lip
        [[291, 330], [279, 340], [266, 345], [256, 346], [246, 345], [233, 340]],
        [[226, 330], [244, 326], [256, 327], [268, 326], [286, 330], [268, 334]],  # inner lip
        [[256, 335], [244, 334]],
    ]
).astype(np.float32)


def generic_landmarks68() -> np.ndarray:
    """A fixed frontal-face 68-point layout [68,2] (x, y) for a 512x512 aligned face.

    Tests build pre-aligned inputs (the official layout: image + .npy) with it and
    :func:`center_square_512`, without depending on the face detector.
    """
    return _GENERIC_68.copy()


def center_square_512(image: np.ndarray) -> np.ndarray:
    """Centre square of an RGB image, resized (bicubic) to 512x512 uint8."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    if side == IMAGE_SIZE:
        return square
    frame = av.VideoFrame.from_ndarray(square, format="rgb24")
    return frame.reformat(IMAGE_SIZE, IMAGE_SIZE, interpolation="BICUBIC").to_ndarray()
