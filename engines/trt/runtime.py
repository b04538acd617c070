"""Run a cached TensorRT engine on torch's CUDA stream, with buffers shared with torch.

Inputs and the output are torch CUDA tensors: their data pointers are handed to the
execution context (``set_tensor_address``) and the engine is enqueued on
``torch.cuda.current_stream()`` with ``execute_async_v3``, so work stays ordered with the
caller's torch kernels and CUDA tensors never visit the host. :meth:`TensorRTRunner.run`
returns the output on the device; :class:`TensorRTFaceEngine` is the
:class:`~engines.quality_engine.QualityEngine` (its ``score_crops`` copies the scores, one
float per crop, back to numpy as the protocol asks).

Shapes are checked before anything is enqueued (:func:`~engines.trt.profile.check_input_shapes`),
against the interface and profile recorded in the cache manifest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.dslfiqa.variants import ModelVariant, get_variant
from engines.quality_engine import CropEngine, EngineInfo, check_mode, make_rng
from engines.runtimes import INPUT_NAMES, OUTPUT_NAMES
from engines.trt.builder import current_gpu, require_tensorrt
from engines.trt.cache import CachedEngine
from engines.trt.errors import EngineCacheError, ShapeError, TensorRTError
from engines.trt.profile import check_input_shapes

__all__ = ["TensorRTFaceEngine", "TensorRTRunner"]

TORCH_DTYPES = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "int32": "int32",
}


class TensorRTRunner:
    """A deserialized engine and one execution context on one CUDA device.

    Args:
        entry: the cache entry (its manifest gives the interface and the profile).
    """

    def __init__(self, entry: CachedEngine):
        if entry.interface is None:
            raise EngineCacheError(f"{entry.path}: the manifest records no graph interface")
        trt = require_tensorrt()
        gpu = current_gpu()
        if (gpu.name, gpu.cc) != (entry.key.gpu_name, entry.key.compute_capability):
            raise EngineCacheError(
                f"engine {entry.digest} was built for {entry.key.gpu_name} (sm "
                f"{entry.key.compute_capability}), this is {gpu.name} (sm {gpu.cc}); build it here"
            )
        if trt.__version__ != entry.key.tensorrt_version:
            raise EngineCacheError(
                f"engine {entry.digest} was built by TensorRT {entry.key.tensorrt_version}, "
                f"this is {trt.__version__}; build it again"
            )
        import torch

        self.entry = entry
        self.interface = entry.interface
        self.profile = entry.key.profile
        self.device = torch.device("cuda", gpu.index)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(entry.plan_path.read_bytes())
        if self._engine is None:
            raise TensorRTError(f"TensorRT could not load {entry.plan_path}; build it again")
        self._context = self._engine.create_execution_context()
        names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        expected = {t.name for t in (*self.interface.inputs, *self.interface.outputs)}
        if names != expected:
            raise EngineCacheError(
                f"engine {entry.digest} has tensors {sorted(names)}, its manifest "
                f"{sorted(expected)}; build it again"
            )

    def run(self, **inputs: Any) -> dict[str, Any]:
        """Run one batch; inputs by name (torch tensors, any device; moved and made
        contiguous in the engine's dtype). Returns the outputs as torch CUDA tensors.

        Raises:
            ShapeError: names, shapes or batch do not fit the engine.
        """
        import torch

        batch = check_input_shapes(
            {name: tuple(value.shape) for name, value in inputs.items()},
            self.interface.input_dims(),
            self.profile,
        )
        keep = []  # tensors whose memory the engine reads or writes until it has run
        for spec in self.interface.inputs:
            dtype = getattr(torch, TORCH_DTYPES[spec.dtype])
            value = torch.as_tensor(inputs[spec.name]).to(self.device, dtype).contiguous()
            if not self._context.set_input_shape(spec.name, tuple(value.shape)):
                raise ShapeError(f"TensorRT refused the shape {list(value.shape)} of {spec.name!r}")
            self._context.set_tensor_address(spec.name, value.data_ptr())
            keep.append(value)
        outputs = {}
        for spec in self.interface.outputs:
            dtype = getattr(torch, TORCH_DTYPES[spec.dtype])
            out = torch.empty((batch, *spec.dims), dtype=dtype, device=self.device)
            self._context.set_tensor_address(spec.name, out.data_ptr())
            outputs[spec.name] = out
        stream = torch.cuda.current_stream(self.device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise TensorRTError(f"TensorRT engine {self.entry.digest} failed to run")
        for value in keep:
            value.record_stream(stream)
        return outputs

    def close(self) -> None:
        self._context = None
        self._engine = None


class TensorRTFaceEngine(CropEngine):
    """The QualityEngine of a cached TensorRT engine (crops prepared by ``CropEngine``).

    Args:
        entry: the cache entry; its manifest records the model variant.
        mode: default crop mode.
        seed: ``official`` crops: the engine's RandomState seed.
        variant: the variant the engine must be; ``None`` = the one recorded.
    """

    def __init__(
        self,
        entry: CachedEngine,
        *,
        mode: str = "center",
        seed: int | np.random.RandomState | None = None,
        variant: str | ModelVariant | None = None,
    ):
        if entry.interface is None or [t.name for t in entry.interface.inputs] != list(INPUT_NAMES):
            raise EngineCacheError(
                f"engine {entry.digest} does not take the inputs {INPUT_NAMES} of export_onnx"
            )
        recorded = get_variant(entry.variant) if entry.variant else None
        chosen = get_variant(variant) if variant is not None else recorded
        if chosen is None:
            raise EngineCacheError(f"engine {entry.digest} records no model variant; pass variant=")
        if recorded is not None and chosen.name != recorded.name:
            raise EngineCacheError(
                f"engine {entry.digest} was built from variant {recorded.name!r}, "
                f"not {chosen.name!r}"
            )
        self.runner = TensorRTRunner(entry)
        self.variant = chosen
        check_mode(chosen, mode)
        self.max_batch = entry.key.profile.max
        self._rng = make_rng(seed)
        self.info = EngineInfo(
            variant=chosen.name,
            mode=mode,
            backend="tensorrt",
            device=str(self.runner.device),
            precision=entry.key.precision,
        )
        self._names = INPUT_NAMES
        self._output = OUTPUT_NAMES[0]
        self.score_crops(*self._zeros(entry.key.profile.min))  # warm-up

    def _zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        return tuple(  # type: ignore[return-value]
            np.zeros((batch, *t.dims), np.float32) for t in self.runner.interface.inputs
        )

    def score_crops(self, crops: Any, landmark_vectors: Any) -> np.ndarray:
        """Crops [B,3,S,S] + vectors [B,500] (numpy or torch, any device) -> float32 [B]."""
        import torch

        out = self.runner.run(
            **{
                self._names[0]: torch.as_tensor(crops),
                self._names[1]: torch.as_tensor(landmark_vectors),
            }
        )[self._output]
        return out.float().cpu().numpy().reshape(-1)

    def close(self) -> None:
        self.runner.close()
