"""Face images on disk in the official DSL-FIQA layout: aligned images, landmarks, MOS labels.

A split folder (GFIQA / CGFIQA ``train``, ``val`` or ``test``, or ``dataset/custom``) holds::

    SPLIT/img/NAME.png          aligned face, 512x512 RGB
    SPLIT/landmark/NAME.npy     float32 [68, 2], (x, y) pixels of the aligned image
    SPLIT/label.json            {"Image": [NAME.png, ...], "MOS": [score, ...]}

(DSL_FIQA.md §2.1 and §9; the official ``test.py`` walks ``label.json`` in its order and
finds each landmark file by swapping ``img`` for ``landmark`` and ``.png`` for ``.npy``.)

Images are decoded with PyAV (FFmpeg). PNG decoding is lossless, so pixels equal OpenCV's;
JPEG decoders may differ by a grey level here and there.

Example:
    >>> ds = FiqaDataset.from_dir("GFIQA/test")  # doctest: +SKIP
    >>> image, landmarks = ds.load(0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

IMG_DIR = "img"
LANDMARK_DIR = "landmark"
LABEL_FILE = "label.json"
LANDMARK_SUFFIX = ".npy"
# Still images fqm reads (any FFmpeg decodes); the official datasets hold PNG.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
NUM_LANDMARKS = 68
OFFICIAL_SPLITS: tuple[str, ...] = ("train", "val", "test")
# How many offending file names an error lists before summarising.
MAX_LISTED = 5


class DatasetError(ValueError):
    """A dataset folder, image or landmark file is missing or not in the official format."""


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file (PNG, JPEG, ...) to ``uint8 [H, W, 3]`` RGB with PyAV."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image {path} does not exist")
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration, ValueError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image {path} does not exist")
    try:
        with av.open(str(path)) as container:
            ctx = container.streams.video[0].codec_context
            if ctx.width and ctx.height:
                return ctx.width, ctx.height
    except (av.FFmpegError, IndexError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc
    h, w = read_image_rgb(path).shape[:2]
    return w, h


def read_landmarks(path: str | Path) -> np.ndarray:
    """Load a landmark file: ``float32 [68, 2]`` (x, y) pixels, as the official ``.npy``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"landmark file {path} does not exist")
    try:
        pts = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read landmark file {path} as a .npy array: {exc}") from exc
    if pts.shape != (NUM_LANDMARKS, 2):
        raise DatasetError(
            f"landmark file {path} holds shape {pts.shape}; expected [{NUM_LANDMARKS}, 2] "
            "(x, y) pixels of the 512x512 aligned image"
        )
    if not np.issubdtype(pts.dtype, np.number) or not np.all(np.isfinite(pts)):
        raise DatasetError(f"landmark file {path} holds non-finite or non-numeric values")
    return pts.astype(np.float32)


def landmark_path_for(image_path: str | Path) -> Path:
    """Where the landmarks of ``image_path`` live.

    Official layout (``X/img/NAME.png`` -> ``X/landmark/NAME.npy``) when the image sits in an
    ``img`` folder; otherwise a ``NAME.npy`` beside the image.
    """
    image_path = Path(image_path)
    name = image_path.stem + LANDMARK_SUFFIX
    if image_path.parent.name == IMG_DIR:
        return image_path.parent.parent / LANDMARK_DIR / name
    return image_path.with_name(name)


def _listing(names: list[str]) -> str:
    more = f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


@dataclass(frozen=True)
class FaceSample:
    """One labelled face of a dataset: file names and the raw MOS from ``label.json``."""

    name: str
    image_path: Path
    landmark_path: Path
    mos: float


