"""The backends' typed configs, errors and shared constants.

Kept apart from the registry (:mod:`engines.backends`) so that the runtimes, which take
these configs, need not import the registry that opens them: the imports run one way,
registry -> runtimes -> configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
# Crops per forward: bounds activation memory; on a CPU a larger batch gains nothing
# (compute-bound, DSL_FIQA.md 8); a GPU wants more.
DEFAULT_MAX_BATCH = 8
ORT_CUDA = "CUDAExecutionProvider"
ORT_CPU = "CPUExecutionProvider"
TENSORRT_MISSING = (
    "TensorRT is not installed (the tensorrt package comes from NVIDIA's index; use the "
    "docker compose gpu profile)"
)


class BackendUnavailableError(RuntimeError):
    """The backend cannot run on this machine (not installed, no device); ``auto`` skips it."""


class BackendConfigError(ValueError):
    """A backend config this backend or device cannot honour; the message says what to change."""


def _check_common(name: str, max_batch: int, precision: str | None = None) -> None:
    if max_batch < 1:
        raise BackendConfigError(f"{name}: max_batch must be >= 1, got {max_batch}")
    if precision is not None and precision not in PRECISIONS:
        raise BackendConfigError(f"{name}: precision {precision!r}; choose one of {PRECISIONS}")


@dataclass(frozen=True, kw_only=True)
class TorchConfig:
    """PyTorch backend settings.

    Attributes:
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; ``fp16``/``bf16`` autocast on CUDA only (refused on a CPU).
        channels_last: CUDA only: NHWC memory layout for the model and inputs.
        compile: CUDA only: ``torch.compile`` the forward.
        cuda_graphs: CUDA only: capture one CUDA graph per batch size of
            ``graph_batch_sizes`` at open; a batch is padded to the next captured size and
            replayed; a batch above the largest runs eagerly.
        graph_batch_sizes: the captured sizes (crops); ``()`` = the powers of two below
            ``max_batch``, and ``max_batch`` (1, 2, 4, 8 by default). Needs ``cuda_graphs``.
        pinned_memory: CUDA only: host transfers go through page-locked staging buffers
            with ``non_blocking`` copies (no effect on a CPU, which transfers nothing).
        max_batch: crops per forward.
    """

    type: Literal["torch"] = "torch"
    device: str = "cpu"
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    graph_batch_sizes: tuple[int, ...] = ()
    pinned_memory: bool = True
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        _check_common("torch", self.max_batch, self.precision)
        if self.graph_batch_sizes and not self.cuda_graphs:
            raise BackendConfigError("torch: graph_batch_sizes needs cuda_graphs=True")
        bad = [b for b in self.graph_batch_sizes if not isinstance(b, int) or b < 1]
        if bad:
            raise BackendConfigError(f"torch: graph_batch_sizes must be ints >= 1, got {bad}")

    @property
    def graph_sizes(self) -> tuple[int, ...]:
        """The batch sizes captured with ``cuda_graphs``, ascending (``()`` without it)."""
        if not self.cuda_graphs:
            return ()
        return graph_buckets(self.max_batch, self.graph_batch_sizes)


def graph_buckets(max_batch: int, sizes: tuple[int, ...] = ()) -> tuple[int, ...]:
    """Ascending, distinct captured batch sizes: ``sizes``, or powers of two below
    ``max_batch`` and ``max_batch`` itself.

    >>> graph_buckets(8), graph_buckets(20), graph_buckets(4, (16, 1, 16))
    ((1, 2, 4, 8), (1, 2, 4, 8, 16, 20), (1, 16))
    """
    if sizes:
        return tuple(sorted(set(sizes)))
    out = [1 << i for i in range(max_batch.bit_length()) if 1 << i < max_batch]
    return (*out, max_batch)


@dataclass(frozen=True, kw_only=True)
class OnnxRuntimeConfig:
    """ONNX Runtime backend settings.

    Attributes:
        providers: execution providers in order; ``()`` = CUDA then CPU where this
            onnxruntime build has the CUDA provider (onnxruntime-gpu), else CPU.
        intra_op_threads: CPU threads per operator; ``None`` = ONNX Runtime decides.
        onnx_path: where the graph is exported from a torch source, and reused from when
            the file exists (its recorded variant is checked, its weights are not: delete
            the file after changing weights); ``None`` = a temporary file removed at close.
        max_batch: crops per run.
    """

    type: Literal["onnxruntime"] = "onnxruntime"
    providers: tuple[str, ...] = ()
    intra_op_threads: int | None = None
    onnx_path: str | None = None
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        _check_common("onnxruntime", self.max_batch)


@dataclass(frozen=True, kw_only=True)
class TensorRTConfig:
    """TensorRT backend settings (:mod:`engines.trt`; ``fqm engines build`` for more).

    Attributes:
        precision: builder precision.
        max_batch: the optimisation profile's maximum batch (profile 1..max, tuned for max).
        engine_cache: folder of built engines; ``None`` = ``$FQM_ENGINE_CACHE``, else
            ``$FQM_CACHE/engines`` (``~/.cache/fqm/engines``).
    """

    type: Literal["tensorrt"] = "tensorrt"
    precision: Precision = "fp16"
    max_batch: int = 32
    engine_cache: str | None = None

    def __post_init__(self) -> None:
        _check_common("tensorrt", self.max_batch, self.precision)


BackendConfig = TorchConfig | OnnxRuntimeConfig | TensorRTConfig
