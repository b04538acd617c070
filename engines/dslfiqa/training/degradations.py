"""Synthetic degradations for the contrastive stage: torch, numpy and PyAV only (no OpenCV).

A :class:`Degradation` is a frozen recipe, a chain of ``(op, strength)`` steps; applying the
same recipe to two different faces gives two images that share a degradation but not a
content (a synthetic positive pair). :func:`sample_degradation` draws a recipe from a numpy
``Generator``; :meth:`Degradation.apply` is deterministic given its ``seed`` (noise is the
only op that draws random numbers, from a generator seeded by the recipe's seed).

Ops (strength ranges in :data:`STRENGTHS`):
    blur      Gaussian blur, sigma in pixels (of a 512 face).
    noise     additive Gaussian noise, sigma in 0..255 levels (independent per channel).
    jpeg      JPEG (FFmpeg mjpeg, 4:2:0) at a fixed quantiser qscale 2 (best) .. 31 (worst).
    h264      one H.264 intra frame (libx264) at a fixed QP 0 .. 51 (worst); the artefacts of
              the video codecs that cameras use. Falls back to mjpeg when libx264 is missing.
    downscale down by a factor (area), back up bilinearly: loss of resolution.
    exposure  gamma on [0,1] intensities (>1 darkens, <1 brightens).
    contrast  scale around mid-grey (<1 flattens).
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass

import av
import numpy as np
import torch
import torch.nn.functional as F

OPS: tuple[str, ...] = ("blur", "noise", "jpeg", "h264", "downscale", "exposure", "contrast")
# (low, high) strength drawn uniformly (integers for jpeg/h264); chosen to span "barely
# visible" to "severe" on a 512x512 aligned face.
STRENGTHS: dict[str, tuple[float, float]] = {
    "blur": (0.5, 6.0),
    "noise": (2.0, 40.0),
    "jpeg": (4, 31),
    "h264": (24, 51),
    "downscale": (1.5, 8.0),
    "exposure": (0.4, 2.5),
    "contrast": (0.3, 0.9),
}
MAX_CHAIN = 3


@dataclass(frozen=True)
class Degradation:
    """A chain of degradation steps applied in order; ``seed`` drives the noise draws."""

    steps: tuple[tuple[str, float], ...]
    seed: int = 0

    def apply(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB [H,W,3] -> degraded uint8 RGB of the same shape (input untouched)."""
        out = np.ascontiguousarray(image)
        rng = np.random.default_rng(self.seed)
        for op, strength in self.steps:
            out = apply_op(out, op, strength, rng)
        return out

    def describe(self) -> str:
        return " + ".join(f"{op}({s:g})" for op, s in self.steps) or "none"


def sample_degradation(rng: np.random.Generator, max_chain: int = MAX_CHAIN) -> Degradation:
    """1..max_chain distinct ops in a random order with random strengths."""
    n = int(rng.integers(1, max_chain + 1))
    ops = rng.choice(len(OPS), size=n, replace=False)
    steps = []
    for i in ops:
        op = OPS[int(i)]
        lo, hi = STRENGTHS[op]
        s = (
            float(rng.integers(lo, hi + 1))
            if op in ("jpeg", "h264")
            else float(rng.uniform(lo, hi))
        )
        steps.append((op, s))
    return Degradation(tuple(steps), seed=int(rng.integers(0, 2**31 - 1)))


def apply_op(image: np.ndarray, op: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    if op == "blur":
        return gaussian_blur(image, strength)
    if op == "noise":
        return add_noise(image, strength, rng)
    if op == "jpeg":
        return jpeg(image, int(strength))
    if op == "h264":
        return h264_intra(image, int(strength))
    if op == "downscale":
        return downscale(image, strength)
    if op == "exposure":
        return _from_float(np.power(image.astype(np.float32) / 255.0, strength) * 255.0)
    if op == "contrast":
        return _from_float((image.astype(np.float32) - 127.5) * strength + 127.5)
    raise ValueError(f"unknown degradation {op!r}; choose one of {OPS}")


def _from_float(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _to_image(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian (radius 3 sigma), reflect padding."""
    if sigma <= 0:
        return image.copy()
    radius = max(1, int(np.ceil(3 * sigma)))
    radius = min(radius, min(image.shape[:2]) - 1)
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma * sigma))
    k = k / k.sum()
    t = _to_tensor(image)
    c = t.shape[1]
    t = F.pad(t, (radius, radius, radius, radius), mode="reflect")
    t = F.conv2d(t, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    t = F.conv2d(t, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return _to_image(t)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return _from_float(image.astype(np.float32) + noise)


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    t = F.interpolate(_to_tensor(image), size=small, mode="area")
    return _to_image(F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False))


def _encode_decode(
    image: np.ndarray, codec: str, pix_fmt: str, options: dict[str, str]
) -> np.ndarray:
    h, w = image.shape[:2]
    # Encoders need even sizes for 4:2:0; pad by edge replication and crop back.
    ph, pw = h + h % 2, w + w % 2
    src = (
        np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
        if (ph, pw) != (h, w)
        else image
    )
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = pw, ph, pix_fmt
    enc.time_base = fractions.Fraction(1, 25)
    if codec == "mjpeg":
        q = int(options["q"])
        enc.qmin, enc.qmax = q, q
    else:
        enc.options = options
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(src), format="rgb24").reformat(
        format=pix_fmt
    )
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    dec = av.CodecContext.create("h264" if codec == "libx264" else codec, "r")
    pictures = []
    for packet in packets:
        pictures += dec.decode(packet)
    pictures += dec.decode(None)
    if not pictures:
        raise RuntimeError(f"{codec}: encoding a {pw}x{ph} picture produced nothing to decode")
    return np.ascontiguousarray(pictures[0].to_ndarray(format="rgb24")[:h, :w])


def jpeg(image: np.ndarray, qscale: int) -> np.ndarray:
    """JPEG round trip at FFmpeg quantiser ``qscale`` (2 = best, 31 = worst)."""
    return _encode_decode(image, "mjpeg", "yuvj420p", {"q": str(int(np.clip(qscale, 2, 31)))})


def h264_intra(image: np.ndarray, qp: int) -> np.ndarray:
    """One H.264 intra frame at constant quantiser ``qp`` (0 lossless .. 51 worst)."""
    try:
        av.CodecContext.create("libx264", "w")
    except (av.error.FFmpegError, ValueError):  # FFmpeg built without libx264
        return jpeg(image, round(2 + (qp / 51) * 29))
    opts = {"qp": str(int(np.clip(qp, 0, 51))), "preset": "veryfast", "tune": "zerolatency"}
    return _encode_decode(image, "libx264", "yuv420p", opts)


# ---------------------------------------------------------------------------- measures
def laplacian_variance(image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the luma: high for sharp/noisy images."""
    y = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = -4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
    return float(lap.var())


def blockiness(image: np.ndarray, block: int = 8) -> float:
    """Mean luma jump across 8x8 block borders divided by the mean jump elsewhere (>1 = blocky)."""
    y = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    dx = np.abs(np.diff(y, axis=1))
    dy = np.abs(np.diff(y, axis=0))
    border_x = (np.arange(dx.shape[1]) % block) == block - 1
    border_y = (np.arange(dy.shape[0]) % block) == block - 1
    at = np.concatenate([dx[:, border_x].ravel(), dy[border_y, :].ravel()]).mean()
    off = np.concatenate([dx[:, ~border_x].ravel(), dy[~border_y, :].ravel()]).mean()
    return float(at / max(off, 1e-9))
