"""One-call GPU check of the quality engines: parity, speed, FLOP-bound fraction.

Run it once where a CUDA device is lent (the whole run is sized for < 8 minutes on an
H100/H200, inside ``--budget-s``)::

    python -m engines.gpu_check --json OUT/gpu_check.json --markdown OUT/gpu_check.md \
        [--faces-npz faces.npz] [--budget-s 420]

Parts, each recorded on its own (one that fails is written down with its error and the
rest go on; the JSON and markdown files are rewritten after every step, so a run killed
from outside still leaves what it measured):

1. ``parity``: the official-shaped random-weights model (``engines.dslfiqa.random_weights``)
   on CUDA in fp32, fp16 and bf16, eager, channels-last and CUDA graphs (a batch padded to
   a larger captured size), against the CPU fp32 reference on the same crops. Tolerances
   (max abs on the scores, :data:`TOLERANCES`): fp32 2e-3 (cuDNN convolutions use TF32 by
   default), fp16 5e-3 (the fp16 ONNX tolerance), bf16 2e-2 (8 mantissa bits).
2. ``timing``: forwards of 1..128 crops (``score_crops``: staging, host-to-device, forward,
   scores back) for fp16 (every batch), bf16 and fp32 (a subset), eager vs CUDA graphs,
   fp16 channels-last: crops/s, p50/p99 ms, peak CUDA memory, the fraction of the
   FLOP-bound limit (:mod:`engines.flops`), and per crop mode (center 1, fixed5 5,
   official 20 crops per face) faces/s from the forwards and end to end with the host's
   crop preparation (measured separately, sequential, no overlap).
3. ``onnxruntime``: ORT CUDA EP fp32 and fp16 parity against the same reference, where
   onnxruntime-gpu is installed (else skipped with the reason).
4. ``tensorrt``: the TensorRT backend's parity at fp16, where TensorRT is installed.

Faces: ``--faces-npz`` (``images`` uint8 [N,512,512,3], ``landmarks`` float32 [N,68,2];
``fqm`` writes one with ``monitor.benchmarks.quality.save_bench_faces``), else synthetic
face-like images with a generic 68-point layout (:func:`synthetic_faces`).

Without a CUDA device the check is skipped with the reason (exit 0, ``status: skipped``;
``--require-cuda`` makes that exit 2). ``--device cpu`` runs the fp32 eager cases on the CPU
(for testing the script itself; the GPU-only cases are listed as skipped).

This module imports only engines, numpy and torch (no monitor).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines import flops
from engines.dslfiqa.constants import IMAGE_SIZE, NUM_FACE_LANDMARKS

#: Max abs difference on the scores against the CPU fp32 reference, per precision.
TOLERANCES: dict[str, float] = {"fp32": 2e-3, "fp16": 5e-3, "bf16": 2e-2}
TOLERANCE_NOTES: dict[str, str] = {
    "fp32": "cuDNN convolutions use TF32 by default (torch.backends.cudnn.allow_tf32)",
    "fp16": "autocast float16; same bound as the fp16 ONNX export (FP16_PARITY_ATOL)",
    "bf16": "autocast bfloat16: 8 mantissa bits, about 3 significant digits",
}
ALL_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
SUBSET_BATCHES: tuple[int, ...] = (1, 8, 32, 128)
FP32_BATCHES: tuple[int, ...] = (1, 8, 32)
MODES: tuple[str, ...] = ("center", "fixed5", "official")
DEFAULT_BUDGET_S = 420.0
#: Issue 10's goals on an H100/H200: official fp16 at >= 50 % of the FLOP-bound limit,
#: center mode >= 1,500 faces/s.
GOAL_FLOP_FRACTION = 0.5
GOAL_CENTER_FACES_PER_S = 1500.0


# ---------------------------------------------------------------------------- arguments


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batches must be integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"batches must be integers >= 1, got {text!r}")
    return tuple(sorted(set(values)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engines.gpu_check",
        description="Quality-engine parity and speed on a CUDA device, in one call.",
    )
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--markdown", type=Path, help="write the tables (docs/benchmarks.md style)")
    p.add_argument("--faces-npz", type=Path, help="real aligned faces (images, landmarks)")
    p.add_argument("--variant", default="dslfiqa", help="model shape (default: official)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (tests)")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="global budget")
    p.add_argument("--batches", type=_batches, default=ALL_BATCHES, help="fp16 batch sizes")
    p.add_argument("--subset", type=_batches, default=SUBSET_BATCHES, help="bf16 batches")
    p.add_argument("--fp32-batches", type=_batches, default=FP32_BATCHES)
    p.add_argument("--parity-crops", type=int, default=6, help="crops in the parity check")
    p.add_argument("--min-time-s", type=float, default=0.3, help="timed seconds per case")
    p.add_argument("--min-iters", type=int, default=5)
    p.add_argument("--max-iters", type=int, default=50)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (fp16)")
    p.add_argument("--skip", action="append", default=[], choices=list(PARTS), help="skip part")
    p.add_argument("--require-cuda", action="store_true", help="exit 2 when no CUDA device")
    return p


# ---------------------------------------------------------------------------- report


@dataclass
class Report:
    """Everything the check found; saved after every step."""

    status: str = "running"
    reason: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    parity: list[dict[str, Any]] = field(default_factory=list)
    timing: list[dict[str, Any]] = field(default_factory=list)
    prep_ms_per_face: dict[str, float] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)  # part -> ok | skipped: .. | error: ..
    goals: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    json_path: Path | None = None
    markdown_path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["json_path"], doc["markdown_path"]
        return doc

    def save(self) -> None:
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        if self.markdown_path is not None:
            self.markdown_path.parent.mkdir(parents=True, exist_ok=True)
            self.markdown_path.write_text(markdown(self))


def _cell(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, fmt)


def parity_table(report: Report) -> str:
    lines = [
        "| backend | precision | options | crops | max abs diff | tolerance | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report.parity:
        if "error" in r or "skipped" in r:
            why = r.get("error") or r.get("skipped")
            lines.append(f"| {r['backend']} | {r['precision']} | {r['options']} | | | | {why} |")
            continue
        lines.append(
            f"| {r['backend']} | {r['precision']} | {r['options']} | {r['crops']} | "
            f"{r['max_abs_diff']:.2e} | {r['tolerance']:.0e} | {'yes' if r['ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def timing_table(report: Report) -> str:
    head = (
        "| precision | options | batch | crops/s | p50 ms | p99 ms | peak MB | % FLOP-bound | "
        + " | ".join(f"{m} faces/s (e2e)" for m in MODES)
        + " |"
    )
    lines = [head, "|" + "---|" * (8 + len(MODES))]
    for r in report.timing:
        if "error" in r or "skipped" in r:
            why = r.get("error") or r.get("skipped")
            lines.append(f"| {r['precision']} | {r['options']} | {r['batch']} | {why} |")
            continue
        frac = r["flop_fraction"]
        modes = " | ".join(
            f"{_cell(r['faces_per_s'][m], ',.1f')} ({_cell(r['e2e_faces_per_s'].get(m), ',.1f')})"
            for m in MODES
        )
        lines.append(
            f"| {r['precision']} | {r['options']} | {r['batch']} | {r['crops_per_s']:,.1f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {_cell(r['peak_mb'], ',.0f')} | "
            f"{_cell(None if frac is None else 100 * frac, '.1f')} | {modes} |"
        )
    return "\n".join(lines)


def markdown(report: Report) -> str:
    env = report.environment
    out = [
        "## GPU check (`python -m engines.gpu_check`)",
        "",
        f"Status: {report.status}" + (f" ({report.reason})" if report.reason else ""),
        "",
        f"Device: {env.get('device_name', 'n/a')} (compute capability "
        f"{env.get('capability', 'n/a')}), torch {env.get('torch', 'n/a')}, model "
        f"{env.get('variant', 'n/a')} ({env.get('weights', 'n/a')}), faces: "
        f"{env.get('faces', 'n/a')}. GFLOP per crop {_cell(env.get('gflop_per_crop'), '.4g')} "
        f"({env.get('gflop_source', 'n/a')}); peak TFLOP/s {env.get('peaks', 'n/a')} "
        f"({flops.PEAK_SOURCE}).",
        "",
        "Parts: " + ", ".join(f"{k}: {v}" for k, v in report.parts.items()),
        "",
    ]
    if report.parity:
        out += ["### Parity against torch CPU fp32", "", parity_table(report), ""]
    if report.timing:
        prep = ", ".join(f"{m} {v:.2f}" for m, v in report.prep_ms_per_face.items())
        out += [
            "### Speed (forward = staging + copies + forward + scores back)",
            "",
            "faces/s per mode = crops/s / crops per face; (e2e) adds the host's crop "
            f"preparation, sequentially (ms per face: {prep or 'n/a'}).",
            "",
            timing_table(report),
            "",
        ]
    if report.goals:
        out += ["Goals (issue 10): " + json.dumps(report.goals), ""]
    out.append(f"Elapsed: {report.elapsed_s:.0f} s")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- inputs


def generic_landmarks68() -> np.ndarray:
    """A frontal 68-point layout (iBUG order) in a 512 aligned face, every point in
    [128, 384] (inside every official crop), as the official alignment places a face."""
    t = np.pi - np.pi * np.arange(17) / 16
    jaw = np.stack([256 + 97 * np.cos(t), 235 + 135 * np.sin(t)], axis=1)
    brows = [[175 + 16 * i, 212 - 6 * min(i, 4 - i)] for i in range(5)]
    brows += [[274 + 16 * i, 212 - 6 * min(i, 4 - i)] for i in range(5)]
    nose = [[256, 235 + 17 * i] for i in range(4)] + [[236 + 10 * i, 298] for i in range(5)]

    def eye(cx: float) -> list[list[float]]:
        corners = [[cx - 20, 240], [cx - 7, 234], [cx + 7, 234], [cx + 20, 240]]
        return [*corners, [cx + 7, 245], [cx - 7, 245]]

    theta = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([256 - 35 * np.cos(theta), 332 - 12 * np.sin(theta)], axis=1)
    theta = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([256 - 30 * np.cos(theta), 330 - 4 * np.sin(theta)], axis=1)
    points = np.concatenate([jaw, brows, nose, eye(211), eye(301), outer, inner])
    assert points.shape == (NUM_FACE_LANDMARKS, 2)
    return points.astype(np.float32)


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` face-like uint8 images [n,512,512,3] and their landmarks [n,68,2].

    A lit background gradient, a skin-toned face ellipse, darker eyes, brows and mouth at
    the layout's points, a little blur-like smoothness and sensor noise; each face gets its
    own tones, noise and a small shift. Not a real face, but image statistics closer to
    one than uniform noise (the network's activations stay in their usual range).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    images, points = [], []
    for _ in range(n):
        shift = rng.uniform(-8, 8, size=2).astype(np.float32)
        pts = generic_landmarks68() + shift
        bg = rng.uniform(40, 200, size=3)
        img = bg[None, None, :] * (0.7 + 0.3 * (yy / IMAGE_SIZE))[..., None]
        cx, cy = 256 + shift[0], 250 + shift[1]
        face = ((xx - cx) / 110) ** 2 + ((yy - cy) / 150) ** 2
        skin = np.array([rng.uniform(150, 230), rng.uniform(110, 180), rng.uniform(90, 150)])
        alpha = np.clip(1.5 - face, 0, 1)[..., None]
        img = img * (1 - alpha) + skin[None, None, :] * alpha
        for x, y in pts[17:]:  # brows, nose, eyes, lips: small dark blobs
            blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0**2))[..., None]
            img = img * (1 - 0.5 * blob)
        img += rng.normal(0, 4, size=img.shape)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        points.append(pts)
    return np.stack(images), np.stack(points)


def load_faces(path: Path | None, n: int = 4) -> tuple[np.ndarray, np.ndarray, str]:
    """Faces from ``path`` (an npz with ``images`` and ``landmarks``), else synthetic."""
    if path is None:
        images, landmarks = synthetic_faces(n)
        return images, landmarks, f"{n} synthetic face-like images (generic 68-point layout)"
    with np.load(path) as data:
        images, landmarks = data["images"], data["landmarks"].astype(np.float32)
        labels = [str(v) for v in data["labels"]] if "labels" in data else []
    return images, landmarks, f"{len(images)} aligned faces from {path.name} {labels}"


# ---------------------------------------------------------------------------- helpers


class Budget:
    """A global time budget; each step asks whether its estimate still fits."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic):
        self.total_s = total_s
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.total_s - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        return self.left() > estimate_s


