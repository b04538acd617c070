"""``fqm score`` and ``fqm eval``: DSL-FIQA on face images and on labelled datasets.

The work is done by :mod:`monitor.photos` (faces of photos) and :mod:`engines.evaluate`
(the official test protocol); these commands check their inputs before loading a model,
then print a table or JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from engines.dslfiqa.constants import CropMode
from monitor.cli.errors import FqmError
from monitor.cli.options import WEIGHTS_ENV, device_option, json_option, mode_option, weights_option

WEIGHTS_HELP = (
    f"Folder holding the DSL-FIQA checkpoints DE.pt and IQA.pt [env: {WEIGHTS_ENV}; "
    "default: the shipped dslfiqa-lite weights]."
)
EVAL_WEIGHTS_HELP = (
    f"Folder holding the DSL-FIQA checkpoints DE.pt and IQA.pt [env: {WEIGHTS_ENV}]."
)

SCORE_HELP = """Score the faces in photos with DSL-FIQA.

IMAGE_OR_DIR is an image or a folder of images (or an official split folder with img/).
An image with a landmark file (X/img/NAME.png -> X/landmark/NAME.npy, the official layout,
or NAME.npy beside the image) is an aligned 512x512 face and is scored as is. Any other
image (every image, with --align) is searched for faces: each face found is detected
(MediaPipe BlazeFace), given 68 landmarks (face mesh) and aligned to 512x512, then scored;
an image with no face gets a "no face" row, an image that cannot be read an "unreadable"
row (and the exit status is then 1). Higher scores mean better quality (about 0-1).

\b
--json prints one object:
  {"model": VARIANT, "weights": DIR, "mode": MODE, "device": DEVICE,
   "faces": [{"image": PATH, "face": I, "source": "landmarks" | "detected",
              "bbox": [x1, y1, x2, y2] | null, "detection_score": S | null,
              "score": Q, "mode": MODE, "crop_scores": [...],
              "crops_top_left": [[top, left], ...]}, ...],
   "no_face": [{"image": PATH, "message": TEXT}, ...],
   "unreadable": [{"image": PATH, "message": TEXT}, ...]}

