"""DSL-FIQA speed and crop-mode agreement (``fqm bench quality`` and ``fqm bench modes``).

``quality`` times the torch engine (crops from several faces batched together, as the
scoring scheduler will) against the official procedure reproduced naively in the same run:
batch 1, one crop at a time (degradation encoder then quality network, ``no_grad``), the 20
random crops per face of the official ``test.py``. Both include crop preparation.

``modes`` measures how far the cheap crop modes (``fixed5``, ``center``) land from
``official`` over a set of faces: Spearman rank correlation, Pearson correlation and mean
absolute difference of the per-face scores.

Without ``--weights`` both use a seeded random model of the official shape (engines'
benchmark weights). Speed does not depend on weight values; mode agreement does, so
``modes`` with those weights measures how sensitive an untrained network is to crop
position, not how the real model's modes agree (see docs/quality-modes.md).

The faces are real: the best face of each bundled still, then frames spread evenly over the
bundled videos, each detected, landmarked and aligned by
:class:`monitor.faces.aligner.PhotoAligner` as the official alignment places a face.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from engines import flops as _flops
from engines.dslfiqa.constants import NUM_CROPS_OFFICIAL, OFFICIAL_SEED, CropMode
from pipelines.av_source import AvFileSource

# The model code and torch are imported where used, so that `fqm --help` stays fast.
if TYPE_CHECKING:
    import torch

    from engines import DslFiqa
    from engines.quality_engine import QualityEngine
    from monitor.faces.aligner import PhotoAligner

STILLS: tuple[str, ...] = (
    "grace_hopper_512x512.jpg",
    "astronaut.png",
    "Tom_Hanks_54745.png",
    "t1.jpg",
)
#: Videos whose frames, spread evenly over each, give the faces after the stills.
VIDEOS: tuple[str, ...] = (
    "franck.mp4",
    "carphone_pristine.mp4",
    "carphone_distorted.mp4",
    "Megamind.avi",
)
RANDOM_WEIGHTS_SEED = 0


class NotEnoughFaces(ValueError):
    """The bundled stills and videos hold fewer detectable faces than were asked for."""


@dataclass(frozen=True)
class BenchFace:
    label: str  # asset name, with ``#frame`` for a video frame
    image: np.ndarray  # uint8 [512,512,3], aligned as the official alignment does
    landmarks: np.ndarray  # float32 [68,2]


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return stream.frames
        return sum(1 for _ in container.decode(stream))


def _video_faces(aligner: PhotoAligner, path: Path, label: str, k: int) -> list[BenchFace]:
    """Up to ``k`` faces from frames spread evenly over the video.

    The video is cut into ``k`` equal segments; in each, frames from its middle to its end
    are tried in turn and the first one the aligner finds a face in gives the segment's face
    (none if no frame of that half-segment has one).
    """
    total = _frame_count(path)
    bounds = [(j * total // k, (j + 1) * total // k) for j in range(k)]
    targets = [((a + b) // 2, b) for a, b in bounds if b > a]
    faces: list[BenchFace] = []
    with AvFileSource(path) as source:
        for frame in source:
            while targets and frame.index >= targets[0][1]:
                targets.pop(0)  # segment ended without a face
            if not targets:
                break
            if frame.index < targets[0][0]:
                continue
            found = aligner(np.array(frame.image))
            if found:
                faces.append(
                    BenchFace(f"{label}#{frame.index}", found[0].image, found[0].landmarks)
                )
                targets.pop(0)
    return faces


def sample_aligned_faces(n: int) -> list[BenchFace]:
    """``n`` aligned faces: the best face of each still, then evenly spread video frames.

    Faces come from :class:`PhotoAligner` (detector, mesh landmarks, official alignment),
    one per picture (the highest detection score). The video frames are shared out in turn
    between the videos; a video that yields fewer faces than its share (frames without a
    detectable face, as in most of carphone_distorted.mp4) leaves the rest to the others.
    """
    from engines.dataset import read_image_rgb
    from monitor.assets import asset_path
    from monitor.faces.aligner import PhotoAligner

    with PhotoAligner(max_faces=1) as aligner:
        faces: list[BenchFace] = []
        for name in STILLS:
            if len(faces) >= n:
                break
            found = aligner(read_image_rgb(asset_path(name)))
            if found:
                faces.append(BenchFace(name, found[0].image, found[0].landmarks))
        need = n - len(faces)
        quota = {name: 0 for name in VIDEOS}
        got: dict[str, list[BenchFace]] = {name: [] for name in VIDEOS}
        open_videos = list(VIDEOS)  # those that filled every share so far
        while need > sum(len(v) for v in got.values()) and open_videos:
            short = need - sum(len(v) for v in got.values())
            for i, name in enumerate(open_videos):
                quota[name] += short // len(open_videos) + (i < short % len(open_videos))
            for name in list(open_videos):
                if len(got[name]) < quota[name]:
                    got[name] = _video_faces(aligner, asset_path(name), name, quota[name])
                    if len(got[name]) < quota[name]:
                        open_videos.remove(name)
    rounds = max((len(v) for v in got.values()), default=0)
    faces += [got[name][j] for j in range(rounds) for name in VIDEOS if j < len(got[name])]
    if len(faces) < n:
        raise NotEnoughFaces(f"only {len(faces)} bench faces are available; ask for fewer")
    return faces[:n]


def save_bench_faces(path: str | Path, n: int = 4) -> Path:
    """Write ``n`` bench faces to an npz (``images`` uint8 [n,512,512,3], ``landmarks``
    float32 [n,68,2], ``labels``): the real faces ``python -m engines.gpu_check
    --faces-npz`` checks parity on (engines cannot read monitor's assets)."""
    faces = sample_aligned_faces(n)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        images=np.stack([f.image for f in faces]),
        landmarks=np.stack([f.landmarks for f in faces]).astype(np.float32),
        labels=np.array([f.label for f in faces]),
    )
    return out