def _error(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last[:500]


def mode_rates(
    crops_per_s: float, prep_ms_per_face: dict[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """faces/s per mode from forward crops/s, and end to end with sequential preparation."""
    forward = {m: crops_per_s / flops.crops_per_face(m) for m in MODES}
    e2e = {
        m: 1.0 / (1.0 / forward[m] + prep_ms_per_face[m] / 1e3)
        for m in MODES
        if m in prep_ms_per_face
    }
    return forward, e2e


def timing_row(
    precision: str,
    options: str,
    batch: int,
    latencies_s: Sequence[float],
    peak_mb: float | None,
    gflop_per_crop: float | None,
    peak_tflops: float | None,
    prep_ms_per_face: dict[str, float],
) -> dict[str, Any]:
    """One timed case: crops/s from the mean latency, p50/p99, per-mode faces/s, fraction."""
    lat = np.asarray(latencies_s, dtype=np.float64)
    crops_per_s = batch / float(lat.mean())
    fraction = (
        flops.flop_fraction(batch * len(lat), float(lat.sum()), gflop_per_crop, peak_tflops)
        if gflop_per_crop is not None and peak_tflops is not None
        else None
    )
    forward, e2e = mode_rates(crops_per_s, prep_ms_per_face)
    return {
        "precision": precision,
        "options": options,
        "batch": batch,
        "iters": len(lat),
        "crops_per_s": crops_per_s,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "peak_mb": peak_mb,
        "flop_fraction": fraction,
        "faces_per_s": forward,
        "e2e_faces_per_s": e2e,
    }


def goals(report: Report) -> dict[str, Any]:
    """Issue 10's two goals, from the best fp16 rows."""
    fp16 = [r for r in report.timing if r.get("precision") == "fp16" and "crops_per_s" in r]
    if not fp16:
        return {}
    best = max(fp16, key=lambda r: r["crops_per_s"])
    frac = best["flop_fraction"]
    center = max(r["faces_per_s"]["center"] for r in fp16)
    return {
        "best_fp16": f"{best['options']} batch {best['batch']}",
        "official_fp16_flop_fraction": frac,
        "official_fp16_goal_met": None if frac is None else frac >= GOAL_FLOP_FRACTION,
        "center_faces_per_s": center,
        "center_goal_met": center >= GOAL_CENTER_FACES_PER_S,
    }


# ---------------------------------------------------------------------------- the parts


@dataclass
class Context:
    args: argparse.Namespace
    report: Report
    budget: Budget
    device: Any = None  # torch.device
    model: Any = None  # DslFiqa on the CPU until an engine moves it
    variant: Any = None
    images: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    crops: np.ndarray | None = None
    vectors: np.ndarray | None = None
    reference: np.ndarray | None = None
    gflop: float | None = None
    peaks: dict[str, float | None] = field(default_factory=dict)


def _open(ctx: Context, precision: str, **options: Any) -> Any:
    import torch

    from engines.backends import TorchConfig
    from engines.runtimes.torch import TorchQualityEngine

    config = TorchConfig(device=str(ctx.device), precision=precision, **options)  # type: ignore[arg-type]
    if not config.channels_last:  # an earlier channels-last engine converted the shared module
        ctx.model.to(memory_format=torch.contiguous_format)
    return TorchQualityEngine(ctx.model, config, mode="center", variant=ctx.variant)


def _gpu_only(ctx: Context, precision: str, options: dict[str, Any]) -> str | None:
    if ctx.device.type == "cuda":
        return None
    if precision != "fp32" or any(options.get(k) for k in ("channels_last", "cuda_graphs")):
        return "skipped: needs a CUDA device"
    return None


def _describe(options: dict[str, Any]) -> str:
    names = [k for k in ("channels_last", "cuda_graphs", "compile") if options.get(k)]
    sizes = options.get("graph_batch_sizes")
    if sizes:
        names[names.index("cuda_graphs")] = f"cuda_graphs{list(sizes)}"
    return "+".join(names) or "eager"


def part_setup(ctx: Context) -> None:
    """Environment, model, faces, crops, the CPU fp32 reference and the host prep cost."""
    import torch

    from engines.dslfiqa.random_weights import build_random
    from engines.dslfiqa.variants import get_variant
    from engines.quality_engine import prepare_faces

    args, env = ctx.args, ctx.report.environment
    ctx.variant = get_variant(args.variant)
    ctx.model = build_random(ctx.variant, seed=0)
    env["variant"] = ctx.variant.name
    env["weights"] = "random_weights seed 0"
    env["cpu_threads"] = torch.get_num_threads()
    env["tf32"] = {
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    ctx.images, ctx.landmarks, env["faces"] = load_faces(args.faces_npz)
    prepared = prepare_faces(ctx.variant, ctx.images, ctx.landmarks, "fixed5")
    n = max(1, min(args.parity_crops, len(prepared.crops)))
    ctx.crops, ctx.vectors = prepared.crops[:n], prepared.vectors[:n]
    with torch.inference_mode():
        ref = ctx.model(torch.from_numpy(ctx.crops), torch.from_numpy(ctx.vectors))
    ctx.reference = ref.float().numpy()
    env["reference_scores"] = [float(v) for v in ctx.reference]
    for mode in MODES:  # host crop preparation, per face, on this machine's CPU
        t = time.perf_counter()
        prepare_faces(ctx.variant, ctx.images, ctx.landmarks, mode, 20)
        ctx.report.prep_ms_per_face[mode] = 1e3 * (time.perf_counter() - t) / len(ctx.images)
    if ctx.variant.name == "dslfiqa":
        ctx.gflop, env["gflop_source"] = flops.OFFICIAL_GFLOP_PER_CROP, "DSL-FIQA section 8"
    else:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            ctx.model(torch.from_numpy(ctx.crops[:1]), torch.from_numpy(ctx.vectors[:1]))
        ctx.gflop = counter.get_total_flops() / 1e9
        env["gflop_source"] = "torch FlopCounterMode (matmul/conv/attention)"
    env["gflop_per_crop"] = ctx.gflop
    name = env.get("device_name")
    ctx.peaks = {p: flops.peak_tflops(name, p) for p in ("fp32", "fp16", "bf16")}
    env["peaks"] = ctx.peaks


PARITY_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("fp32", {}),
    ("fp16", {}),
    ("bf16", {}),
    ("fp16", {"cuda_graphs": True}),
    ("bf16", {"cuda_graphs": True}),
    ("fp32", {"cuda_graphs": True}),
    ("fp16", {"channels_last": True}),
    ("fp16", {"channels_last": True, "cuda_graphs": True}),
)


def part_parity(ctx: Context) -> None:
    """torch on the device vs the CPU fp32 reference; graphs capture a larger size, so the
    parity batch is padded."""
    assert ctx.crops is not None
    assert ctx.reference is not None
    n = len(ctx.crops)
    for precision, options in PARITY_CASES:
        opts = dict(options)
        if opts.get("cuda_graphs"):
            opts["graph_batch_sizes"] = (1, n + 2)  # n rows replayed padded to n + 2
        opts["max_batch"] = n
        row: dict[str, Any] = {
            "backend": "torch",
            "precision": precision,
            "options": _describe(opts),
            "crops": n,
        }
        skip = _gpu_only(ctx, precision, opts)
        if skip:
            ctx.report.parity.append({**row, "skipped": skip})
            continue
        if not ctx.budget.allows(30):
            ctx.report.parity.append({**row, "skipped": "skipped: time budget"})
            continue
        try:
            engine = _open(ctx, precision, **opts)
            got = engine.score_crops(ctx.crops, ctx.vectors)
            engine.close()
            dev = float(np.abs(got - ctx.reference).max())
            row.update(
                max_abs_diff=dev,
                tolerance=TOLERANCES[precision],
                tolerance_note=TOLERANCE_NOTES[precision],
                ok=bool(dev <= TOLERANCES[precision]),
                scores=[float(v) for v in got],
            )
        except Exception as exc:  # recorded, the rest goes on
            row["error"] = f"error: {_error(exc)}"
            _free_cuda(ctx)
        ctx.report.parity.append(row)
        ctx.report.save()


def _free_cuda(ctx: Context) -> None:
    if ctx.device is not None and ctx.device.type == "cuda":
        import torch

        torch.cuda.empty_cache()


def timing_cases(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], tuple[int, ...]]]:
    """(precision, torch options, batches) in the order they run (most wanted first)."""
    cases: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
        ("fp16", {}, args.batches),
        ("fp16", {"cuda_graphs": True}, args.batches),
        ("bf16", {}, args.subset),
        ("bf16", {"cuda_graphs": True}, args.subset),
        ("fp16", {"channels_last": True, "cuda_graphs": True}, args.subset),
        ("fp32", {}, args.fp32_batches),
        ("fp32", {"cuda_graphs": True}, args.fp32_batches),
    ]
    if args.compile:
        cases.append(("fp16", {"compile": True}, args.subset))
    return cases


