"""The ``tensorrt`` backend of ``open_engine``: ONNX -> cached engine -> runtime.

A weights folder is exported once to ``<cache>/onnx/<folder digest>.onnx`` (the digest covers
the folder's file names and bytes, so new weights export again), then the engine for that
graph, precision, profile and GPU is taken from the cache or built into it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from engines.trt.builder import ensure_engine, require_tensorrt
from engines.trt.cache import EngineCache
from engines.trt.profile import BatchProfile, BuildConfig

__all__ = ["folder_digest", "open_tensorrt", "prepare_onnx"]


def folder_digest(folder: str | Path) -> str:
    """sha256 over a folder's relative file names and bytes (24 hex digits)."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def prepare_onnx(source: Any, cache: EngineCache, variant: Any = None) -> Path:
    """The ONNX file of ``source``: itself, a cached export of a weights folder, or a fresh
    export of a module (``DslFiqa`` or ``LoadedModel``) into a temporary folder."""
    if isinstance(source, str | os.PathLike) and Path(source).suffix == ".onnx":
        return Path(source)
    from engines.export import export_onnx

    if isinstance(source, str | os.PathLike):
        from engines.weights import load_weights_dir

        target = cache.root / "onnx" / f"{folder_digest(source)}.onnx"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            model = load_weights_dir(source, device="cpu", variant=variant).model
            tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
            export_onnx(model, tmp)
            os.replace(tmp, target)
        return target
    model = getattr(source, "model", source).to("cpu")
    path = Path(tempfile.mkdtemp(prefix="fqm-trt-")) / "model.onnx"
    export_onnx(model, path)
    return path


def open_tensorrt(source: Any, config: Any, mode: str, seed: Any, variant: Any) -> Any:
    """Open a :class:`~engines.trt.runtime.TensorRTFaceEngine` for a ``TensorRTConfig``."""
    require_tensorrt()
    from engines.trt.builder import current_gpu
    from engines.trt.runtime import TensorRTFaceEngine

    current_gpu()  # no CUDA device: fail before exporting anything
    cache = EngineCache(config.engine_cache)
    onnx_path = prepare_onnx(source, cache, variant)
    build = BuildConfig(precision=config.precision, profile=BatchProfile.up_to(config.max_batch))
    entry, _ = ensure_engine(onnx_path, build, cache, source=str(source))
    return TensorRTFaceEngine(entry, mode=mode, seed=seed, variant=variant)