def load_bench_model(
    weights: Path | None, device: str, variant: str = "dslfiqa"
) -> tuple[DslFiqa, str]:
    """The model to time and a label saying which weights it runs: ``--weights`` if given,
    else engines' seeded random model of ``variant``'s shape (speed does not depend on the
    values; scores are meaningless)."""
    from engines.dslfiqa.random_weights import build_random
    from engines.weights import check_device, load_weights_dir

    if weights is not None:
        loaded = load_weights_dir(weights, device)
        return loaded.model, f"{loaded.variant.name} from {loaded.folder}"
    model = build_random(variant, seed=RANDOM_WEIGHTS_SEED, device=check_device(device))
    shape = "official-shaped" if variant == "dslfiqa" else f"{variant}-shaped"
    return model, (
        f"random {shape} weights (seed {RANDOM_WEIGHTS_SEED}; no --weights given: "
        "speed is real, scores are meaningless)"
    )


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer measures it (a no-op on CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ bench quality


@dataclass(frozen=True)
class SpeedResult:
    """One timed run: ``faces`` faces, ``crops`` crops in ``seconds`` (prep + forward)."""

    procedure: str  # "engine" or "official-naive"
    mode: str
    batch: int
    faces: int
    crops: int
    seconds: float

    @property
    def crops_per_s(self) -> float:
        return self.crops / self.seconds

    @property
    def ms_per_face(self) -> float:
        return 1000 * self.seconds / self.faces

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "crops_per_s": self.crops_per_s, "ms_per_face": self.ms_per_face}


