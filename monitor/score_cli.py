"""``fqm score`` and ``fqm eval``: DSL-FIQA on face images and on labelled datasets.

``fqm score`` takes aligned 512x512 faces with their 68 landmarks stored as the official
data does (``X/img/NAME.png`` + ``X/landmark/NAME.npy``, or ``NAME.npy`` beside the image;
DSL_FIQA.md §2.1). A face aligner (detector + landmarks + alignment) can be passed to
:func:`score_images` instead; it turns any photo into aligned faces, and the CLI will use it
once monitor/ has one.

``fqm eval`` runs the official test protocol over a split folder (``img/``, ``landmark/``,
``label.json``) in ``label.json`` order and reports PLCC and SRCC against the MOS, as the
official ``test.py`` does.

In ``official`` mode the 20 crop positions of each face come from one numpy legacy RNG seeded
with 20 that continues from face to face, so positions depend on the order of the faces,
exactly as in the official scripts (``fqm score`` orders files by name).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import click
import numpy as np

# Torch-free (engines/__init__ loads its models lazily); the model code, and so torch (~3 s),
# is imported inside the functions that need it: `fqm --help` must not pay for it.
from engines.dslfiqa.constants import CROP_MODES, IMAGE_SIZE, OFFICIAL_SEED, CropMode

if TYPE_CHECKING:
    import torch

    from engines import DslFiqa
    from engines.dataset import FiqaDataset

WEIGHTS_ENV = "FQM_WEIGHTS"
CHECKPOINT_FILES: tuple[str, str] = ("DE.pt", "IQA.pt")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
WEIGHTS_HELP = (
    f"Folder holding the official DSL-FIQA checkpoints DE.pt and IQA.pt (default: ${WEIGHTS_ENV})."
)


# ------------------------------------------------------------------------------- weights


def resolve_weights_dir(weights: str | Path | None) -> Path:
    """``weights``, else ``$FQM_WEIGHTS``; raises :class:`CheckpointError` saying how to set it."""
    from engines import CheckpointError

    chosen = weights if weights is not None else os.environ.get(WEIGHTS_ENV, "").strip() or None
    if chosen is None:
        raise CheckpointError(
            "no DSL-FIQA weights given: pass --weights DIR (a folder holding the official "
            f"{' and '.join(CHECKPOINT_FILES)}) or set {WEIGHTS_ENV}=DIR"
        )
    path = Path(chosen)
    if not path.is_dir():
        source = "--weights" if weights is not None else WEIGHTS_ENV
        raise CheckpointError(
            f"{source}={path} is not a folder; it must hold the official "
            f"{' and '.join(CHECKPOINT_FILES)}"
        )
    return path


def read_checkpoint(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Read one checkpoint file; any failure becomes a :class:`CheckpointError` naming it."""
    from engines import CheckpointError
    from engines.dslfiqa.checkpoint import read_state_dict

    if not path.is_file():
        raise CheckpointError(
            f"{path} does not exist: the weights folder must hold the official {what}.pt "
            f"(both {' and '.join(CHECKPOINT_FILES)}, as released with DSL-FIQA)"
        )
    try:
        return read_state_dict(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except Exception as exc:  # torch.load: truncated zip, pickle garbage, foreign globals
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); it may be truncated or "
            f"not a torch.save file: download the official {what}.pt again"
        ) from exc


