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
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from engines.backend_config import (
    DEFAULT_MAX_BATCH,
    ORT_CPU,
    ORT_CUDA,
    PRECISIONS,
    TENSORRT_MISSING,
    BackendConfig,
    BackendConfigError,
    BackendUnavailableError,
    OnnxRuntimeConfig,
    Precision,
    TensorRTConfig,
    TorchConfig,
    graph_buckets,
)
from engines.dslfiqa.variants import ModelVariant, get_variant

if TYPE_CHECKING:
    from engines.dslfiqa.model import DslFiqa
    from engines.quality_engine import QualityEngine
    from engines.weights import LoadedModel

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "DEFAULT_MAX_BATCH",
    "ORT_CPU",
    "ORT_CUDA",
    "PRECISIONS",
    "TENSORRT_MISSING",
    "Backend",
    "BackendConfig",
    "BackendConfigError",
    "BackendUnavailableError",
    "OnnxRuntimeConfig",
    "Precision",
    "TensorRTConfig",
    "TorchConfig",
    "choose_backend",
    "graph_buckets",
    "list_backends",
    "open_engine",
]

log = logging.getLogger(__name__)

# What open_engine accepts: a module, a loaded weights folder, or a path (a weights folder
# for every backend, an .onnx file for onnxruntime only).
Source = Union["DslFiqa", "LoadedModel", str, os.PathLike[str]]


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
    from engines.dslfiqa.lite import DslFiqaLite
    from engines.dslfiqa.model import DslFiqa
    from engines.weights import LoadedModel, load_weights_dir

    if isinstance(source, DslFiqa | DslFiqaLite):  # one interface: forward(crops, landmarks)
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
