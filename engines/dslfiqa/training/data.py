"""Training data: the official dataset layout, and the official training transform.

Layout (GFIQA-20k / CGFIQA-40k, DSL_FIQA.md 9): ``<split>/img/<name>`` (512x512 PNG/JPEG),
``<split>/landmark/<stem>.npy`` ([68,2] float32 (x, y) pixels) and ``<split>/label.json`` =
``{"Image": [names], "MOS": [scores]}``. Any object with ``__len__`` and a ``__getitem__``
returning :class:`FaceSample` (the :class:`FaceDataset` protocol) can be trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import numpy as np
import torch
import torch.nn.functional as F

from engines.dslfiqa.preprocess import MINMAX_EPS, NORM_MEAN, NORM_STD, NUM_LANDMARK
from engines.dslfiqa.training.config import FlipMode

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class FaceSample:
    """One aligned face: ``image`` uint8 RGB [S,S,3], ``landmarks`` [68,2] (x, y) pixels of
    ``image``, ``mos`` the (normalised) label."""

    image: np.ndarray
    landmarks: np.ndarray
    mos: float
    name: str = ""


@runtime_checkable
class FaceDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> FaceSample: ...


def read_image(path: str | Path) -> np.ndarray:
    """Any still image FFmpeg decodes (PNG, JPEG, ...) -> uint8 RGB [H,W,3]; no OpenCV/PIL."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path}: no picture could be decoded")


def minmax(values: Sequence[float]) -> np.ndarray:
    """Labels min-max normalised to [0,1] within the split, as the official loaders do."""
    v = np.asarray(values, dtype=np.float64)
    span = v.max() - v.min()
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


class OfficialLayoutDataset:
    """One split in the official layout; images are decoded on access (never cached).

    Args:
        root: the split folder holding ``img/``, ``landmark/`` and ``label.json``.
        normalize_mos: min-max scale MOS to [0,1] over the split (official).
    """

    def __init__(self, root: str | Path, normalize_mos: bool = True):
        self.root = Path(root)
        label = self.root / "label.json"
        if not label.is_file():
            raise FileNotFoundError(
                f"{label} not found: --data must be a split folder with img/, landmark/ and "
                'label.json ({"Image": [...], "MOS": [...]}), or a dataset folder whose train/ '
                "subfolder is one"
            )
        data = json.loads(label.read_text(encoding="utf-8"))
        names, mos = list(data["Image"]), [float(m) for m in data["MOS"]]
        if len(names) != len(mos) or not names:
            raise ValueError(f"{label}: 'Image' and 'MOS' must be non-empty lists of equal length")
        missing = [n for n in names if not (self.root / "img" / n).is_file()]
        missing += [
            f"landmark/{Path(n).stem}.npy"
            for n in names
            if not (self.root / "landmark" / f"{Path(n).stem}.npy").is_file()
        ]
        if missing:
            raise FileNotFoundError(f"{self.root}: {len(missing)} files missing: {missing[:5]}")
        self.names = names
        self.raw_mos = np.asarray(mos, dtype=np.float64)
        self.mos = minmax(mos) if normalize_mos else self.raw_mos

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> FaceSample:
        name = self.names[index]
        image = read_image(self.root / "img" / name)
        pts = np.load(self.root / "landmark" / f"{Path(name).stem}.npy")
        return FaceSample(image, np.asarray(pts, dtype=np.float64), float(self.mos[index]), name)


def find_split(data: str | Path, split: str) -> Path | None:
    """``data/<split>`` if it holds a label.json, ``data`` itself for ``train`` if it does."""
    root = Path(data)
    if (root / split / "label.json").is_file():
        return root / split
    if split == "train" and (root / "label.json").is_file():
        return root
    return None


def resize_face(
    image: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Area-resize a square face to ``size`` and scale its landmarks (tiny configs only)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, landmarks
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(size, size), mode="area")
    out = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    scale = np.array([size / w, size / h])
    return out, np.asarray(landmarks, dtype=np.float64) * scale


def train_landmark_vector(
    landmarks_xy: np.ndarray, top: int, left: int, crop: int, num: int = NUM_LANDMARK
) -> np.ndarray:
    """The official training-time landmark index vector: as DSL_FIQA.md 2.4 but float64.

    (The inclusive ``+crop`` bound and the padding value ``len(landmarks)+1`` are official.)
    """
    pts = np.asarray(landmarks_xy)
    x, y = pts[:, 0], pts[:, 1]
    visible = np.flatnonzero((y >= top) & (y <= top + crop) & (x >= left) & (x <= left + crop))
    v = np.full(num, len(pts) + 1, dtype=np.float64)
    v[: min(visible.size, num)] = visible[:num]
    return (v - v.min()) / (v.max() - v.min() + MINMAX_EPS) * 2 - 1


@dataclass(frozen=True)
class TrainTransform:
    """Random crop + landmark vector + [-1,1] normalisation + flip (official train transform).

    Deterministic given ``rng``; the caller derives ``rng`` from (seed, epoch, index).
    """

    image_size: int
    crop_size: int
    flip: FlipMode = "official"
    flip_p: float = 0.7

    def __call__(
        self, sample: FaceSample, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, float]:
        image, pts = resize_face(sample.image, sample.landmarks, self.image_size)
        h, w = image.shape[:2]
        if h < self.crop_size or w < self.crop_size:
            raise ValueError(f"{sample.name}: {h}x{w} face is smaller than the crop")
        # Official offsets come from randint(0, size - crop): the last offset never occurs.
        top = int(rng.integers(0, max(h - self.crop_size, 1)))
        left = int(rng.integers(0, max(w - self.crop_size, 1)))
        crop = image[top : top + self.crop_size, left : left + self.crop_size]
        x = (crop.astype(np.float32) / np.float32(255) - np.float32(NORM_MEAN)) / np.float32(
            NORM_STD
        )
        x = x.transpose(2, 0, 1)
        vec = train_landmark_vector(pts, top, left, self.crop_size)
        if self.flip != "none" and rng.random() < self.flip_p:
            x = x[:, ::-1, :] if self.flip == "official" else x[:, :, ::-1]
        return np.ascontiguousarray(x), vec, float(sample.mos)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Per-(epoch, sample) generator: augmentation does not depend on batch composition,
    so a run resumed mid-epoch draws the same crops as an uninterrupted one."""
    return np.random.default_rng([seed, epoch, index])


def collate(
    items: Sequence[tuple[np.ndarray, np.ndarray, float]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> crops [B,3,C,C] float32, landmark vectors [B,500] float32, labels [B] float32."""
    x = torch.from_numpy(np.stack([i[0] for i in items]))
    lm = torch.from_numpy(np.stack([i[1] for i in items])).float()
    y = torch.tensor([i[2] for i in items], dtype=torch.float32)
    return x, lm, y