def check_device(device: str) -> torch.device:
    """``cpu`` or ``cuda``; a CUDA request on a machine without one is a clear error."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise click.UsageError(
            "--device cuda: no CUDA device is visible to torch; use --device cpu"
        )
    return torch.device(device)


def load_weights_dir(weights: str | Path | None, device: str = "cpu") -> tuple[DslFiqa, Path]:
    """Load DSL-FIQA from a folder with DE.pt and IQA.pt (``$FQM_WEIGHTS`` when None)."""
    from engines import CheckpointError, load_dslfiqa

    folder = resolve_weights_dir(weights)
    de = read_checkpoint(folder / CHECKPOINT_FILES[0], "DE")
    iqa = read_checkpoint(folder / CHECKPOINT_FILES[1], "IQA")
    try:
        return load_dslfiqa(de, iqa, check_device(device)), folder
    except CheckpointError as exc:
        raise CheckpointError(f"weights in {folder}: {exc}") from exc


# ---------------------------------------------------------------------------- face input


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
    from engines.dataset import IMG_DIR, DatasetError, image_size, landmark_path_for

    w, h = image_size(path)
    if (w, h) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(
            f"{path} is {w}x{h}, but fqm score takes aligned {IMAGE_SIZE}x{IMAGE_SIZE} faces "
            "(the official DSL-FIQA input) until a face aligner is plugged in: align and "
            f"resize it to {IMAGE_SIZE}x{IMAGE_SIZE} first"
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
    from engines.dataset import DatasetError, read_image_rgb, read_landmarks

    lmk = check_prealigned(path)
    image = read_image_rgb(path)
    if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):  # the header lied
        raise DatasetError(
            f"{path} decodes to {image.shape[1]}x{image.shape[0]}, not {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    return AlignedInput(image, read_landmarks(lmk))


def collect_images(target: Path) -> list[Path]:
    """The images ``fqm score`` scores: a file, or a folder's (or its ``img/``'s) images."""
    from engines.dataset import IMAGE_SUFFIXES, IMG_DIR, DatasetError

    if target.is_file():
        return [target]
    if not target.is_dir():
        raise DatasetError(f"{target} does not exist")
    folder = target / IMG_DIR if (target / IMG_DIR).is_dir() else target
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; expected aligned 512x512 "
            f"faces with landmark files ({IMG_DIR}/NAME.png + landmark/NAME.npy)"
        )
    return images


# ---------------------------------------------------------------------------------- score


@dataclass(frozen=True)
class ScoredFace:
    """The score of one face of one image (``face`` numbers faces of an aligner's output)."""

    image: str
    face: int
    score: float
    mode: str
    crop_scores: tuple[float, ...] = field(repr=False)
    crops_top_left: tuple[tuple[int, int], ...] = field(repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "face": self.face,
            "score": self.score,
            "mode": self.mode,
            "crop_scores": list(self.crop_scores),
            "crops_top_left": [list(p) for p in self.crops_top_left],
        }


def score_images(
    model: DslFiqa,
    paths: Iterable[Path],
    mode: CropMode = "official",
    aligner: FaceAligner | None = None,
    seed: int = OFFICIAL_SEED,
    on_face: Callable[[ScoredFace], None] | None = None,
) -> list[ScoredFace]:
    """Score every face of every image, in order.

    Args:
        model: a loaded :class:`DslFiqa`.
        paths: image files. Without ``aligner`` each must be an aligned 512x512 face with a
            landmark file (see :func:`read_prealigned`).
        mode: crop mode; ``official`` draws from one RNG (``seed``) continued across faces.
        aligner: turns each decoded photo into aligned faces (may return none).
        on_face: called after each face, e.g. for progress output.
    """
    from engines.dataset import read_image_rgb

    rng = np.random.RandomState(seed)
    out: list[ScoredFace] = []
    for path in paths:
        if aligner is None:
            faces: Sequence[AlignedLike] = [read_prealigned(path)]
        else:
            faces = aligner(read_image_rgb(path))
        for i, face in enumerate(faces):
            r = model.score_face(face.image, face.landmarks, mode=mode, seed=rng)
            scored = ScoredFace(
                image=str(path),
                face=i,
                score=r.score,
                mode=mode,
                crop_scores=tuple(float(s) for s in r.crop_scores),
                crops_top_left=tuple((int(t), int(lft)) for t, lft in r.crops_top_left),
            )
            out.append(scored)
            if on_face is not None:
                on_face(scored)
    return out


# ----------------------------------------------------------------------------------- eval


@dataclass(frozen=True)
class EvalResult:
    """Agreement of predictions with the MOS of a dataset (``fqm eval``)."""

    dataset: str
    mode: str
    images: int  # labelled images in the split
    scored: int  # images scored (after --limit)
    plcc: float
    srcc: float
    mse_norm_mos: float  # against the MOS min-max scaled over the whole split (training target)
    seconds: float
    predictions: tuple[tuple[str, float, float], ...] = field(repr=False)  # (name, mos, score)

    def to_json(self) -> dict[str, object]:
        d = {k: getattr(self, k) for k in ("dataset", "mode", "images", "scored")}
        for k in ("plcc", "srcc", "mse_norm_mos", "seconds"):
            v = getattr(self, k)
            d[k] = None if np.isnan(v) else v
        d["predictions"] = [{"image": n, "mos": m, "score": s} for n, m, s in self.predictions]
        return d


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
    from engines.dataset import DatasetError, normalized_mos
    from engines.metrics import plcc, srcc

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
    enough = len(subset) >= 2
    return EvalResult(
        dataset=str(dataset.root),
        mode=mode,
        images=len(dataset),
        scored=len(subset),
        plcc=plcc(scores, mos) if enough else float("nan"),
        srcc=srcc(scores, mos) if enough else float("nan"),
        mse_norm_mos=float(np.mean((scores - norm) ** 2)),
        seconds=time.perf_counter() - t0,
        predictions=tuple((s.name, s.mos, float(p)) for s, p in zip(subset, scores, strict=True)),
    )


# ------------------------------------------------------------------------------------ CLI

_mode_option = click.option(
    "--mode",
    type=click.Choice(CROP_MODES),
    default="official",
    show_default=True,
    help="Crops per face: official (20 random, the paper's protocol), fixed5 (corners + "
    "centre) or center (1 crop, 20x cheaper). See docs/quality-modes.md.",
)
_weights_option = click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help=WEIGHTS_HELP,
)
_device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="cpu", show_default=True
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command("score")
@click.argument("target", metavar="IMAGE_OR_DIR", type=click.Path(path_type=Path))
@_weights_option
@_mode_option
@_device_option
@_json_option
def score_cli(
    target: Path, weights: Path | None, mode: CropMode, device: str, as_json: bool
) -> None:
    """Score aligned 512x512 face images with DSL-FIQA.

    IMAGE_OR_DIR is an image or a folder of images (or an official split folder with img/).
    Each image needs its 68 landmarks: X/img/NAME.png -> X/landmark/NAME.npy (the official
    layout), or NAME.npy beside the image. Higher scores mean better quality (about 0-1).
    """
    from engines import CheckpointError
    from engines.dataset import DatasetError

    try:
        paths = collect_images(target)
        for path in paths:  # fail on a bad input before the model is loaded
            check_prealigned(path)
        model, folder = load_weights_dir(weights, device)
        faces = score_images(model, paths, mode)
    except (CheckpointError, DatasetError) as exc:
        raise _fail(exc) from exc
    if as_json:
        doc = {
            "model": "dslfiqa",
            "weights": str(folder),
            "mode": mode,
            "device": device,
            "faces": [f.to_json() for f in faces],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    width = max(len("image"), *(len(Path(f.image).name) for f in faces))
    click.echo(f"{'image':<{width}} {'face':>4} {'score':>8} {'crops':>5}  (mode {mode})")
    for f in faces:
        click.echo(
            f"{Path(f.image).name:<{width}} {f.face:>4} {f.score:>8.4f} {len(f.crop_scores):>5}"
        )


@click.command("eval")
@click.argument("dataset", type=click.Path(path_type=Path))
@_weights_option
@_mode_option
@_device_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Score only the first N images."
)
@_json_option
def eval_cli(
    dataset: Path,
    weights: Path | None,
    mode: CropMode,
    device: str,
    limit: int | None,
    as_json: bool,
) -> None:
    """Evaluate DSL-FIQA on a labelled split: PLCC and SRCC against the MOS.

    DATASET is a split folder in the official layout: img/NAME.png (aligned 512x512),
    landmark/NAME.npy ([68,2] x, y) and label.json ({"Image": [...], "MOS": [...]}).
    Faces are scored in label.json order with the official crop RNG, as the official
    test.py does. Progress goes to stderr.
    """
    from engines import CheckpointError
    from engines.dataset import DatasetError, FiqaDataset

    t0 = time.perf_counter()

    def progress(done: int, total: int, name: str, score: float) -> None:
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done)
        click.echo(
            f"[{done}/{total}] {name} {score:.4f}  ({elapsed:.0f}s elapsed, ~{eta:.0f}s left)",
            err=True,
        )

    try:
        ds = FiqaDataset.from_dir(dataset)
        model, _ = load_weights_dir(weights, device)
        click.echo(
            f"scoring {min(limit or len(ds), len(ds))} of {len(ds)} images, mode {mode}", err=True
        )
        result = evaluate(model, ds, mode, limit, progress)
    except (CheckpointError, DatasetError) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(f"{'dataset':<10} {result.dataset}")
    click.echo(f"{'mode':<10} {result.mode}")
    click.echo(f"{'images':<10} {result.scored} scored of {result.images}")
    click.echo(f"{'PLCC':<10} {result.plcc:.4f}")
    click.echo(f"{'SRCC':<10} {result.srcc:.4f}")
    click.echo(f"{'MSE':<10} {result.mse_norm_mos:.5f} (against min-max normalised MOS)")
    click.echo(f"{'time':<10} {result.seconds:.1f} s")