face numbers the faces of one image, best detection first; bbox is in the photo's pixels
and bbox/detection_score are null for images read with a landmark file.
"""


@click.command("score", help=SCORE_HELP)
@click.argument("target", metavar="IMAGE_OR_DIR", type=click.Path(path_type=Path))
@weights_option(WEIGHTS_HELP)
@mode_option
@device_option
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
@click.option(
    "--align-rule",
    type=click.Choice(("eyes", "official")),
    default="eyes",
    show_default=True,
    help="Alignment: eye centres level in a padded box, or the official custom-image "
    "script's rule (points 38/47 level, box clipped), for parity with it (docs/faces).",
)
@json_option
def score_cli(
    target: Path,
    weights: Path | None,
    mode: CropMode,
    device: str,
    align: bool,
    max_faces: int | None,
    detector: str,
    align_rule: str,
    as_json: bool,
) -> None:
    from contextlib import ExitStack

    from engines.dataset import DatasetError, landmark_path_for
    from engines.weights import default_weights_dir, load_weights_dir
    from monitor.photos import check_prealigned, collect_images, score_images

    paths = collect_images(target)
    to_align = [p for p in paths if align or not landmark_path_for(p).is_file()]
    # Pre-aligned inputs are checked from their headers before the model loads; a bad one
    # becomes an "unreadable" row instead of costing the whole batch.
    unreadable: dict[Path, str] = {}
    for path in paths:
        if path not in to_align:
            try:
                check_prealigned(path)
            except DatasetError as exc:
                unreadable[path] = str(exc)
    readable = [p for p in paths if p not in unreadable]
    no_face: list[Path] = []
    faces = []
    if weights is None:
        weights = default_weights_dir()  # $FQM_WEIGHTS, else the shipped dslfiqa-lite
    loaded = load_weights_dir(weights, device) if readable else None
    if loaded is not None:
        with ExitStack() as stack:
            aligner = None
            if to_align:
                from monitor.faces.aligner import PhotoAligner

                aligner = stack.enter_context(
                    PhotoAligner(detector, max_faces=max_faces, rule=align_rule)  # type: ignore[arg-type]
                )
            faces = score_images(
                loaded.model,
                readable,
                mode,
                aligner=aligner,
                use_landmark_files=not align,
                on_no_face=no_face.append,
                on_unreadable=unreadable.__setitem__,
            )
    message = f"no face found (detector {detector})"
    if as_json:
        doc = {
            "model": None if loaded is None else loaded.variant.name,
            "weights": None if loaded is None else str(loaded.folder),
            "mode": mode,
            "device": device,
            "faces": [f.to_json() for f in faces],
            "no_face": [{"image": str(p), "message": message} for p in no_face],
            "unreadable": [{"image": str(p), "message": m} for p, m in unreadable.items()],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        by_image: dict[str, list] = {}
        for f in faces:
            by_image.setdefault(f.image, []).append(f)
        rows: list[tuple[str, str]] = []  # (image name, rest of the row), in input order
        for path in paths:
            if path in unreadable:
                rows.append((path.name, f"{'-':>4} unreadable: {unreadable[path]}"))
            if path in no_face:
                rows.append((path.name, f"{'-':>4} {message}"))
            for f in by_image.get(str(path), []):
                det = "-" if f.detection_score is None else f"{f.detection_score:.3f}"
                box = "-" if f.bbox is None else ",".join(f"{v:.0f}" for v in f.bbox)
                rest = f"{f.face:>4} {f.score:>8.4f} {len(f.crop_scores):>5} {det:>6}  {box}"
                rows.append((path.name, rest))
        width = max([len("image")] + [len(name) for name, _ in rows])
        click.echo(
            f"{'image':<{width}} {'face':>4} {'score':>8} {'crops':>5} {'det':>6}  "
            f"bbox x1,y1,x2,y2  (mode {mode})"
        )
        for name, rest in rows:
            click.echo(f"{name:<{width}} {rest}")
    if unreadable:
        first = next(iter(unreadable.values()))
        more = f" (and {len(unreadable) - 1} more, see above)" if len(unreadable) > 1 else ""
        raise FqmError(f"{len(unreadable)} of {len(paths)} image(s) unreadable: {first}{more}")


@click.command("eval")
@click.argument("dataset", type=click.Path(path_type=Path))
@weights_option(EVAL_WEIGHTS_HELP)
@mode_option
@device_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Score only the first N images."
)
@json_option
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
    test.py does. Progress goes to stderr. The exit status is 1 when the correlations are
    undefined (the output says why).
    """
    from engines.dataset import FiqaDataset
    from engines.evaluate import check_evaluable, evaluate
    from engines.weights import load_weights_dir

    t0 = time.perf_counter()

    def progress(done: int, total: int, name: str, score: float) -> None:
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done)
        click.echo(
            f"[{done}/{total}] {name} {score:.4f}  ({elapsed:.0f}s elapsed, ~{eta:.0f}s left)",
            err=True,
        )

    ds = FiqaDataset.from_dir(dataset)
    check_evaluable(ds, limit)
    loaded = load_weights_dir(weights, device)
    click.echo(
        f"scoring {min(limit or len(ds), len(ds))} of {len(ds)} images, mode {mode}", err=True
    )
    result = evaluate(loaded.model, ds, mode, limit, progress)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(f"{'dataset':<10} {result.dataset}")
        click.echo(f"{'mode':<10} {result.mode}")
        click.echo(f"{'images':<10} {result.scored} scored of {result.images}")
        for name, value in (("PLCC", result.plcc), ("SRCC", result.srcc)):
            click.echo(f"{name:<10} {'n/a' if result.undefined else f'{value:.4f}'}")
        click.echo(f"{'MSE':<10} {result.mse_norm_mos:.5f} (against min-max normalised MOS)")
        click.echo(f"{'time':<10} {result.seconds:.1f} s")
    if result.undefined:
        raise FqmError(f"PLCC and SRCC are undefined: {result.undefined}")
