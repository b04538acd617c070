"""The official test protocol over a labelled split: scores in ``label.json`` order with the
official crop RNG, and their PLCC/SRCC against the MOS, as the official ``test.py`` reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engines.dataset import DatasetError, FiqaDataset, normalized_mos
from engines.dslfiqa.constants import IMAGE_SIZE, OFFICIAL_SEED, CropMode
from engines.metrics import plcc, srcc, why_undefined

if TYPE_CHECKING:
    from engines import DslFiqa


@dataclass(frozen=True)
class EvalResult:
    """Agreement of predictions with the MOS of a dataset (``fqm eval``).

    ``plcc``/``srcc`` are ``nan`` exactly when ``undefined`` says why (one image, a constant
    MOS, or constant predictions).
    """

    dataset: str
    mode: str
    images: int  # labelled images in the split
    scored: int  # images scored (after --limit)
    plcc: float
    srcc: float
    mse_norm_mos: float  # against the MOS min-max scaled over the whole split (training target)
    seconds: float
    predictions: tuple[tuple[str, float, float], ...] = field(repr=False)  # (name, mos, score)
    undefined: str | None = None

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {
            k: getattr(self, k) for k in ("dataset", "mode", "images", "scored")
        }
        for k in ("plcc", "srcc", "mse_norm_mos", "seconds"):
            v = getattr(self, k)
            d[k] = None if np.isnan(v) else v
        d["undefined"] = self.undefined
        d["predictions"] = [{"image": n, "mos": m, "score": s} for n, m, s in self.predictions]
        return d


def check_evaluable(dataset: FiqaDataset, limit: int | None = None) -> None:
    """Raise :class:`DatasetError` when the correlations would be undefined whatever the model
    says (fewer than 2 images, or one MOS for all), before any model is loaded."""
    subset = dataset.head(limit)
    reason = why_undefined(np.arange(len(subset)), subset.mos)
    if reason is not None:
        raise DatasetError(f"cannot evaluate {dataset.root}: {reason}")


def evaluate(
    model: DslFiqa,
    dataset: FiqaDataset,
    mode: CropMode = "official",
    limit: int | None = None,
    progress: Callable[[int, int, str, float], None] | None = None,
) -> EvalResult:
    """Score the first ``limit`` faces of ``dataset`` (official order and RNG) against MOS.

    ``progress(done, total, name, score)`` is called after each face.
    """
    subset = dataset.head(limit)
    norm = normalized_mos(dataset.mos)[: len(subset)]
    rng = np.random.RandomState(OFFICIAL_SEED)
    scores = np.empty(len(subset), dtype=np.float64)
    t0 = time.perf_counter()
    for i, sample in enumerate(subset):
        image, landmarks = subset.load(i)
        if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DatasetError(
                f"{sample.image_path} is {image.shape[1]}x{image.shape[0]}; the dataset must "
                f"hold aligned {IMAGE_SIZE}x{IMAGE_SIZE} faces"
            )
        scores[i] = model.score_face(image, landmarks, mode=mode, seed=rng).score
        if progress is not None:
            progress(i + 1, len(subset), sample.name, float(scores[i]))
    mos = subset.mos
    undefined = why_undefined(scores, mos)
    return EvalResult(
        dataset=str(dataset.root),
        mode=mode,
        images=len(dataset),
        scored=len(subset),
        plcc=float("nan") if undefined else plcc(scores, mos),
        srcc=float("nan") if undefined else srcc(scores, mos),
        mse_norm_mos=float(np.mean((scores - norm) ** 2)) if len(subset) else float("nan"),
        seconds=time.perf_counter() - t0,
        predictions=tuple((s.name, s.mos, float(p)) for s, p in zip(subset, scores, strict=True)),
        undefined=undefined,
    )
