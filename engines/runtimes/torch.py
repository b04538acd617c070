"""PyTorch backend: a :class:`~engines.dslfiqa.model.DslFiqa` behind the QualityEngine interface.

fp32 runs everywhere. fp16 and bf16 are autocast on CUDA only: on a CPU they are refused
(CPU autocast would run, slower and less precise than fp32, which helps no one), and so are
the other CUDA options. On CUDA:

- ``channels_last`` converts the model and the device input buffers to NHWC (it only
  touches the two convolutions' memory layout);
- ``compile`` wraps the forward in ``torch.compile`` (``dynamic=False``: one graph per
  batch size);
- ``pinned_memory`` (default on) stages inputs and scores in page-locked host buffers and
  copies them with ``non_blocking=True``, into device buffers allocated once;
- ``cuda_graphs`` captures one CUDA graph per batch size of ``TorchConfig.graph_sizes`` at
  open (torch's documented recipe: warm-up on a side stream, ``torch.cuda.graph`` into
  static input/output buffers, one memory pool shared by all sizes, largest captured first),
  pads a batch to the next captured size and replays it; a batch above the largest runs
  eagerly. Autocast runs inside the capture with its weight cache off, as torch asks.

Nothing here has run on a GPU in CI; ``python -m engines.gpu_check`` checks parity and
speed where one is (docs/engines.md).

Example:
    >>> engine = TorchQualityEngine(model, TorchConfig(), mode="center")  # doctest: +SKIP
    >>> engine.score_faces(faces, landmarks).scores  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engines.backend_config import BackendConfigError, TorchConfig
from engines.dslfiqa.model import DslFiqa
from engines.dslfiqa.preprocess import NUM_LANDMARK
from engines.dslfiqa.variants import ModelVariant, variant_for_config
from engines.quality_engine import CropEngine, EngineInfo, check_mode, make_rng
from engines.weights import check_device

AUTOCAST_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: Forwards run on the side stream before a capture (torch's examples use 3 or more).
GRAPH_WARMUP_ITERS = 3

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_torch_config(config: TorchConfig, device: torch.device) -> None:
    """Refuse what this device cannot do, saying what to use instead.

    Raises:
        BackendConfigError: fp16/bf16, channels_last, compile or cuda_graphs on a CPU.
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


# ---------------------------------------------------------------- CUDA graphs and staging


Capture = Callable[
    [Forward, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Callable[[], None]]
]


def capture_cuda_graph(
    forward: Forward, crops: torch.Tensor, landmarks: torch.Tensor, pool: Any
) -> tuple[torch.Tensor, Callable[[], None]]:
    """Capture ``forward(crops, landmarks)`` into a CUDA graph (torch's documented recipe).

    Warm-up forwards run on a side stream (cuDNN/cuBLAS pick their kernels and workspaces
    outside the capture), then ``torch.cuda.graph`` records one forward into ``pool``.

    Returns:
        The static output tensor (rewritten by every replay) and the replay function.
    """
    device = crops.device
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_ITERS):
            forward(crops, landmarks)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        scores = forward(crops, landmarks)
    return scores, graph.replay


def capture_eager(
    forward: Forward, crops: torch.Tensor, landmarks: torch.Tensor, pool: Any
) -> tuple[torch.Tensor, Callable[[], None]]:
    """The same static-buffer contract without a graph: ``replay`` reruns the forward into
    the static output. For CPU tests of the padding and bucket logic."""
    del pool
    scores = forward(crops, landmarks).clone()

    def replay() -> None:
        scores.copy_(forward(crops, landmarks))

    return scores, replay


@dataclass
class CapturedBatch:
    """One captured batch size: its static buffers and its replay."""

    size: int
    crops: torch.Tensor
    landmarks: torch.Tensor
    scores: torch.Tensor
    replay: Callable[[], None]


