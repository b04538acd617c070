"""Rotated square crops by bilinear sampling (no OpenCV), and their inverse mapping.

A crop is described by the 2x3 affine ``M`` that maps crop pixel coordinates ``(u, v)`` to
image coordinates: ``[x, y] = M[:, :2] @ [u, v] + M[:, 2]``. The same ``M`` maps points found
in the crop (landmarks) back into the image, so crop and inverse never disagree.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def crop_matrix(center: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """``M`` for a ``size``-pixel square crop of side ``side`` around ``center``, rotated by
    ``angle`` radians (the crop's x axis points along ``(cos angle, sin angle)`` in the image).
    """
    c, s = np.cos(angle), np.sin(angle)
    a = (side / size) * np.array([[c, -s], [s, c]])
    t = np.asarray(center, np.float64) - a @ np.full(2, (size - 1) / 2)
    return np.concatenate([a, t[:, None]], axis=1)


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Samples a ``size`` x ``size`` crop of ``image`` (H, W, C uint8) through ``matrix``.

    Pixels outside the image are black. Bilinear, through torch's ``grid_sample`` (about
    20x faster than the same gathers in numpy at 512x512); enough for the landmark model,
    whose own inputs MediaPipe resizes bilinearly too.
    """
    h, w = image.shape[:2]
    uv = np.arange(size, dtype=np.float64)
    uu, vv = np.meshgrid(uv, uv)
    x = matrix[0, 0] * uu + matrix[0, 1] * vv + matrix[0, 2]
    y = matrix[1, 0] * uu + matrix[1, 1] * vv + matrix[1, 2]
    # Only the pixels the crop reads are converted to float: a face crop of a 720p frame then
    # costs what the crop costs, not what the frame costs. The window has one spare pixel on
    # each side and at least 2 pixels per axis (grid_sample maps everything to pixel 0 of a
    # 1-pixel axis), so sampling it equals sampling the whole image.
    x0, x1 = _window(x, w)
    y0, y1 = _window(y, h)
    patch = image[y0 : y1 + 1, x0 : x1 + 1]
    pw, ph = x1 - x0 + 1, y1 - y0 + 1
    # grid_sample's align_corners=True: -1 and 1 are the centres of the first and last pixel.
    grid = np.stack([(x - x0) * 2 / max(pw - 1, 1) - 1, (y - y0) * 2 / max(ph - 1, 1) - 1], axis=-1)
    src = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        out = F.grid_sample(
            src,
            torch.from_numpy(grid.astype(np.float32))[None],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        return out[0].permute(1, 2, 0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()


def _window(coords: np.ndarray, n: int) -> tuple[int, int]:
    """First and last pixel index (inclusive) along an axis of ``n`` pixels that sampling at
    ``coords`` reads; ``last >= first + 1`` whenever ``n >= 2``."""
    first = int(np.clip(np.floor(coords.min()) - 1, 0, max(n - 2, 0)))
    last = int(np.clip(np.ceil(coords.max()) + 1, 1, n - 1))
    return first, max(last, first)


def crop_to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Maps ``[..., 2]`` crop coordinates into the image."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def image_to_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Maps ``[..., 2]`` image coordinates into the crop (inverse of ``crop_to_image``)."""
    inv = np.linalg.inv(matrix[:, :2])
    return (np.asarray(points, np.float64) - matrix[:, 2]) @ inv.T
