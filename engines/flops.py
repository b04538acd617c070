"""FLOP arithmetic for DSL-FIQA speed reports: crops per face, the cards' peaks, the limit.

Torch-free. ``fqm bench quality`` (monitor) and ``python -m engines.gpu_check`` both report
the fraction of the FLOP-bound limit from here:

    fraction = crops x GFLOP per crop / forward seconds / (peak TFLOP/s x 1e3)

GFLOP per crop: 261 for the official model at 384 (DSL-FIQA's cost notes, section 8:
torch FlopCounterMode, 2 x MAC of matmul and conv: DE 44.0 + IQA 216.8; 5.2 TFLOP per
face of 20 crops). Other variants are counted by torch's FlopCounterMode at run time
(``monitor.benchmarks.quality.gflop_per_crop``).

Peaks: dense (no sparsity) tensor-core TFLOP/s from NVIDIA's datasheets for fp16/bf16, and
plain fp32 (no TF32) for fp32. The H200 and H100 SXM have the same compute (989 fp16/bf16);
a card missing from :data:`PEAK_TFLOPS` gets no fraction.

    >>> round(flop_bound_crops_per_s(OFFICIAL_GFLOP_PER_CROP, 989.0))
    3789
    >>> crops_per_face("fixed5"), gflop_per_face("official")
    (5, 5220.0)
"""

from __future__ import annotations

from engines.dslfiqa.constants import NUM_CROPS_OFFICIAL

__all__ = [
    "CROPS_PER_FACE",
    "OFFICIAL_GFLOP_PER_CROP",
    "PEAK_SOURCE",
    "PEAK_TFLOPS",
    "crops_per_face",
    "flop_bound_crops_per_s",
    "flop_fraction",
    "gflop_per_face",
    "peak_tflops",
]

#: GFLOP of one 384 crop forward of the official model (DSL-FIQA cost notes, section 8).
OFFICIAL_GFLOP_PER_CROP = 261.0
#: Crops scored per face in each crop mode.
CROPS_PER_FACE: dict[str, int] = {"official": NUM_CROPS_OFFICIAL, "fixed5": 5, "center": 1}
#: Dense peak TFLOP/s per precision, matched against the CUDA device name in order (the
#: first key that occurs in it wins, so ``H100 PCIe`` precedes ``H100``, ``A100`` ``A10``).
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"fp16": 989.0, "bf16": 989.0, "fp32": 67.0}),
    ("H100 PCIe", {"fp16": 756.0, "bf16": 756.0, "fp32": 51.0}),
    ("H100", {"fp16": 989.0, "bf16": 989.0, "fp32": 67.0}),
    ("A100", {"fp16": 312.0, "bf16": 312.0, "fp32": 19.5}),
    ("L40S", {"fp16": 362.0, "bf16": 362.0, "fp32": 91.6}),
    ("L4", {"fp16": 121.0, "bf16": 121.0, "fp32": 30.3}),
    ("A10", {"fp16": 125.0, "bf16": 125.0, "fp32": 31.2}),
    ("RTX 4090", {"fp16": 165.0, "bf16": 165.0, "fp32": 82.6}),
    ("T4", {"fp16": 65.0, "fp32": 8.1}),
)
PEAK_SOURCE = "NVIDIA datasheets: dense tensor-core fp16/bf16, fp32 without TF32"


def peak_tflops(device_name: str | None, precision: str) -> float | None:
    """The card's dense peak TFLOP/s at ``precision`` from :data:`PEAK_TFLOPS`, else None."""
    if not device_name:
        return None
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peaks.get(precision)
    return None


def crops_per_face(mode: str) -> int:
    """Crops one face costs in ``mode`` (20 official, 5 fixed5, 1 center)."""
    try:
        return CROPS_PER_FACE[mode]
    except KeyError:
        raise ValueError(
            f"unknown crop mode {mode!r}; choose one of {list(CROPS_PER_FACE)}"
        ) from None


def gflop_per_face(mode: str, gflop_per_crop: float = OFFICIAL_GFLOP_PER_CROP) -> float:
    """GFLOP to score one face in ``mode``."""
    return crops_per_face(mode) * gflop_per_crop


def flop_bound_crops_per_s(gflop_per_crop: float, peak: float) -> float:
    """Crops/s a card of ``peak`` TFLOP/s would score if compute were the only limit."""
    return peak * 1e3 / gflop_per_crop


def flop_fraction(crops: int, seconds: float, gflop_per_crop: float, peak: float) -> float:
    """The fraction of the FLOP-bound limit reached by ``crops`` forwards in ``seconds``."""
    return crops * gflop_per_crop / seconds / (peak * 1e3)
