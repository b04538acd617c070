"""Scoring the faces of still photos (``fqm score``).

An image with a landmark file stored as the official data does (``X/img/NAME.png`` +
``X/landmark/NAME.npy``, or ``NAME.npy`` beside the image; DSL_FIQA.md §2.1) is an aligned
512x512 face and is scored as is (the official path). Any other image goes through a face
aligner (:class:`monitor.faces.aligner.PhotoAligner`: detector + mesh landmarks +
alignment), and every face it finds is scored.

In ``official`` mode the 20 crop positions of each face come from one numpy legacy RNG seeded
with 20 that continues from face to face, so positions depend on the order of the faces,
exactly as in the official scripts (``fqm score`` orders files by name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from engines.dataset import (
    IMAGE_SUFFIXES,
    IMG_DIR,
    DatasetError,
    image_size,
    landmark_path_for,
    read_image_rgb,
    read_landmarks,
)
from engines.dslfiqa.constants import IMAGE_SIZE, OFFICIAL_SEED, CropMode

if TYPE_CHECKING:
    from engines import DslFiqa


class AlignedLike(Protocol):
    """An aligned face: ``image`` uint8 [512,512,3] RGB, ``landmarks`` [68,2] (x, y) pixels.

    ``monitor.faces.align.AlignedFace`` has this shape.
    """

    @property
    def image(self) -> np.ndarray: ...

    @property
    def landmarks(self) -> np.ndarray: ...


#: Turns a decoded RGB photo of any size into zero or more aligned faces.
FaceAligner = Callable[[np.ndarray], Sequence[AlignedLike]]


@dataclass(frozen=True)
class AlignedInput:
    """An aligned face read from disk (the :class:`AlignedLike` the CLI produces itself)."""

    image: np.ndarray
    landmarks: np.ndarray


def check_prealigned(path: Path) -> Path:
    """Check that ``path`` is a 512x512 image with a landmark file; returns that file.

    Reads only the image header, so a folder can be checked before the model is loaded.
    """
    w, h = image_size(path)
    if (w, h) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(
            f"{path} is {w}x{h}, but an image with a landmark file must be an aligned "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} face (the official DSL-FIQA input): align and resize "
            f"it to {IMAGE_SIZE}x{IMAGE_SIZE} first, or pass --align to detect and align "
            "its faces (the landmark file is then ignored)"
        )
    lmk = landmark_path_for(path)
    if not lmk.is_file():
        raise DatasetError(
            f"no landmarks for {path}: expected {lmk} (float32 [68,2] (x, y) pixels; official "
            f"layout X/{IMG_DIR}/NAME.png + X/landmark/NAME.npy, or NAME.npy beside the image)"
        )
    return lmk


def read_prealigned(path: Path) -> AlignedInput:
    """An aligned 512x512 face and its landmark file (official layout, or ``NAME.npy`` beside)."""
    lmk = check_prealigned(path)
    image = read_image_rgb(path)
    if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):  # the header lied
        raise DatasetError(
            f"{path} decodes to {image.shape[1]}x{image.shape[0]}, not {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    return AlignedInput(image, read_landmarks(lmk))


def collect_images(target: Path) -> list[Path]:
    """The images ``fqm score`` scores: a file, or a folder's (or its ``img/``'s) images."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise DatasetError(f"{target} does not exist")
    folder = target / IMG_DIR if (target / IMG_DIR).is_dir() else target
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; expected photos, or aligned "
            f"512x512 faces with landmark files ({IMG_DIR}/NAME.png + landmark/NAME.npy)"
        )
    return images


@dataclass(frozen=True)
class ScoredFace:
    """The score of one face of one image (``face`` numbers faces of an aligner's output).

    ``source`` is ``"landmarks"`` for a pre-aligned image read with its landmark file, and
    ``"detected"`` for a face an aligner found; ``bbox`` (x1, y1, x2, y2, photo pixels) and
    ``detection_score`` come with the faces of aligners that report them, else None.
    """

    image: str
    face: int
    score: float
    mode: str
    crop_scores: tuple[float, ...] = field(repr=False)
    crops_top_left: tuple[tuple[int, int], ...] = field(repr=False)
    source: str = "landmarks"
    bbox: tuple[float, float, float, float] | None = None
    detection_score: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "face": self.face,
            "source": self.source,
            "bbox": None if self.bbox is None else list(self.bbox),
            "detection_score": self.detection_score,
            "score": self.score,
            "mode": self.mode,
            "crop_scores": list(self.crop_scores),
            "crops_top_left": [list(p) for p in self.crops_top_left],
        }


def _optional_bbox(face: object) -> tuple[float, float, float, float] | None:
    bbox = getattr(face, "bbox", None)
    if bbox is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return (x1, y1, x2, y2)


def _optional_float(face: object, name: str) -> float | None:
    value = getattr(face, name, None)
    return None if value is None else float(value)


def score_images(
    model: DslFiqa,
    paths: Iterable[Path],
    mode: CropMode = "official",
    aligner: FaceAligner | None = None,
    seed: int = OFFICIAL_SEED,
    on_face: Callable[[ScoredFace], None] | None = None,
    use_landmark_files: bool = False,
    on_no_face: Callable[[Path], None] | None = None,
    on_unreadable: Callable[[Path, str], None] | None = None,
) -> list[ScoredFace]:
    """Score every face of every image, in order.

    Args:
        model: a loaded :class:`DslFiqa`.
        paths: image files. Those not given to ``aligner`` must be aligned 512x512 faces with
            a landmark file (see :func:`read_prealigned`).
        mode: crop mode; ``official`` draws from one RNG (``seed``) continued across faces.
        aligner: turns each decoded photo into aligned faces (may return none).
        on_face: called after each face, e.g. for progress output.
        use_landmark_files: with an ``aligner``, images that have a landmark file still take
            the pre-aligned path; only the others go to the aligner. Without it, an aligner
            gets every image.
        on_no_face: called with each image the aligner found no face in.
        on_unreadable: called with each image that cannot be read (missing, not an image,
            a pre-aligned face of the wrong size or without landmarks) and the reason; the
            other images are still scored. Without it, the first such image raises
            :class:`DatasetError`.
    """
    rng = np.random.RandomState(seed)
    out: list[ScoredFace] = []
    for path in paths:
        try:
            if aligner is None or (use_landmark_files and landmark_path_for(path).is_file()):
                faces: Sequence[AlignedLike] = [read_prealigned(path)]
                source = "landmarks"
            else:
                faces = aligner(read_image_rgb(path))
                source = "detected"
        except DatasetError as exc:
            if on_unreadable is None:
                raise
            on_unreadable(path, str(exc))
            continue
        if not faces and on_no_face is not None:
            on_no_face(path)
        for i, face in enumerate(faces):
            r = model.score_face(face.image, face.landmarks, mode=mode, seed=rng)
            scored = ScoredFace(
                image=str(path),
                face=i,
                score=r.score,
                mode=mode,
                crop_scores=tuple(float(s) for s in r.crop_scores),
                crops_top_left=tuple((int(t), int(lft)) for t, lft in r.crops_top_left),
                source=source,
                bbox=_optional_bbox(face),
                detection_score=_optional_float(face, "detection_score"),
            )
            out.append(scored)
            if on_face is not None:
                on_face(scored)
    return out
