"""PyTorch backend: a :class:`~engines.dslfiqa.model.DslFiqa` behind the QualityEngine interface.

fp32 runs everywhere. fp16 and bf16 are autocast on CUDA only: on a CPU they are refused
(CPU autocast would run, slower and less precise than fp32, which helps no one). On CUDA,
``channels_last`` converts the model and inputs (it only touches the two convolutions'
memory layout) and ``compile`` wraps the forward in ``torch.compile``; both are plain torch
calls, not yet measured on a GPU. ``cuda_graphs`` (capture per fixed batch size) is not
implemented yet and is refused with that reason. See docs/engines.md.

Example:
    >>> engine = TorchQualityEngine(model, TorchConfig(), mode="center")  # doctest: +SKIP
    >>> engine.score_faces(faces, landmarks).scores  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from engines.backends import BackendConfigError, TorchConfig
from engines.dslfiqa.model import DslFiqa
from engines.dslfiqa.preprocess import NUM_LANDMARK
from engines.dslfiqa.variants import ModelVariant, variant_for_config
from engines.quality_engine import CropEngine, EngineInfo, check_mode, make_rng
from engines.weights import check_device

AUTOCAST_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


def check_torch_config(config: TorchConfig, device: torch.device) -> None:
    """Refuse what this device cannot do, saying what to use instead.

    Raises:
        BackendConfigError: fp16/bf16, channels_last or compile on a CPU; cuda_graphs anywhere.
    """
    if device.type != "cuda":
        gpu_only = [
            name
            for name, on in (
                (f"precision={config.precision}", config.precision != "fp32"),
                ("channels_last", config.channels_last),
                ("compile", config.compile),
                ("cuda_graphs", config.cuda_graphs),
            )
            if on
        ]
        if gpu_only:
            raise BackendConfigError(
                f"torch on {device}: {', '.join(gpu_only)} need a CUDA device; use "
                "precision='fp32' with channels_last, compile and cuda_graphs off on a CPU"
            )
    if config.cuda_graphs:
        raise BackendConfigError(
            "torch: cuda_graphs (capture per fixed batch size) is not implemented yet; "
            "set cuda_graphs=False"
        )


class TorchQualityEngine(CropEngine):
    """Score faces with a DslFiqa module on CPU or CUDA.

    Args:
        model: the module (moved to ``config.device``; left in eval mode).
        config: device, precision and GPU options.
        mode: default crop mode.
        seed: the ``official`` crops' RandomState (int or state); continues across calls.
        variant: the input contract; ``None`` = the registered one for ``model.config``.
        warmup: run one crop of zeros, so kernel selection does not land on the first face.
    """

    backend_name = "torch"

    def __init__(
        self,
        model: DslFiqa,
        config: TorchConfig | None = None,
        *,
        mode: str = "center",
        seed: int | np.random.RandomState | None = None,
        variant: ModelVariant | None = None,
        warmup: bool = True,
    ):
        self.config = config or TorchConfig()
        self.device = check_device(self.config.device)
        check_torch_config(self.config, self.device)
        self.variant = variant or variant_for_config(model.config)
        check_mode(self.variant, mode)
        self.model = model.to(self.device).eval()
        if self.config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._forward: Any = torch.compile(self.model) if self.config.compile else self.model
        self.max_batch = self.config.max_batch
        self._rng = make_rng(seed)
        self.info = EngineInfo(
            variant=self.variant.name,
            mode=mode,
            backend=self.backend_name,
            device=str(self.device),
            precision=self.config.precision,
        )
        if warmup:
            c = self.variant.crop_size
            self.score_crops(
                np.zeros((1, 3, c, c), np.float32), np.zeros((1, NUM_LANDMARK), np.float32)
            )

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = AUTOCAST_DTYPES.get(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=dtype)

    def score_crops(self, crops: Any, landmark_vectors: Any) -> np.ndarray:
        """Prepared crops [B,3,S,S] float32 in [-1,1] + vectors [B,500] -> float32 [B] (numpy)."""
        if self._forward is None:
            raise RuntimeError("this torch engine is closed; open a new one with open_engine")
        x = torch.as_tensor(crops, dtype=torch.float32)
        lm = torch.as_tensor(landmark_vectors, dtype=torch.float32)
        c = self.variant.crop_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, c, c):
            raise ValueError(f"crops must be [B,3,{c},{c}], got {tuple(x.shape)}")
        if tuple(lm.shape) != (x.shape[0], NUM_LANDMARK):
            raise ValueError(
                f"landmark_vectors must be [{x.shape[0]},{NUM_LANDMARK}], got {tuple(lm.shape)}"
            )
        non_blocking = self.device.type == "cuda"
        if non_blocking:
            x, lm = x.pin_memory(), lm.pin_memory()
        x = x.to(self.device, non_blocking=non_blocking)
        lm = lm.to(self.device, non_blocking=non_blocking)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            out = self._forward(x, lm)
        return out.float().cpu().numpy()

    def close(self) -> None:
        """Drop the reference to the module (device memory goes with the last reference)."""
        self._forward = None