def time_engine(
    model: DslFiqa, faces: Sequence[BenchFace], mode: CropMode, batch: int
) -> SpeedResult:
    """Score ``faces`` in ``mode``, crops of all faces batched ``batch`` at a time."""
    import torch

    from engines.dslfiqa.preprocess import (
        crop_images,
        crop_offsets,
        landmark_vectors,
        normalize_image,
    )

    rng = np.random.RandomState(OFFICIAL_SEED)
    _sync(model.device)
    t0 = time.perf_counter()
    crops, vectors, owner = [], [], []
    for i, face in enumerate(faces):
        offsets = crop_offsets(mode, rng)
        crops.append(crop_images(normalize_image(face.image), offsets))
        vectors.append(landmark_vectors(face.landmarks, offsets))
        owner.extend([i] * len(offsets))
    x, lm = np.concatenate(crops), np.concatenate(vectors)
    scores = torch.cat(
        [model.score_crops(x[j : j + batch], lm[j : j + batch]) for j in range(0, len(x), batch)]
    ).numpy()
    per_face = np.bincount(owner, weights=scores) / np.bincount(owner)
    seconds = time.perf_counter() - t0
    assert per_face.shape == (len(faces),)
    return SpeedResult("engine", mode, batch, len(faces), len(x), seconds)


def time_official_naive(model: DslFiqa, faces: Sequence[BenchFace]) -> SpeedResult:
    """The official test.py loop: 20 random crops per face, each run alone (batch 1).

    A smaller variant (``dslfiqa-tiny``) gets its own face and crop sizes (the face resized
    as scoring does); the official model runs exactly the official sizes.
    """
    import torch

    from engines.dslfiqa.preprocess import crop_images, landmark_vectors, resize_face
    from engines.dslfiqa.variants import variant_for_config

    variant = variant_for_config(model.config)
    size, crop = variant.image_size, variant.crop_size
    np.random.seed(OFFICIAL_SEED)  # official setup_seed(20): the global legacy RNG
    device = model.device
    _sync(device)
    t0 = time.perf_counter()
    crops = 0
    scores = []
    for face in faces:
        image, points68 = resize_face(face.image, face.landmarks, size)
        img = np.transpose(image.astype(np.float32) / 255, (2, 0, 1))
        offsets = np.array(
            [
                (np.random.randint(0, size - crop), np.random.randint(0, size - crop))
                for _ in range(NUM_CROPS_OFFICIAL)
            ]
        )
        patches = crop_images((img - 0.5) / 0.5, offsets, crop)
        points = landmark_vectors(points68, offsets, crop)
        avg = torch.zeros(1, device=device)
        for k in range(NUM_CROPS_OFFICIAL):
            with torch.no_grad():
                patch = torch.from_numpy(patches[k]).to(device).unsqueeze(0)
                lmk = torch.from_numpy(points[k]).to(device).unsqueeze(0)
                style, _ = model.de(patch)
                avg += model.iqa(patch, style, lmk)
            crops += 1
        scores.append(float((avg / NUM_CROPS_OFFICIAL).item()))
    _sync(device)
    return SpeedResult("official-naive", "official", 1, len(faces), crops, time.perf_counter() - t0)


# ------------------------------------------------------------------ bench quality --backend

QUALITY_BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt", "auto")
# The FLOP arithmetic (GFLOP per crop of the official model, the cards' peaks) lives in
# engines.flops, shared with python -m engines.gpu_check; re-exported here.
OFFICIAL_GFLOP_PER_CROP = _flops.OFFICIAL_GFLOP_PER_CROP
PEAK_TFLOPS = _flops.PEAK_TFLOPS
peak_tflops = _flops.peak_tflops


