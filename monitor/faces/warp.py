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
    # grid_sample's align_corners=True: -1 and 1 are the centres of the first and last pixel.
    grid = np.stack([x * 2 / max(w - 1, 1) - 1, y * 2 / max(h - 1, 1) - 1], axis=-1)
    src = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        out = F.grid_sample(
            src,
            torch.from_numpy(grid.astype(np.float32))[None],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        return out[0].permute(1, 2, 0).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()


def crop_to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Maps ``[..., 2]`` crop coordinates into the image."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def image_to_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Maps ``[..., 2]`` image coordinates into the crop (inverse of ``crop_to_image``)."""
    inv = np.linalg.inv(matrix[:, :2])
    return (np.asarray(points, np.float64) - matrix[:, 2]) @ inv.T