class GraphSet:
    """One captured forward per batch size, replayed on a batch padded to the next size.

    Args:
        forward: crops [B,3,S,S] + vectors [B,500] on the device -> float32 scores [B].
        sizes: the batch sizes to capture.
        new_inputs: ``new_inputs(b)`` -> zeroed static crops and vectors of batch ``b``.
        capture: :func:`capture_cuda_graph` (or :func:`capture_eager` in tests).
        pool: the memory pool every capture shares (``torch.cuda.graph_pool_handle()``).
            The largest size is captured first, so the smaller graphs reuse its blocks.
            Sharing is safe because replays never overlap: each one's scores are copied
            out before the next replay (the engine holds a lock).
    """

    def __init__(
        self,
        forward: Forward,
        sizes: tuple[int, ...],
        new_inputs: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
        capture: Capture = capture_cuda_graph,
        pool: Any = None,
    ):
        if not sizes:
            raise ValueError("GraphSet needs at least one batch size")
        self.sizes: tuple[int, ...] = tuple(sorted(set(sizes)))
        self.batches: dict[int, CapturedBatch] = {}
        self.replays = 0
        for size in reversed(self.sizes):
            crops, landmarks = new_inputs(size)
            scores, replay = capture(forward, crops, landmarks, pool)
            self.batches[size] = CapturedBatch(size, crops, landmarks, scores, replay)

    @property
    def largest(self) -> int:
        return self.sizes[-1]

    def bucket(self, n: int) -> int | None:
        """The smallest captured size >= ``n``; ``None`` above the largest."""
        return next((s for s in self.sizes if s >= n), None)

    def run(self, crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor | None:
        """Copy ``n`` rows into the bucket's static inputs (the rest zeroed), replay, and
        return a view of the ``n`` scores (valid until the next replay); ``None`` when
        ``n`` is above the largest captured size (the caller runs it eagerly)."""
        n = crops.shape[0]
        size = self.bucket(n)
        if size is None:
            return None
        batch = self.batches[size]
        batch.crops[:n].copy_(crops, non_blocking=True)
        batch.landmarks[:n].copy_(landmarks, non_blocking=True)
        if n < size:  # padding rows: zeros, whose scores are dropped (rows are independent)
            batch.crops[n:].zero_()
            batch.landmarks[n:].zero_()
        batch.replay()
        self.replays += 1
        return batch.scores[:n]


class BufferedRunner:
    """The CUDA path: host staging buffers, device input buffers, eager or graph forwards.

    Inputs are copied into host staging buffers (page-locked when ``pin``), then into
    device buffers (a graph's static inputs, or the eager buffers) with
    ``non_blocking=True``; scores come back the same way and the
    stream is synchronised once per chunk. Batches above ``capacity`` run in chunks of it.

    Args:
        forward: as :class:`GraphSet`.
        device: where the buffers live (CUDA; a CPU works for tests, with ``pin=False``).
        capacity: rows per chunk (the engine's ``max_batch``, or the largest graph size).
        crop_size: S.
        channels_last: allocate the device crops NHWC.
        pin: page-locked host buffers (``pin_memory``).
        graph_sizes: capture these batch sizes (``()``: eager only).
        capture: how to capture (see :class:`GraphSet`).
    """

    def __init__(
        self,
        forward: Forward,
        device: torch.device,
        capacity: int,
        crop_size: int,
        *,
        channels_last: bool = False,
        pin: bool = True,
        graph_sizes: tuple[int, ...] = (),
        capture: Capture = capture_cuda_graph,
    ):
        self.forward = forward
        self.device = device
        self.crop_size = crop_size
        self.channels_last = channels_last
        self.capacity = max(capacity, *graph_sizes) if graph_sizes else capacity
        self._lock = threading.Lock()
        cap, c = self.capacity, crop_size
        with torch.inference_mode():
            self.host_crops = torch.empty((cap, 3, c, c), dtype=torch.float32, pin_memory=pin)
            self.host_landmarks = torch.empty(
                (cap, NUM_LANDMARK), dtype=torch.float32, pin_memory=pin
            )
            self.host_scores = torch.empty((cap,), dtype=torch.float32, pin_memory=pin)
            self.graphs: GraphSet | None = None
            if graph_sizes:
                pool = torch.cuda.graph_pool_handle() if device.type == "cuda" else None
                self.graphs = GraphSet(forward, graph_sizes, self.new_inputs, capture, pool)
        self.eager_batches = 0
        self._device_inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def device_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eager path's device input buffers of ``capacity`` rows, allocated on first
        use (with graphs up to ``capacity`` they are never needed)."""
        if self._device_inputs is None:
            with torch.inference_mode():
                self._device_inputs = self.new_inputs(self.capacity)
        return self._device_inputs

    def new_inputs(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zeroed device crops [batch,3,S,S] (NHWC with channels_last) and vectors."""
        c = self.crop_size
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        crops = torch.zeros((batch, 3, c, c), dtype=torch.float32, device=self.device)
        crops = crops.contiguous(memory_format=fmt)
        return crops, torch.zeros((batch, NUM_LANDMARK), dtype=torch.float32, device=self.device)

    def _chunk(self, crops: torch.Tensor, landmarks: torch.Tensor) -> np.ndarray:
        n = crops.shape[0]
        hx, hl, hs = self.host_crops[:n], self.host_landmarks[:n], self.host_scores[:n]
        hx.copy_(crops)  # host memcpy into the staging buffers
        hl.copy_(landmarks)
        out = self.graphs.run(hx, hl) if self.graphs is not None else None
        if out is None:
            dev_crops, dev_landmarks = self.device_inputs()
            x, lm = dev_crops[:n], dev_landmarks[:n]
            x.copy_(hx, non_blocking=True)
            lm.copy_(hl, non_blocking=True)
            out = self.forward(x, lm)
            self.eager_batches += 1
        hs.copy_(out, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return hs.numpy().copy()

    def __call__(self, crops: torch.Tensor, landmarks: torch.Tensor) -> np.ndarray:
        """Host crops [B,3,S,S] + vectors [B,500] -> float32 numpy scores [B]."""
        with self._lock, torch.inference_mode():
            parts = [
                self._chunk(crops[i : i + self.capacity], landmarks[i : i + self.capacity])
                for i in range(0, crops.shape[0], self.capacity)
            ]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


# ---------------------------------------------------------------- the engine


class TorchQualityEngine(CropEngine):
    """Score faces with a DslFiqa module on CPU or CUDA.

    Args:
        model: the module (moved to ``config.device``; left in eval mode).
        config: device, precision and GPU options.
        mode: default crop mode.
        seed: the ``official`` crops' RandomState (int or state); continues across calls.
        variant: the input contract; ``None`` = the registered one for ``model.config``.
        warmup: run one crop of zeros, so kernel selection does not land on the first face
            (with ``cuda_graphs`` the captures are the warm-up).
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
        self._forward: Any = (
            torch.compile(self.model, dynamic=False) if self.config.compile else self.model
        )
        self.max_batch = self.config.max_batch
        self._rng = make_rng(seed)
        self.info = EngineInfo(
            variant=self.variant.name,
            mode=mode,
            backend=self.backend_name,
            device=str(self.device),
            precision=self.config.precision,
        )
        self.runner: BufferedRunner | None = None
        if self.device.type == "cuda":
            self.runner = BufferedRunner(
                self._device_forward,
                self.device,
                self.max_batch,
                self.variant.crop_size,
                channels_last=self.config.channels_last,
                pin=self.config.pinned_memory,
                graph_sizes=self.config.graph_sizes,
            )
        if warmup:
            c = self.variant.crop_size
            self.score_crops(
                np.zeros((1, 3, c, c), np.float32), np.zeros((1, NUM_LANDMARK), np.float32)
            )

    @property
    def graph_sizes(self) -> tuple[int, ...]:
        """The captured batch sizes (``()`` without CUDA graphs)."""
        graphs = self.runner.graphs if self.runner is not None else None
        return graphs.sizes if graphs is not None else ()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = AUTOCAST_DTYPES.get(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        # A captured graph must not hold autocast's cached weight casts (torch's CUDA-graph
        # notes); without graphs the cache lives for one forward anyway.
        return torch.autocast(
            device_type="cuda", dtype=dtype, cache_enabled=not self.config.cuda_graphs
        )

    def _device_forward(self, crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return self._forward(crops, landmarks).float()

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
        if self.runner is not None:
            return self.runner(x, lm)
        with torch.inference_mode():
            out = self._forward(x.to(self.device), lm.to(self.device))
        return out.float().cpu().numpy()

    def close(self) -> None:
        """Drop the module, the buffers and the graphs (device memory goes with them)."""
        self._forward = None
        self.runner = None