def gflop_per_crop(model: DslFiqa) -> tuple[float, str]:
    """GFLOP of one crop forward and where the number comes from."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from engines.dslfiqa.variants import variant_for_config
    from engines.export import example_inputs

    if variant_for_config(model.config).name == "dslfiqa":
        return OFFICIAL_GFLOP_PER_CROP, "DSL_FIQA.md 8 (official model, 384 crop)"
    crops, landmarks = example_inputs(model, 1)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(crops, landmarks)
    return counter.get_total_flops() / 1e9, "torch FlopCounterMode (matmul/conv/attention)"


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, MB (``resource``; psutil has no peak)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


@dataclass
class OpenedEngine:
    """An engine to time and how it was chosen."""

    engine: QualityEngine
    selection: str
    temp_dir: str | None = None

    def close(self) -> None:
        import shutil

        self.engine.close()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _ort_providers(device: str) -> tuple[str, ...]:
    from engines.backends import ORT_CPU, ORT_CUDA

    return (ORT_CPU,) if device == "cpu" else (ORT_CUDA, ORT_CPU)


@dataclass(frozen=True)
class TorchOptions:
    """Engine settings for ``fqm bench quality``: torch on CUDA (refused on a CPU, with
    the reason), and ``threads`` for ONNX Runtime.

    ``batches`` sizes the engine: ``max_batch`` is the largest timed batch (so a forward
    of ``--batch`` crops is one forward), and with ``cuda_graphs`` exactly those sizes are
    captured.
    """

    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    pinned_memory: bool = True
    batches: tuple[int, ...] = ()
    #: ONNX Runtime's intra_op_threads (torch's threads are the process's); None = its own.
    threads: int | None = None

    @property
    def max_batch(self) -> int:
        from engines.backends import DEFAULT_MAX_BATCH

        return max(self.batches, default=DEFAULT_MAX_BATCH)


def _open_named(
    model: DslFiqa,
    backend: str,
    precision: str,
    device: str,
    mode: str,
    options: TorchOptions = TorchOptions(),
) -> OpenedEngine:
    """Open ``backend`` at ``precision`` through ``engines.backends.open_engine``.

    torch gets ``options``; tensorrt a profile up to the largest batch (at least its
    default 32); onnxruntime a graph exported at that precision (fp32 or fp16) into a
    temporary folder. Raises the engines' ``BackendUnavailableError`` /
    ``BackendConfigError``.
    """
    import tempfile

    from engines.backends import (
        BackendConfigError,
        OnnxRuntimeConfig,
        TensorRTConfig,
        TorchConfig,
        open_engine,
    )

    if backend == "torch":
        config = TorchConfig(
            device=device,
            precision=precision,  # type: ignore[arg-type]
            channels_last=options.channels_last,
            compile=options.compile,
            cuda_graphs=options.cuda_graphs,
            graph_batch_sizes=options.batches if options.cuda_graphs else (),
            pinned_memory=options.pinned_memory,
            max_batch=options.max_batch,
        )
        engine = open_engine(model, "torch", mode=mode, config=config)
        return OpenedEngine(engine, engine.selection)
    if backend == "tensorrt":
        config_trt = TensorRTConfig(
            precision=precision,  # type: ignore[arg-type]
            max_batch=max(TensorRTConfig().max_batch, options.max_batch),
        )
        engine = open_engine(model, "tensorrt", mode=mode, config=config_trt)
        return OpenedEngine(engine, engine.selection)
    if backend != "onnxruntime":
        raise BackendConfigError(f"unknown backend {backend!r}")
    from engines.export import EXPORT_PRECISIONS

    if precision not in EXPORT_PRECISIONS:
        raise BackendConfigError(
            f"onnxruntime: precision {precision!r} has no ONNX export; use one of "
            f"{', '.join(EXPORT_PRECISIONS)}"
        )
    from engines.backends import BACKENDS, BackendUnavailableError

    config_ort = OnnxRuntimeConfig(
        providers=_ort_providers(device), intra_op_threads=options.threads
    )
    reason = BACKENDS["onnxruntime"].probe(config_ort)
    if reason:  # before a (long) export
        raise BackendUnavailableError(f"onnxruntime: {reason}")
    from engines.export import export_onnx

    temp_dir = tempfile.mkdtemp(prefix="fqm-bench-onnx-")
    try:
        path = export_onnx(model, Path(temp_dir) / f"model-{precision}.onnx", precision=precision)
        engine = open_engine(path, "onnxruntime", mode=mode, config=config_ort)
    except BaseException:
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return OpenedEngine(engine, engine.selection, temp_dir)


def open_bench_engine(
    model: DslFiqa,
    backend: str,
    precision: str,
    device: str,
    mode: str = "center",
    options: TorchOptions = TorchOptions(),
) -> OpenedEngine:
    """The engine ``fqm bench quality --backend`` times, with how it was chosen.

    ``auto`` walks the order of ``open_engine(model, "auto")``
    (:func:`engines.backends.choose_backend`) and opens the first backend that takes
    ``precision`` (and, for torch, ``options``) here, listing what it skipped and why. A
    named backend that cannot run raises the engines' ``BackendUnavailableError`` or
    ``BackendConfigError``.
    """
    from engines.backends import (
        AUTO_ORDER,
        ORT_CUDA,
        BackendConfigError,
        BackendUnavailableError,
        OnnxRuntimeConfig,
        choose_backend,
        ort_providers,
    )

    if backend != "auto":
        return _open_named(model, backend, precision, device, mode, options)
    candidates, skipped = choose_backend(model)
    for label, config in candidates:
        if isinstance(config, OnnxRuntimeConfig):
            dev = "cuda" if ORT_CUDA in ort_providers(config) else "cpu"
            described = f"{label} ({', '.join(ort_providers(config))})"
        else:
            dev = getattr(config, "device", device)
            described = label
        try:
            opened = _open_named(model, config.type, precision, dev, mode, options)
        except (BackendUnavailableError, BackendConfigError) as exc:
            skipped.append(f"{label}: {exc}")
            continue
        opened.selection = (
            f"auto chose {described} at {precision}; skipped: {'; '.join(skipped) or 'none'}; "
            f"order: {' > '.join(lbl for lbl, _, _ in AUTO_ORDER)}"
        )
        return opened
    raise BackendUnavailableError(f"no backend runs {precision} here: {'; '.join(skipped)}")


@dataclass(frozen=True)
class BackendResult:
    """One timed run of an engine: faces -> crops (prepared), forwards of ``batch`` crops.

    ``seconds`` covers crop preparation and every forward; the batch latencies are the
    forwards alone (``score_crops``, host in and out). Memory: the process's peak RSS so far
    (``resource``), and on CUDA ``torch.cuda.max_memory_allocated`` during the run (None
    elsewhere; ONNX Runtime's CUDA memory is not torch's and is not counted).
    """

    procedure: str
    backend: str
    precision: str
    device: str
    mode: str
    batch: int
    faces: int
    crops: int
    seconds: float
    batch_ms: tuple[float, ...]
    peak_rss_mb: float
    cuda_peak_mb: float | None
    flop_fraction: float | None

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds

    @property
    def crops_per_s(self) -> float:
        return self.crops / self.seconds

    @property
    def ms_per_face(self) -> float:
        return 1000 * self.seconds / self.faces

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.batch_ms, q))

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        del doc["batch_ms"]
        return {
            **doc,
            "batches": len(self.batch_ms),
            "faces_per_s": self.faces_per_s,
            "crops_per_s": self.crops_per_s,
            "ms_per_face": self.ms_per_face,
            "batch_ms_p50": self.percentile_ms(50),
            "batch_ms_p99": self.percentile_ms(99),
        }


def time_backend(
    engine: QualityEngine,
    faces: Sequence[BenchFace],
    mode: CropMode,
    batch: int,
    gflop: float | None = None,
    peak: float | None = None,
) -> BackendResult:
    """Score ``faces`` on ``engine`` in ``mode``, crops of all faces ``batch`` at a time.

    ``gflop`` (per crop) and ``peak`` (TFLOP/s) give the fraction of the FLOP-bound limit
    reached by the forwards (None when either is unknown).
    """
    from engines.quality_engine import prepare_faces, scores_from_crops

    info = engine.info
    on_cuda = info.backend == "torch" and info.device.startswith("cuda")
    if on_cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    images = np.stack([f.image for f in faces])
    points = np.stack([f.landmarks for f in faces])
    t0 = time.perf_counter()
    prepared = prepare_faces(engine.variant, images, points, mode, OFFICIAL_SEED)
    latencies, parts = [], []
    for j in range(0, len(prepared.crops), batch):
        t = time.perf_counter()
        parts.append(
            np.asarray(
                engine.score_crops(prepared.crops[j : j + batch], prepared.vectors[j : j + batch])
            )
        )  # numpy out: the forward has finished (a device sync)
        latencies.append(time.perf_counter() - t)
    scores_from_crops(np.concatenate(parts), prepared.offsets, info)
    seconds = time.perf_counter() - t0
    cuda_peak = None
    if on_cuda:
        import torch

        cuda_peak = torch.cuda.max_memory_allocated() / 2**20
    crops = len(prepared.crops)
    fraction = None
    if gflop is not None and peak is not None:
        fraction = _flops.flop_fraction(crops, sum(latencies), gflop, peak)
    return BackendResult(
        "engine",
        info.backend,
        info.precision,
        info.device,
        mode,
        batch,
        len(faces),
        crops,
        seconds,
        tuple(1000 * x for x in latencies),
        peak_rss_mb(),
        cuda_peak,
        fraction,
    )


# -------------------------------------------------------------------------------- bench modes


@dataclass(frozen=True)
class ModeScores:
    label: str
    official: float
    fixed5: float
    center: float
    official_crop_std: float  # spread of the 20 crop scores (official sampling noise source)


def score_modes(
    model: DslFiqa,
    faces: Sequence[BenchFace],
    progress: Callable[[str], None] | None = None,
) -> list[ModeScores]:
    """Per face: official (RNG seeded 20, continued across faces), fixed5 and center scores.

    ``center`` is read off ``fixed5`` (its fifth crop is the centre crop) to save a forward.
    """
    from engines.dslfiqa.preprocess import crop_offsets

    rng = np.random.RandomState(OFFICIAL_SEED)
    out = []
    t0 = time.perf_counter()
    for i, f in enumerate(faces):
        five = model.score_face(f.image, f.landmarks, mode="fixed5")
        assert five.crops_top_left[4].tolist() == crop_offsets("center")[0].tolist()
        off = model.score_face(f.image, f.landmarks, mode="official", seed=rng)
        out.append(
            ModeScores(
                f.label,
                off.score,
                five.score,
                float(five.crop_scores[4]),
                float(np.std(off.crop_scores, ddof=1)),
            )
        )
        if progress is not None:
            progress(
                f"[{i + 1}/{len(faces)}] {f.label}: official {off.score:.4f} fixed5 "
                f"{five.score:.4f} center {five.crop_scores[4]:.4f} "
                f"({time.perf_counter() - t0:.0f}s)"
            )
    return out


def mode_agreement(rows: Sequence[ModeScores]) -> dict[str, dict[str, float | None]]:
    """SRCC, PLCC, mean and max |diff| of fixed5 and center against official."""
    from engines.metrics import mean_abs_diff, plcc, srcc

    official = np.array([r.official for r in rows])

    def clean(v: float) -> float | None:
        return None if np.isnan(v) else v

    out: dict[str, dict[str, float | None]] = {}
    for mode in ("fixed5", "center"):
        other = np.array([getattr(r, mode) for r in rows])
        enough = len(rows) >= 2
        out[mode] = {
            "srcc": clean(srcc(other, official)) if enough else None,
            "plcc": clean(plcc(other, official)) if enough else None,
            "mean_abs_diff": mean_abs_diff(other, official),
            "max_abs_diff": float(np.max(np.abs(other - official))),
        }
    crop_std = np.array([r.official_crop_std for r in rows])
    out["official"] = {
        "score_std_across_faces": float(np.std(official, ddof=1)) if len(rows) > 1 else None,
        "mean_crop_score_std": float(crop_std.mean()),
        # Standard error of a 20-crop mean: how far two official runs with different seeds
        # land apart is about sqrt(2) times this.
        "mean_sampling_se": float(crop_std.mean() / np.sqrt(NUM_CROPS_OFFICIAL)),
    }
    return out
