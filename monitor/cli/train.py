"""``fqm train``: train DSL-FIQA's quality network and degradation encoder.

Real training needs a GPU (``--device cuda``); ``--tiny`` trains a small model of the same
structure on a CPU in seconds, to check a dataset and the pipeline end to end. Progress goes
to stderr; the output folder holds official-format ``DE.pt``/``IQA.pt`` plus ``last.pt``
to resume from (a second run with the same ``--out`` continues where the first stopped).
See docs/training.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from monitor.cli.options import device_option


def _model_config(tiny: bool):
    from engines.dslfiqa.training import ModelConfig

    return ModelConfig.tiny() if tiny else ModelConfig.official()


@click.group("train")
def train_cli() -> None:
    """Train DSL-FIQA (quality network; degradation encoder)."""


@train_cli.command("quality")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Dataset folder with train/ (and optionally val/) in the official layout "
    "(img/, landmark/, label.json), or a single split folder.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--de",
    "de_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Frozen degradation encoder (DE.pt). Without it a random encoder is used "
    "(smoke tests only).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True)
@click.option("--weight-decay", type=float, default=1e-5, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option(
    "--flip",
    type=click.Choice(["official", "horizontal", "none"]),
    default="official",
    show_default=True,
    help="official = the original code's flip of the row axis (vertical), p=0.7.",
)
@click.option("--seed", type=int, default=20, show_default=True)
@click.option("--init", "init_iqa", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--vit-init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="timm vit_base_patch16_384 state_dict to start the ViT from (official: ImageNet).",
)
@click.option("--save-every", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--log-every", type=click.IntRange(min=0), default=10, show_default=True)
@device_option
@click.option("--tiny", is_flag=True, help="Tiny model (CPU smoke test), not the official one.")
@click.option("--resume/--no-resume", default=True, show_default=True)
def quality_cmd(
    data: Path,
    out: Path,
    de_path: Path | None,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    max_steps: int | None,
    flip: str,
    seed: int,
    init_iqa: Path | None,
    vit_init: Path | None,
    save_every: int,
    log_every: int,
    device: str,
    tiny: bool,
    resume: bool,
) -> None:
    """Train the quality network with the official recipe (DE frozen)."""
    from engines.dataset import FiqaDataset
    from engines.dslfiqa.training import QualityTrainConfig, QualityTrainer
    from engines.dslfiqa.training.data import find_split

    train_dir = find_split(data, "train")
    if train_dir is None:
        raise click.UsageError(f"{data} has neither train/label.json nor label.json")
    val_dir = find_split(data, "val")
    config = QualityTrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        max_steps=max_steps,
        flip=flip,  # type: ignore[arg-type]
        seed=seed,
        save_every=save_every,
        log_every=log_every,
        device=device,
    )
    if de_path is None:
        click.echo(
            "warning: no --de given, training against a random degradation encoder", err=True
        )
    try:
        trainer = QualityTrainer(
            _model_config(tiny),
            config,
            FiqaDataset.from_dir(train_dir),
            FiqaDataset.from_dir(val_dir) if val_dir is not None else None,
            out,
            de=de_path,
            init_iqa=init_iqa,
            vit_init=vit_init,
        )
        if resume:
            trainer.resume()
        history = trainer.fit()
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary = {
        "out": str(out),
        "step": trainer.step,
        "epochs": [{"epoch": r.epoch, "train_loss": r.train_loss, "val": r.val} for r in history],
    }
    click.echo(json.dumps(summary))


def _dataset_sets(data: Path, pristine_fraction: float, real_fraction: float, size: int):
    """Pristine faces (highest MOS) and real degraded singles (lowest MOS) of ``data``."""
    from engines.dataset import FiqaDataset
    from engines.dslfiqa.training.contrastive import LazyImages, RealClip, images_in
    from engines.dslfiqa.training.data import find_split

    split = find_split(data, "train")
    if split is None:  # a plain folder of good faces
        folder = data / "img" if (data / "img").is_dir() else data
        paths = images_in(folder)
        if not paths:
            raise click.UsageError(f"{folder} holds no images")
        return LazyImages(paths, size), []
    ds = FiqaDataset.from_dir(split)
    order = np.argsort(-ds.mos, kind="stable")
    n = len(order)
    top = order[: max(1, round(n * pristine_fraction))]
    bottom = order[n - round(n * real_fraction) :] if real_fraction > 0 else []
    pristine = LazyImages([ds[i].image_path for i in top], size)
    real = [RealClip(LazyImages([ds[i].image_path], size), name=ds[i].name) for i in bottom]
    return pristine, real


@train_cli.command("degradation")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Faces: an official-layout dataset (highest-MOS faces become the pristine set, "
    "lowest-MOS ones real degraded samples) or a folder of good-quality faces.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--real",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Really degraded media: a video (its frames share one degradation) or a folder of "
    "images. Repeatable.",
)
@click.option(
    "--pair",
    multiple=True,
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CLEAN DISTORTED: frame-aligned videos; distorted frames are real samples, the clean "
    "ones same-content negatives. Repeatable.",
)
@click.option("--pristine-fraction", type=click.FloatRange(0, 1), default=0.25, show_default=True)
@click.option("--real-fraction", type=click.FloatRange(0, 1), default=0.25, show_default=True)
@click.option("--max-frames", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--synthetic-per-batch", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--real-per-batch", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--queue-size", type=click.IntRange(min=0), default=2048, show_default=True)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    default=0.2,
    show_default=True,
    help="InfoNCE temperature (> 0; lower = sharper).",
)
@click.option(
    "--proximity-weight",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Weight of the soft proximity term (real -> synthetic soft targets); 0 disables it.",
)
@click.option(
    "--proximity-temperature",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Temperature of the soft proximity targets (lower = sharper).",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="EMA coefficient of a momentum key encoder (e.g. 0.999); 0 = no key encoder.",
)
@click.option(
    "--mask-false-negatives/--no-mask-false-negatives",
    default=True,
    show_default=True,
    help="Do not use keys of the same synthetic recipe or real clip as negatives.",
)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init", "init_de", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--save-every", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--log-every", type=click.IntRange(min=0), default=10, show_default=True)
@device_option
@click.option("--tiny", is_flag=True, help="Tiny encoder (CPU smoke test).")
@click.option("--resume/--no-resume", default=True, show_default=True)
def degradation_cmd(
    data: Path,
    out: Path,
    real: tuple[Path, ...],
    pair: tuple[tuple[Path, Path], ...],
    pristine_fraction: float,
    real_fraction: float,
    max_frames: int,
    steps: int,
    synthetic_per_batch: int,
    real_per_batch: int,
    queue_size: int,
    temperature: float,
    proximity_weight: float,
    proximity_temperature: float,
    momentum: float,
    mask_false_negatives: bool,
    lr: float,
    seed: int,
    init_de: Path | None,
    save_every: int,
    log_every: int,
    device: str,
    tiny: bool,
    resume: bool,
) -> None:
    """Pre-train the degradation encoder contrastively on synthetic + real degradations."""
    from engines.dslfiqa.training import ContrastiveTrainConfig, DegradationTrainer, DualSetSampler
    from engines.dslfiqa.training.contrastive import (
        VIDEO_SUFFIXES,
        LazyImages,
        RealClip,
        clip_from_video,
        images_in,
    )
    from engines.dslfiqa.training.dual_set import DualSetConfig

    model_config = _model_config(tiny)
    size = model_config.image_size
    try:
        pristine, clips = _dataset_sets(data, pristine_fraction, real_fraction, size)
        for path in real:
            if path.is_dir():
                clips += [RealClip(LazyImages([p], size), name=p.name) for p in images_in(path)]
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                clips.append(clip_from_video(path, size, max_frames=max_frames))
            else:
                clips.append(RealClip(LazyImages([path], size), name=path.name))
        for clean, distorted in pair:
            clips.append(clip_from_video(distorted, size, clean=clean, max_frames=max_frames))
        config = ContrastiveTrainConfig(
            steps=steps,
            synthetic_per_batch=synthetic_per_batch,
            real_per_batch=real_per_batch if clips else 0,
            temperature=temperature,
            queue_size=queue_size,
            lr=lr,
            seed=seed,
            save_every=save_every,
            log_every=log_every,
            device=device,
        )
        sampler = DualSetSampler(pristine, clips, size, model_config.crop_size, config)
        dual_set = DualSetConfig(
            proximity_weight=proximity_weight,
            proximity_temperature=proximity_temperature,
            momentum=momentum,
            mask_false_negatives=mask_false_negatives,
        )
        trainer = DegradationTrainer(
            model_config, config, sampler, out, init_de=init_de, dual_set=dual_set
        )
        if resume:
            trainer.resume()
        losses = trainer.fit()
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {"out": str(out), "step": trainer.step, "last_loss": losses[-1] if losses else None}
        )
    )


@train_cli.command("lite")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Weights folder to write (DE.pt, IQA.pt, model_config.json, train_log.json, "
    "test_metrics.json).",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of the aligned faces and the labelled data  [default: $FQM_CACHE/lite-data].",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
    help="Training time box (the data stages before it are cached in --work).",
)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option(
    "--per-face",
    type=click.IntRange(1, 9),
    default=6,
    show_default=True,
    help="Degraded variants per training face (distinct families).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
def lite_cmd(
    out: Path,
    work: Path | None,
    minutes: float,
    max_steps: int | None,
    per_face: int,
    seed: int,
    threads: int,
) -> None:
    """Train DSL-FIQA-Lite from the fetched media, CPU only (docs/model-card-lite.md).

    Four stages, the first three cached in --work: align the faces of the fetched clips and
    photos; degrade the training faces and label them (dlib recognisability + calibrated
    severity); build severity ladders of the held-out faces; train for --minutes, keeping
    the best validation, then report the held-out test metrics against a sharpness baseline.
    """
    import torch

    from engines.dslfiqa.lite import LiteConfig, load_lite
    from engines.dslfiqa.training.lite_data import (
        build_ladders,
        build_still_samples,
        build_train_samples,
    )
    from engines.dslfiqa.training.lite_train import LiteTrainConfig, evaluate_lite, train_lite
    from monitor.assets import asset_path, cache_dir
    from monitor.lite_faces import extract_faces

    torch.set_num_threads(threads)

    def log(message: str) -> None:
        click.echo(f"[fqm train lite] {message}", err=True)

    work = work if work is not None else cache_dir() / "lite-data"
    model_config = LiteConfig()
    faces = extract_faces(work / "faces", log=log)
    data = work / f"data-{model_config.image_size}-k{per_face}-s{seed}"
    build_train_samples(
        faces,
        data,
        asset_path("dlib_face_recognition_resnet_model_v1.dat"),
        image_size=model_config.image_size,
        per_face=per_face,
        seed=seed,
        log=log,
    )
    build_still_samples(
        faces,
        data,
        asset_path("dlib_face_recognition_resnet_model_v1.dat"),
        image_size=model_config.image_size,
        log=log,
    )
    for split in ("val", "test"):
        build_ladders(faces, data, split, image_size=model_config.image_size)
    config = LiteTrainConfig(
        minutes=minutes, max_steps=max_steps, seed=seed, threads=threads, model=model_config
    )
    history = train_lite(data, out, config, log=log)
    metrics = evaluate_lite(load_lite(out), data, "test")
    (out / "test_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (out / "calibration.json").write_text((data / "calibration.json").read_text())
    click.echo(
        json.dumps(
            {
                "out": str(out),
                "steps": history["steps_done"],
                "train_seconds": history["train_seconds"],
                "best_val": history.get("best"),
                "test": metrics["all"],
            }
        )
    )