@dataclass(frozen=True)
class FiqaDataset:
    """A split folder in the official layout, in ``label.json`` order (as official ``test.py``).

    Attributes:
        root: the split folder.
        samples: one ``FaceSample`` per ``label.json`` entry, in file order.
    """

    root: Path
    samples: tuple[FaceSample, ...]

    @classmethod
    def from_dir(cls, root: str | Path) -> FiqaDataset:
        """Read ``root/label.json`` and check that every image and landmark file exists.

        Raises:
            DatasetError: naming what is missing or malformed and how to fix it.
        """
        root = Path(root)
        label_path = root / LABEL_FILE
        if not root.is_dir():
            raise DatasetError(f"dataset folder {root} does not exist")
        if not label_path.is_file():
            splits = [s for s in OFFICIAL_SPLITS if (root / s / LABEL_FILE).is_file()]
            hint = (
                f"; it holds the splits {', '.join(splits)}: pass {root / splits[-1]}"
                if splits
                else f"; expected {IMG_DIR}/, {LANDMARK_DIR}/ and {LABEL_FILE} "
                '({"Image": [file names], "MOS": [scores]})'
            )
            raise DatasetError(f"{root} has no {LABEL_FILE}{hint}")
        try:
            label = json.loads(label_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read {label_path}: {exc}") from exc
        names, mos = cls._parse_label(label, label_path)
        samples = tuple(
            FaceSample(
                name=n,
                image_path=root / IMG_DIR / n,
                landmark_path=landmark_path_for(root / IMG_DIR / n),
                mos=m,
            )
            for n, m in zip(names, mos, strict=True)
        )
        missing_img = [s.name for s in samples if not s.image_path.is_file()]
        missing_lmk = [s.landmark_path.name for s in samples if not s.landmark_path.is_file()]
        problems = []
        if missing_img:
            problems.append(
                f"{len(missing_img)} images missing from {root / IMG_DIR}: {_listing(missing_img)}"
            )
        if missing_lmk:
            problems.append(
                f"{len(missing_lmk)} landmark files missing from {root / LANDMARK_DIR}: "
                f"{_listing(missing_lmk)}"
            )
        if problems:
            raise DatasetError(f"{label_path} lists files that are missing: " + "; ".join(problems))
        return cls(root=root, samples=samples)

    @staticmethod
    def _parse_label(label: object, where: Path) -> tuple[list[str], list[float]]:
        fmt = '{"Image": [file names], "MOS": [scores]}'
        if not isinstance(label, dict) or "Image" not in label or "MOS" not in label:
            raise DatasetError(f"{where} must be a JSON object {fmt}")
        names, mos = label["Image"], label["MOS"]
        if not isinstance(names, list) or not isinstance(mos, list):
            raise DatasetError(f"{where}: 'Image' and 'MOS' must be lists ({fmt})")
        if len(names) != len(mos):
            raise DatasetError(f"{where} has {len(names)} images but {len(mos)} MOS values")
        if not names:
            raise DatasetError(f"{where} lists no images")
        bad_names = [repr(n) for n in names if not isinstance(n, str) or not n]
        if bad_names:
            raise DatasetError(f"{where}: image names must be strings: {_listing(bad_names)}")
        bad_mos = [
            repr(m)
            for m in mos
            if isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m)
        ]
        if bad_mos:
            raise DatasetError(f"{where}: MOS values must be finite numbers: {_listing(bad_mos)}")
        dupes = sorted(n for n, c in Counter(names).items() if c > 1)
        if dupes:
            raise DatasetError(f"{where} lists images more than once: {_listing(dupes)}")
        return names, [float(m) for m in mos]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[FaceSample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> FaceSample:
        return self.samples[index]

    def head(self, n: int | None) -> FiqaDataset:
        """The first ``n`` samples (all when ``n`` is None), in ``label.json`` order."""
        return self if n is None else FiqaDataset(self.root, self.samples[:n])

    @property
    def mos(self) -> np.ndarray:
        """Raw MOS [N] float64, in sample order."""
        return np.array([s.mos for s in self.samples], dtype=np.float64)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``uint8 [H, W, 3]`` RGB and landmarks ``float32 [68, 2]`` of sample ``index``."""
        s = self.samples[index]
        return read_image_rgb(s.image_path), read_landmarks(s.landmark_path)


def normalized_mos(mos: np.ndarray) -> np.ndarray:
    """MOS min-max scaled to [0, 1] over the split, the target the model was trained on."""
    mos = np.asarray(mos, dtype=np.float64)
    span = mos.max() - mos.min()
    return np.zeros_like(mos) if span == 0 else (mos - mos.min()) / span