def _time_case(ctx: Context, engine: Any, batch: int) -> tuple[list[float], float | None]:
    import torch

    args = ctx.args
    rng = np.random.default_rng(batch)
    c = ctx.variant.crop_size
    crops = rng.uniform(-1, 1, size=(batch, 3, c, c)).astype(np.float32)
    vectors = ctx.vectors[rng.integers(0, len(ctx.vectors), size=batch)]
    on_cuda = ctx.device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize(ctx.device)
        torch.cuda.reset_peak_memory_stats(ctx.device)
    for _ in range(2):  # warm-up: kernel choice, allocator, first replay
        engine.score_crops(crops, vectors)
    latencies: list[float] = []
    t_end = time.perf_counter() + args.min_time_s
    while len(latencies) < args.max_iters and (
        len(latencies) < args.min_iters or time.perf_counter() < t_end
    ):
        t = time.perf_counter()
        engine.score_crops(crops, vectors)  # numpy out: synchronised
        latencies.append(time.perf_counter() - t)
        if not ctx.budget.allows(5):
            break
    peak = torch.cuda.max_memory_allocated(ctx.device) / 2**20 if on_cuda else None
    return latencies, peak


def part_timing(ctx: Context) -> None:
    for precision, options, batches in timing_cases(ctx.args):
        opts = dict(options)
        opts["max_batch"] = max(batches)
        if opts.get("cuda_graphs"):
            opts["graph_batch_sizes"] = batches
        label = _describe({k: v for k, v in opts.items() if k != "graph_batch_sizes"})
        skip = _gpu_only(ctx, precision, opts) or (
            None if not opts.get("compile") or ctx.device.type == "cuda" else "skipped: CUDA"
        )
        base = {"precision": precision, "options": label}
        if skip:
            ctx.report.timing += [{**base, "batch": b, "skipped": skip} for b in batches]
            continue
        if not ctx.budget.allows(20):
            ctx.report.timing += [
                {**base, "batch": b, "skipped": "skipped: time budget"} for b in batches
            ]
            continue
        try:
            engine = _open(ctx, precision, **opts)
        except Exception as exc:
            err = f"error: {_error(exc)}"
            ctx.report.timing += [{**base, "batch": b, "error": err} for b in batches]
            _free_cuda(ctx)
            ctx.report.save()
            continue
        for batch in batches:
            if not ctx.budget.allows(10):
                ctx.report.timing.append({**base, "batch": batch, "skipped": "time budget"})
                continue
            try:
                lat, peak = _time_case(ctx, engine, batch)
                ctx.report.timing.append(
                    timing_row(
                        precision,
                        label,
                        batch,
                        lat,
                        peak,
                        ctx.gflop,
                        ctx.peaks.get(precision),
                        ctx.report.prep_ms_per_face,
                    )
                )
            except Exception as exc:
                ctx.report.timing.append({**base, "batch": batch, "error": f"error: {_error(exc)}"})
                _free_cuda(ctx)
            ctx.report.save()
        engine.close()
        del engine
        _free_cuda(ctx)
    ctx.report.goals = goals(ctx.report)


