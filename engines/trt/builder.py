"""Build a TensorRT 10 engine from the exported ONNX graph, once, into the engine cache.

TensorRT is imported inside the functions (:func:`require_tensorrt`), so this module imports
anywhere. The build: parse the ONNX file, one optimisation profile over the batch axis of
every input, the precision's builder flag (checked against this TensorRT and this GPU
first), the timing cache of this TensorRT version and GPU generation loaded before and saved
after, then ``build_serialized_network``.

Example:
    >>> config = BuildConfig(precision="fp16")
    >>> cached, built = ensure_engine("dslfiqa.onnx", config)  # doctest: +SKIP
    >>> cached.digest, built  # doctest: +SKIP
    ('5c0f9a...', True)
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from engines.backend_config import TENSORRT_MISSING
from engines.trt.cache import CachedEngine, EngineCache, EngineKey
from engines.trt.errors import TensorRTError, TensorRTMissingError
from engines.trt.interface import onnx_interface, onnx_variant, sha256_file
from engines.trt.profile import BUILDER_FLAGS, BuildConfig, check_precision

__all__ = [
    "TENSORRT_MISSING",
    "GpuInfo",
    "build_plan",
    "current_gpu",
    "engine_key",
    "ensure_engine",
    "require_tensorrt",
    "tensorrt_missing_reason",
]

log = logging.getLogger(__name__)


def tensorrt_missing_reason() -> str | None:
    """Why TensorRT cannot be imported here (cheap: does not import it), ``None`` if it can."""
    return TENSORRT_MISSING if importlib.util.find_spec("tensorrt") is None else None


def require_tensorrt() -> ModuleType:
    """The ``tensorrt`` module.

    Raises:
        TensorRTMissingError: it is not installed, or does not load.
    """
    reason = tensorrt_missing_reason()
    if reason:
        raise TensorRTMissingError(reason)
    try:
        import tensorrt
    except ImportError as exc:  # installed, but its libraries do not load
        raise TensorRTMissingError(f"TensorRT does not load: {exc}") from None
    return tensorrt


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for and runs on."""

    index: int
    name: str
    compute_capability: tuple[int, int]

    @property
    def cc(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def current_gpu(index: int | None = None) -> GpuInfo:
    """Name and compute capability of CUDA device ``index`` (default: torch's current one).

    Raises:
        TensorRTMissingError: no CUDA device is visible to torch.
    """
    import torch

    if not torch.cuda.is_available():
        raise TensorRTMissingError("TensorRT needs a CUDA device; none is visible to torch")
    index = torch.cuda.current_device() if index is None else index
    return GpuInfo(
        index, torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index)
    )


def engine_key(
    onnx_path: str | Path, config: BuildConfig, gpu: GpuInfo, tensorrt_version: str
) -> EngineKey:
    """The cache key of building ``onnx_path`` with ``config`` on ``gpu``."""
    return EngineKey(
        model_sha256=sha256_file(onnx_path),
        tensorrt_version=tensorrt_version,
        gpu_name=gpu.name,
        compute_capability=gpu.cc,
        precision=config.precision,
        profile=config.profile,
    )


def _flag_names(trt: ModuleType) -> set[str]:
    return {name for name in BUILDER_FLAGS.values() if hasattr(trt.BuilderFlag, name)}


def build_plan(
    onnx_path: str | Path,
    config: BuildConfig,
    gpu: GpuInfo,
    timing_cache: bytes = b"",
) -> tuple[bytes, bytes]:
    """Build a serialized engine; return ``(plan, updated timing cache)``.

    Raises:
        TensorRTMissingError: no TensorRT.
        PrecisionError: the precision is not available on this TensorRT or GPU.
        TensorRTError: the parser or the builder failed (their messages included).
    """
    trt = require_tensorrt()
    check_precision(config.precision, gpu.compute_capability, _flag_names(trt), gpu.name)
    interface = onnx_interface(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT could not parse {onnx_path}: {errors}")
    builder_config = builder.create_builder_config()
    if config.workspace_mib is not None:
        builder_config.set_memory_pool_limit(
            trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20
        )
    flag = BUILDER_FLAGS.get(config.precision)
    if flag is not None:
        builder_config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    p = config.profile
    for spec in interface.inputs:
        profile.set_shape(spec.name, (p.min, *spec.dims), (p.opt, *spec.dims), (p.max, *spec.dims))
    builder_config.add_optimization_profile(profile)
    cache = builder_config.create_timing_cache(timing_cache)
    builder_config.set_timing_cache(cache, False)  # a mismatched cache is refused, not used
    log.info(
        "building a %s TensorRT engine for %s (profile %s)", config.precision, onnx_path, p.label
    )
    plan = builder.build_serialized_network(network, builder_config)
    if plan is None:
        raise TensorRTError(
            f"TensorRT could not build {onnx_path} ({config.precision}, profile {p.label}); "
            "rerun with -v for the builder's log"
        )
    return bytes(plan), bytes(builder_config.get_timing_cache().serialize())


def ensure_engine(
    onnx_path: str | Path,
    config: BuildConfig,
    cache: EngineCache | None = None,
    *,
    source: str | None = None,
    force: bool = False,
) -> tuple[CachedEngine, bool]:
    """The cached engine for ``onnx_path`` and ``config`` on this GPU, built if missing.

    Returns:
        ``(entry, built)``: ``built`` is False when the cache already had it.
    """
    trt = require_tensorrt()
    gpu = current_gpu()
    cache = cache or EngineCache()
    key = engine_key(onnx_path, config, gpu, trt.__version__)
    if not force and (hit := cache.lookup(key)) is not None:
        log.info("TensorRT engine %s found in %s", key.digest, cache.root)
        return hit, False
    timing_path = cache.timing_cache_path(trt.__version__, gpu.cc)
    timing = timing_path.read_bytes() if timing_path.is_file() else b""
    plan, timing = build_plan(onnx_path, config, gpu, timing)
    cache.write_timing_cache(timing_path, timing)
    if force and cache.lookup(key) is not None:
        cache.remove(key.digest)
    entry = cache.store(
        key,
        plan,
        source=str(source or onnx_path),
        variant=onnx_variant(onnx_path),
        interface=onnx_interface(onnx_path),
    )
    return entry, True
