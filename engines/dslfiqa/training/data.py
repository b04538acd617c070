"""The official training transform over datasets read by :mod:`engines.dataset`.

Datasets are :class:`engines.dataset.FiqaDataset` splits in the official layout
(DSL_FIQA.md §9); the quality trainer scales their MOS to [0,1] per split with
:func:`engines.dataset.normalized_mos`. What is here is training-only: where the splits are,
the random crop + landmark vector + flip of one face, and batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.dataset import LABEL_FILE
from engines.dslfiqa.constants import MINMAX_EPS, NORM_MEAN, NORM_STD, NUM_LANDMARK
from engines.dslfiqa.preprocess import resize_face as resize_face
from engines.dslfiqa.training.config import FlipMode


def find_split(data: str | Path, split: str) -> Path | None:
    """``data/<split>`` if it holds a label.json, ``data`` itself for ``train`` if it does."""
    root = Path(data)
    if (root / split / LABEL_FILE).is_file():
        return root / split
    if split == "train" and (root / LABEL_FILE).is_file():
        return root
    return None


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
        self, image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, name: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB face [S,S,3] and its [68,2] (x, y) landmarks -> crop [3,C,C], vector [500]."""
        image, pts = resize_face(image, landmarks, self.image_size)
        h, w = image.shape[:2]
        if h < self.crop_size or w < self.crop_size:
            raise ValueError(f"{name or 'face'}: {h}x{w} face is smaller than the crop")
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
        return np.ascontiguousarray(x), vec


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
