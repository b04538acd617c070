"""The backend registry: which runtimes can score faces, their typed configs, and ``auto``.

Each backend is an entry of :data:`BACKENDS` (an explicit dict): a name, a frozen config
class with a ``type`` literal, a probe that says why it cannot run here (without loading a
model), and an opener that returns a warmed-up :class:`~engines.quality_engine.QualityEngine`.

=============  =====================  ==================================================
name           config                 runs
=============  =====================  ==================================================
tensorrt       :class:`TensorRTConfig`  a cached TensorRT 10 engine (:mod:`engines.trt`)
torch          :class:`TorchConfig`   ``DslFiqa`` on CPU or CUDA (fp16/bf16 autocast: CUDA)
onnxruntime    :class:`OnnxRuntimeConfig`  the exported graph; CUDA provider when installed
=============  =====================  ==================================================

``open_engine(source, backend="auto")`` tries, in :data:`AUTO_ORDER`, TensorRT, torch on
CUDA, ONNX Runtime, torch on CPU, opens the first that can run, and records on the engine
(``engine.selection``) what it tried and why each was skipped. This module imports neither
torch nor onnxruntime until a backend is probed or opened.

Example:
    >>> engine = open_engine("ckpt/GFIQA", backend="auto", mode="center")  # doctest: +SKIP
    >>> engine.selection  # doctest: +SKIP
    'auto chose onnxruntime (CPUExecutionProvider); skipped: tensorrt: TensorRT is not ...'
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np

from engines.dslfiqa.variants import ModelVariant, get_variant

if TYPE_CHECKING:
    from engines.dslfiqa.model import DslFiqa
    from engines.quality_engine import QualityEngine
    from engines.weights import LoadedModel

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "BackendConfig",
    "BackendConfigError",
    "BackendUnavailableError",
    "OnnxRuntimeConfig",
    "TensorRTConfig",
    "TorchConfig",
    "choose_backend",
    "graph_buckets",
    "list_backends",
    "open_engine",
]

log = logging.getLogger(__name__)

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

# What open_engine accepts: a module, a loaded weights folder, or a path (a weights folder
# for every backend, an .onnx file for onnxruntime only).
Source = Union["DslFiqa", "LoadedModel", str, os.PathLike[str]]


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


@dataclass(frozen=True)
class Backend:
    """One registry entry.

    Attributes:
        name: registry key.
        config_type: its config class.
        description: one line for listings.
        probe: ``probe(config)`` -> why it cannot run here, ``None`` when it can; cheap
            (imports the runtime, loads no model).
        open: ``open(source, config, mode, seed, variant)`` -> a warmed-up engine.
    """

    name: str
    config_type: type
    description: str
    probe: Callable[[Any], str | None] = field(repr=False)
    open: Callable[..., QualityEngine] = field(repr=False)


# ---------------------------------------------------------------- sources


def _is_onnx_file(source: Any) -> bool:
    return isinstance(source, str | os.PathLike) and Path(source).suffix == ".onnx"


def _torch_model(source: Source, device: str, variant: str | ModelVariant | None) -> DslFiqa:
    """The DslFiqa module of ``source``, on ``device``."""
    from engines.dslfiqa.model import DslFiqa
    from engines.weights import LoadedModel, load_weights_dir

    if isinstance(source, DslFiqa):
        return source.to(device)
    if isinstance(source, LoadedModel):
        return source.model.to(device)
    if _is_onnx_file(source):
        raise BackendUnavailableError(
            f"torch cannot run the ONNX file {source}; pass the weights folder or the model"
        )
    return load_weights_dir(source, device=device, variant=variant).model


def _source_variant(source: Any, variant: str | ModelVariant | None) -> ModelVariant | None:
    if variant is not None:
        return get_variant(variant)
    config = getattr(getattr(source, "model", source), "config", None)
    if config is None:
        return None
    from engines.dslfiqa.variants import variant_for_config

    return variant_for_config(config)


# ---------------------------------------------------------------- torch


def _probe_torch(config: TorchConfig) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    from engines.weights import DeviceError, check_device

    try:
        device = check_device(config.device)
    except DeviceError as exc:
        return str(exc)
    from engines.runtimes.torch import check_torch_config

    try:
        check_torch_config(config, device)
    except BackendConfigError as exc:
        return str(exc)
    return None


def _open_torch(
    source: Source,
    config: TorchConfig,
    mode: str,
    seed: int | np.random.RandomState | None,
    variant: str | ModelVariant | None,
) -> QualityEngine:
    from engines.runtimes.torch import TorchQualityEngine, check_torch_config
    from engines.weights import DeviceError, check_device

    try:
        device = check_device(config.device)
    except DeviceError as exc:
        raise BackendUnavailableError(str(exc)) from None
    check_torch_config(config, device)  # before loading any weights
    model = _torch_model(source, str(device), variant)
    chosen = _source_variant(model, variant)
    return TorchQualityEngine(model, config, mode=mode, seed=seed, variant=chosen)


# ---------------------------------------------------------------- onnxruntime


def ort_providers(config: OnnxRuntimeConfig) -> tuple[str, ...]:
    """The providers a session gets: the configured ones, else CUDA (if built in) then CPU."""
    if config.providers:
        return config.providers
    import onnxruntime as ort

    return (ORT_CUDA, ORT_CPU) if ORT_CUDA in ort.get_available_providers() else (ORT_CPU,)


def _probe_ort(config: OnnxRuntimeConfig) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    import onnxruntime as ort

    available = ort.get_available_providers()
    missing = [p for p in ort_providers(config) if p not in available]
    if missing:
        return f"providers {missing} are not in this onnxruntime build (available: {available})"
    return None


def _open_ort(
    source: Source,
    config: OnnxRuntimeConfig,
    mode: str,
    seed: int | np.random.RandomState | None,
    variant: str | ModelVariant | None,
) -> QualityEngine:
    reason = _probe_ort(config)
    if reason:
        raise BackendUnavailableError(f"onnxruntime: {reason}")
    from engines.runtimes.onnxruntime import OrtFaceEngine

    temp_dir: str | None = None
    if _is_onnx_file(source):
        path = Path(source)  # type: ignore[arg-type]
    else:
        if importlib.util.find_spec("onnx") is None:
            raise BackendUnavailableError("onnxruntime: exporting needs the onnx package")
        from engines.export import export_onnx

        if config.onnx_path is not None:
            path = Path(config.onnx_path)
        else:
            temp_dir = tempfile.mkdtemp(prefix="fqm-onnx-")
            path = Path(temp_dir) / "model.onnx"
        if not path.is_file():
            model = _torch_model(source, "cpu", variant)
            log.info("exporting %s to %s for onnxruntime", type(model).__name__, path)
            export_onnx(model, path)
    try:
        return OrtFaceEngine(
            path,
            providers=ort_providers(config),
            intra_op_threads=config.intra_op_threads,
            max_batch=config.max_batch,
            mode=mode,
            seed=seed,
            variant=variant,
            on_close=(lambda: shutil.rmtree(temp_dir, ignore_errors=True)) if temp_dir else None,
        )
    except BaseException:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise


# ---------------------------------------------------------------- tensorrt (engines/trt)


def _probe_tensorrt(config: TensorRTConfig) -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return TENSORRT_MISSING
    if importlib.util.find_spec("torch") is None:
        return "the TensorRT runtime shares CUDA buffers with torch, which is not installed"
    import torch

    return None if torch.cuda.is_available() else "TensorRT needs a CUDA device; none is visible"


def _open_tensorrt(
    source: Source,
    config: TensorRTConfig,
    mode: str,
    seed: int | np.random.RandomState | None,
    variant: str | ModelVariant | None,
) -> QualityEngine:
    if importlib.util.find_spec("tensorrt") is None:
        raise BackendUnavailableError(TENSORRT_MISSING)
    from engines.trt.backend import open_tensorrt  # imports tensorrt only when opening

    return open_tensorrt(source, config, mode, seed, variant)


# ---------------------------------------------------------------- registry


BACKENDS: dict[str, Backend] = {
    "tensorrt": Backend(
        "tensorrt",
        TensorRTConfig,
        "TensorRT 10 engine built once from the ONNX graph into the engine cache",
        _probe_tensorrt,
        _open_tensorrt,
    ),
    "torch": Backend(
        "torch",
        TorchConfig,
        "PyTorch DslFiqa module on CPU or CUDA (fp16/bf16 autocast on CUDA)",
        _probe_torch,
        _open_torch,
    ),
    "onnxruntime": Backend(
        "onnxruntime",
        OnnxRuntimeConfig,
        "ONNX Runtime on the exported graph (CPU; CUDA with onnxruntime-gpu)",
        _probe_ort,
        _open_ort,
    ),
}

# What auto tries, in order: (label, backend name, config).
AUTO_ORDER: tuple[tuple[str, str, BackendConfig], ...] = (
    ("tensorrt", "tensorrt", TensorRTConfig()),
    ("torch cuda", "torch", TorchConfig(device="cuda")),
    ("onnxruntime", "onnxruntime", OnnxRuntimeConfig()),
    ("torch cpu", "torch", TorchConfig(device="cpu")),
)


def list_backends() -> list[str]:
    """Registered backend names, in registry order."""
    return list(BACKENDS)


def _backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendConfigError(
            f"unknown backend {name!r}; choose auto or one of {', '.join(BACKENDS)}"
        ) from None


def _describe(label: str, config: BackendConfig) -> str:
    if isinstance(config, OnnxRuntimeConfig):
        return f"{label} ({', '.join(ort_providers(config))})"
    return label


def choose_backend(source: Any = None) -> tuple[list[tuple[str, BackendConfig]], list[str]]:
    """The auto candidates that can run here, in order, and why the others were skipped.

    Returns:
        ``(candidates, skipped)``: ``[(label, config)]`` and ``["label: reason"]``.
    """
    candidates: list[tuple[str, BackendConfig]] = []
    skipped: list[str] = []
    for label, name, config in AUTO_ORDER:
        if name == "torch" and _is_onnx_file(source):
            skipped.append(f"{label}: the source is an ONNX file")
            continue
        reason = BACKENDS[name].probe(config)
        if reason is None:
            candidates.append((label, config))
        else:
            skipped.append(f"{label}: {reason}")
    return candidates, skipped


def open_engine(
    source: Source,
    backend: str = "auto",
    *,
    mode: str = "center",
    config: BackendConfig | None = None,
    seed: int | np.random.RandomState | None = None,
    variant: str | ModelVariant | None = None,
) -> QualityEngine:
    """Open a warmed-up quality engine on ``backend`` (``auto``: the best that runs here).

    Args:
        source: a ``DslFiqa`` module (moved to the backend's device), a ``LoadedModel``, a
            weights folder, or an ``.onnx`` file (onnxruntime only).
        backend: ``auto``, ``tensorrt``, ``torch`` or ``onnxruntime``.
        mode: default crop mode (``official``, ``fixed5``, ``center``).
        config: the backend's config (its default when ``None``); not with ``auto``.
        seed: ``official`` crops: an int or a RandomState the engine draws from.
        variant: the variant the weights must be; ``None`` = recognised from the source.

    Returns:
        The engine; ``engine.selection`` says how the backend was chosen.

    Raises:
        BackendUnavailableError: the backend cannot run here (auto: none could).
        BackendConfigError: an unknown backend, a config of another backend, or settings
            this device cannot honour.
    """
    if backend != "auto":
        entry = _backend(backend)
        config = config if config is not None else entry.config_type()
        if not isinstance(config, entry.config_type):
            raise BackendConfigError(
                f"backend {backend!r} takes a {entry.config_type.__name__}, "
                f"got a {type(config).__name__}"
            )
        engine = entry.open(source, config, mode, seed, variant)
        engine.selection = f"{backend} requested"  # type: ignore[misc]
        return engine
    if config is not None:
        raise BackendConfigError(
            "backend='auto' chooses its own configs; pass backend=<name> with a config"
        )
    candidates, skipped = choose_backend(source)
    for label, cfg in candidates:
        try:
            engine = BACKENDS[cfg.type].open(source, cfg, mode, seed, variant)
        except BackendUnavailableError as exc:
            skipped.append(f"{label}: {exc}")
            continue
        engine.selection = (  # type: ignore[misc]
            f"auto chose {_describe(label, cfg)}; skipped: {'; '.join(skipped) or 'none'}; "
            f"order: {' > '.join(lbl for lbl, _, _ in AUTO_ORDER)}"
        )
        log.info("%s", engine.selection)
        return engine
    raise BackendUnavailableError(f"no backend can run here: {'; '.join(skipped)}")