def part_onnxruntime(ctx: Context) -> str:
    """ORT CUDA EP fp32/fp16 parity, where onnxruntime-gpu is installed."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return "skipped: onnxruntime is not installed"
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return f"skipped: onnxruntime {ort.__version__} has no CUDAExecutionProvider ({available})"
    if not ctx.budget.allows(150):
        return "skipped: time budget (an official-size export takes about a minute)"
    import tempfile

    from engines.export import export_onnx
    from engines.runtimes.onnxruntime import OrtQualityEngine

    model_cpu = ctx.model.to("cpu")
    with tempfile.TemporaryDirectory(prefix="fqm-gpu-check-") as tmp:
        for precision in ("fp32", "fp16"):
            row: dict[str, Any] = {
                "backend": "onnxruntime",
                "precision": precision,
                "options": "CUDAExecutionProvider",
                "crops": len(ctx.crops),
            }
            try:
                path = export_onnx(
                    model_cpu, Path(tmp) / f"m-{precision}.onnx", precision=precision
                )
                engine = OrtQualityEngine(
                    path, providers=("CUDAExecutionProvider", "CPUExecutionProvider")
                )
                got = engine.score_crops(ctx.crops, ctx.vectors)
                dev = float(np.abs(got - ctx.reference).max())
                row.update(
                    providers=engine.providers,
                    max_abs_diff=dev,
                    tolerance=TOLERANCES[precision],
                    ok=bool(dev <= TOLERANCES[precision]),
                )
            except Exception as exc:
                row["error"] = f"error: {_error(exc)}"
            ctx.report.parity.append(row)
            ctx.report.save()
    return "ok"


def part_tensorrt(ctx: Context) -> str:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "skipped: TensorRT is not installed (NVIDIA's index only)"
    if not ctx.budget.allows(240):
        return "skipped: time budget (an engine build takes minutes)"
    from engines.backends import TensorRTConfig, open_engine

    row: dict[str, Any] = {
        "backend": "tensorrt",
        "precision": "fp16",
        "options": "engine cache",
        "crops": len(ctx.crops),
    }
    try:
        engine = open_engine(ctx.model, "tensorrt", config=TensorRTConfig(precision="fp16"))
        got = engine.score_crops(ctx.crops, ctx.vectors)
        engine.close()
        dev = float(np.abs(got - ctx.reference).max())
        row.update(max_abs_diff=dev, tolerance=TOLERANCES["fp16"], ok=bool(dev <= 5e-3))
    except Exception as exc:
        row["error"] = f"error: {_error(exc)}"
    ctx.report.parity.append(row)
    return "ok"


PARTS: dict[str, Callable[[Context], Any]] = {
    "parity": part_parity,
    "timing": part_timing,
    "onnxruntime": part_onnxruntime,
    "tensorrt": part_tensorrt,
}


def cuda_reason(device: str) -> str | None:
    """Why ``device`` cannot run the check (``None`` when it can)."""
    import torch

    if device == "cpu":
        return None
    if not torch.cuda.is_available():
        return f"no CUDA device visible to torch {torch.__version__}"
    return None


def run(args: argparse.Namespace) -> Report:
    """The whole check; never raises for a failing part (each is recorded)."""
    report = Report(json_path=args.json, markdown_path=args.markdown)
    budget = Budget(args.budget_s)
    env = report.environment
    env.update(
        python=platform.python_version(),
        machine=platform.machine(),
        budget_s=args.budget_s,
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    try:
        import torch

        env["torch"] = torch.__version__
        reason = cuda_reason(args.device)
    except Exception as exc:  # torch missing or broken
        reason = f"torch does not import: {_error(exc)}"
    if reason is not None:
        report.status, report.reason = "skipped", reason
        report.save()
        return report
    ctx = Context(args=args, report=report, budget=budget, device=torch.device(args.device))
    if ctx.device.type == "cuda":
        index = ctx.device.index or 0
        props = torch.cuda.get_device_properties(index)
        env.update(
            device_name=torch.cuda.get_device_name(index),
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env["device_name"] = f"cpu ({platform.processor() or platform.machine()})"
    try:
        part_setup(ctx)
        report.parts["setup"] = "ok"
    except Exception as exc:
        report.parts["setup"] = f"error: {_error(exc)}"
        report.status, report.reason = "failed", "setup failed; nothing else can run"
        report.elapsed_s = budget.elapsed()
        report.save()
        return report
    report.save()
    for name, part in PARTS.items():
        if name in args.skip:
            report.parts[name] = "skipped: --skip"
            continue
        try:
            result = part(ctx)
            report.parts[name] = result if isinstance(result, str) else "ok"
        except Exception as exc:
            report.parts[name] = f"error: {_error(exc)}"
            _free_cuda(ctx)
        report.elapsed_s = budget.elapsed()
        report.save()
    failed = [r for r in report.parity if r.get("ok") is False]
    errors = [k for k, v in report.parts.items() if v.startswith("error")]
    report.status = "failed" if failed or errors else "ok"
    if failed or errors:
        report.reason = "; ".join(
            [
                f"parity over tolerance: {r['backend']} {r['precision']} {r['options']}"
                for r in failed
            ]
            + [f"{k}: {report.parts[k]}" for k in errors]
        )
    report.elapsed_s = budget.elapsed()
    report.save()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    print(json.dumps(report.to_json(), indent=2, default=str))
    print(markdown(report), file=sys.stderr)
    if report.status == "skipped":
        return 2 if args.require_cuda else 0
    return 0 if report.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
