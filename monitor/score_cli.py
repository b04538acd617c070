"""``fqm score`` and ``fqm eval``: DSL-FIQA on face images and on labelled datasets.

``fqm score`` takes any photo. An image with a landmark file stored as the official data
does (``X/img/NAME.png`` + ``X/landmark/NAME.npy``, or ``NAME.npy`` beside the image;
DSL_FIQA.md §2.1) is an aligned 512x512 face and is scored as is (the official path). Any
other image (or every image, with ``--align``) goes through a face aligner
(:class:`monitor.faces.aligner.PhotoAligner`: detector + mesh landmarks + alignment), and
every face it finds is scored; an image with no face is reported as such.

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
    from monitor.faces.detector import DetectorModel

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
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; expected photos, or aligned "
            f"512x512 faces with landmark files ({IMG_DIR}/NAME.png + landmark/NAME.npy)"
        )
    return images


# ---------------------------------------------------------------------------------- score


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
    """
    from engines.dataset import landmark_path_for, read_image_rgb

    rng = np.random.RandomState(seed)
    out: list[ScoredFace] = []
    for path in paths:
        if aligner is None or (use_landmark_files and landmark_path_for(path).is_file()):
            faces: Sequence[AlignedLike] = [read_prealigned(path)]
            source = "landmarks"
        else:
            faces = aligner(read_image_rgb(path))
            source = "detected"
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


SCORE_HELP = """Score the faces in photos with DSL-FIQA.

IMAGE_OR_DIR is an image or a folder of images (or an official split folder with img/).
An image with a landmark file (X/img/NAME.png -> X/landmark/NAME.npy, the official layout,
or NAME.npy beside the image) is an aligned 512x512 face and is scored as is. Any other
image (every image, with --align) is searched for faces: each face found is detected
(MediaPipe BlazeFace), given 68 landmarks (face mesh) and aligned to 512x512, then scored;
an image with no face gets a "no face" row. Higher scores mean better quality (about 0-1).

\b
--json prints one object:
  {"model": "dslfiqa", "weights": DIR, "mode": MODE, "device": DEVICE,
   "faces": [{"image": PATH, "face": I, "source": "landmarks" | "detected",
              "bbox": [x1, y1, x2, y2] | null, "detection_score": S | null,
              "score": Q, "mode": MODE, "crop_scores": [...],
              "crops_top_left": [[top, left], ...]}, ...],
   "no_face": [{"image": PATH, "message": TEXT}, ...]}

face numbers the faces of one image, best detection first; bbox is in the photo's pixels
and bbox/detection_score are null for images read with a landmark file.
"""


@click.command("score", help=SCORE_HELP)
@click.argument("target", metavar="IMAGE_OR_DIR", type=click.Path(path_type=Path))
@_weights_option
@_mode_option
@_device_option
@click.option(
    "--align",
    is_flag=True,
    help="Detect and align the faces of every image, even those with a landmark file.",
)
@click.option(
    "--max-faces",
    type=click.IntRange(min=1),
    default=None,
    help="Score at most N faces per image (the best detections) [default: all].",
)
@click.option(
    "--detector",
    type=click.Choice(("short", "full", "both")),
    default="both",
    show_default=True,
    help="Face detector: short (near faces), full (distant faces) or both.",
)
@_json_option
def score_cli(
    target: Path,
    weights: Path | None,
    mode: CropMode,
    device: str,
    align: bool,
    max_faces: int | None,
    detector: DetectorModel,
    as_json: bool,
) -> None:
    from contextlib import ExitStack

    from engines import CheckpointError
    from engines.dataset import DatasetError, landmark_path_for

    no_face: list[Path] = []
    try:
        paths = collect_images(target)
        # Fail on a bad pre-aligned input before the model (or the detector) is loaded.
        to_align = [p for p in paths if align or not landmark_path_for(p).is_file()]
        for path in paths:
            if path not in to_align:
                check_prealigned(path)
        model, folder = load_weights_dir(weights, device)
        with ExitStack() as stack:
            aligner = None
            if to_align:
                from monitor.faces.aligner import PhotoAligner

                aligner = stack.enter_context(PhotoAligner(detector, max_faces=max_faces))
            faces = score_images(
                model,
                paths,
                mode,
                aligner=aligner,
                use_landmark_files=not align,
                on_no_face=no_face.append,
            )
    except (CheckpointError, DatasetError) as exc:
        raise _fail(exc) from exc
    message = f"no face found (detector {detector})"
    if as_json:
        doc = {
            "model": "dslfiqa",
            "weights": str(folder),
            "mode": mode,
            "device": device,
            "faces": [f.to_json() for f in faces],
            "no_face": [{"image": str(p), "message": message} for p in no_face],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    by_image: dict[str, list[ScoredFace]] = {}
    for f in faces:
        by_image.setdefault(f.image, []).append(f)
    rows: list[tuple[str, str]] = []  # (image name, rest of the row), in input order
    for path in paths:
        if path in no_face:
            rows.append((path.name, f"{'-':>4} {message}"))
        for f in by_image.get(str(path), []):
            det = "-" if f.detection_score is None else f"{f.detection_score:.3f}"
            box = "-" if f.bbox is None else ",".join(f"{v:.0f}" for v in f.bbox)
            rest = f"{f.face:>4} {f.score:>8.4f} {len(f.crop_scores):>5} {det:>6}  {box}"
            rows.append((path.name, rest))
    width = max([len("image")] + [len(name) for name, _ in rows])
    click.echo(
        f"{'image':<{width}} {'face':>4} {'score':>8} {'crops':>5} {'det':>6}  bbox x1,y1,x2,y2"
        f"  (mode {mode})"
    )
    for name, rest in rows:
        click.echo(f"{name:<{width}} {rest}")


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
