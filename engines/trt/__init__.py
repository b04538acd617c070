"""TensorRT 10 engines: build from the exported ONNX graph, cache, run, export for Triton.

Importable without TensorRT or torch: ``tensorrt`` is imported inside the functions that
build or run an engine, torch inside those that touch a GPU.

==================  ==============================================================
module              job
==================  ==============================================================
``profile``         :class:`BatchProfile`, :class:`BuildConfig`, precision and shape checks
``interface``       the graph's inputs/outputs read from the ONNX file, its sha256
``cache``           :class:`EngineCache`: :class:`EngineKey` -> ``<root>/<digest>/``
``builder``         :func:`ensure_engine`: ONNX -> plan (profile, precision, timing cache)
``runtime``         :class:`TensorRTFaceEngine` on torch's CUDA stream
``triton``          :func:`write_model_repository`: config.pbtxt + model.plan/model.onnx
``backend``         the ``tensorrt`` entry of :mod:`engines.backends`
==================  ==============================================================
"""

from engines.trt.cache import CachedEngine, EngineCache, EngineKey, default_cache_dir
from engines.trt.errors import (
    EngineCacheError,
    PrecisionError,
    ProfileError,
    ShapeError,
    TensorRTError,
    TensorRTMissingError,
)
from engines.trt.profile import TRT_PRECISIONS, BatchProfile, BuildConfig

__all__ = [
    "TRT_PRECISIONS",
    "BatchProfile",
    "BuildConfig",
    "CachedEngine",
    "EngineCache",
    "EngineCacheError",
    "EngineKey",
    "PrecisionError",
    "ProfileError",
    "ShapeError",
    "TensorRTError",
    "TensorRTMissingError",
    "default_cache_dir",
]
