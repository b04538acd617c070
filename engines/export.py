"""Export DSL-FIQA to ONNX: named inputs/outputs, a dynamic batch axis, ``onnx.checker``.

The graph is ``DslFiqa.forward``: ``crops`` [batch,3,S,S] float32 (RGB in [-1,1]) and
``landmarks`` [batch,500] float32 (landmark index vectors) -> ``scores`` [batch] float32,
with S the variant's ``crop_size`` (384 for ``dslfiqa``). The file's metadata records the
model config and variant name (:data:`META_VARIANT`, :data:`META_CONFIG`), so a runtime
knows the input contract (face size, crop size, normalisation) of the graph it runs.

Exporter: the TorchScript-based one (``torch.onnx.export(..., dynamo=False)``). The
torch.export-based ("dynamo") exporter needs the ``onnxscript`` package, which is not a
dependency of fqm, and DSL_FIQA.md 7 reports that, given ``dynamic_shapes``, it specialised
the batch dimension of the official forward. The TorchScript tracer records a single path
through ``forward``; that is sound here because ``DslFiqa.forward`` has no Python loop or
branch over the batch and reshapes with ``-1`` / ``shape[0]``. The trace is made at batch 2,
not 1, so a size-1 dimension cannot be folded into a constant that matches the batch by
accident; :func:`check_parity` then runs the exported file at other batch sizes.

fp16 (``export_onnx(..., precision="fp16")``): a half-precision copy of the model is traced
inside a wrapper that casts the float32 inputs to float16 and the score back to float32, so
the graph's weights and activations are float16 while its interface stays the float32 one
above (the same ``crops``/``landmarks``/``scores`` names, shapes and types); the file
records ``fqm.precision`` = ``fp16``. ONNX Runtime's CPU provider runs it: for the nodes it
has no float16 kernel for, ONNX Runtime itself inserts casts and computes them in float32,
so on a CPU fp16 halves the file and the weights' memory but is not faster. Tolerance vs
torch fp32: :data:`FP16_PARITY_ATOL` (docs/engines.md).

Example:
    >>> path = export_onnx(model, "dslfiqa.onnx")  # doctest: +SKIP
    >>> check_parity(model, path, batch_sizes=(1, 3))  # doctest: +SKIP
    {1: 4.8e-07, 3: 4.8e-07}
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from engines.dslfiqa.model import DslFiqa
from engines.dslfiqa.model import crop_size_of as _iqa_crop_size
from engines.dslfiqa.preprocess import NUM_LANDMARK
from engines.dslfiqa.variants import variant_for_config
from engines.runtimes import INPUT_NAMES, META_CONFIG, META_VARIANT, OUTPUT_NAMES

__all__ = [
    "EXPORT_PRECISIONS",
    "FP16_PARITY_ATOL",
    "INPUT_NAMES",
    "META_CONFIG",
    "META_PRECISION",
    "META_VARIANT",
    "OUTPUT_NAMES",
    "ExportError",
    "check_onnx",
    "check_parity",
    "export_onnx",
]
BATCH_AXIS = "batch"
# Opset 17: LayerNormalization is a single op; every ONNX Runtime >= 1.13 runs it.
DEFAULT_OPSET = 17
# Batch size of the example inputs the graph is traced with (see the module docstring).
TRACE_BATCH = 2
# Default parity tolerance of the exported graph vs PyTorch on CPU, float32 scores in [0,1].
# Observed: 0 (tiny) and 4.8e-7 (official size); the margin covers other CPUs' kernels.
PARITY_ATOL = 1e-4
# Same for an fp16 export (float16 weights and activations) vs PyTorch fp32, ONNX Runtime
# CPU. Observed on random inputs: 1.4e-4 (tiny, test init, batches 1-5), 1.1e-3 (tiny,
# random benchmark weights, batches 1-8), 9.7e-4 (official size, random benchmark weights,
# batches 1-2); about 5x margin. See docs/engines.md.
FP16_PARITY_ATOL = 5e-3
EXPORT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
META_PRECISION = "fqm.precision"  # engines.runtimes.onnxruntime reads the same key


class ExportError(RuntimeError):
    """The exported ONNX file is invalid or does not match the PyTorch model."""


def crop_size_of(model: DslFiqa) -> int:
    """Side of the square crops ``model`` takes: its own ``crop_size`` (``DslFiqaLite``), else
    token grid x ViT patch size."""
    size = getattr(model, "crop_size", None)
    return int(size) if size else _iqa_crop_size(model.iqa)


def example_inputs(
    model: DslFiqa, batch: int = TRACE_BATCH, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops in [-1,1] and landmark vectors in [-1,1], on the model's device."""
    g = torch.Generator().manual_seed(seed)
    size = crop_size_of(model)
    crops = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    landmarks = torch.rand(batch, NUM_LANDMARK, generator=g) * 2 - 1
    return crops.to(model.device), landmarks.to(model.device)


def export_onnx(
    model: DslFiqa,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    precision: str = "fp32",
) -> Path:
    """Write ``model`` as a single ONNX file and validate it with ``onnx.checker``.

    Args:
        model: a ``DslFiqa`` (official or any ``ModelConfig`` size); exported in eval mode,
            its own training flag is left as it was.
        path: destination ``.onnx`` file; parent folders are created.
        opset: ONNX opset version (>= 14, for the attention op's symbolic).
        dynamic_batch: ``True`` makes axis 0 of every input and output the symbolic
            dimension ``batch``; ``False`` fixes it to 2.
        precision: ``fp32``, or ``fp16``: float16 weights and activations behind float32
            inputs and output (module docstring); ``model`` itself is not changed.

    Returns:
        The path written.

    Raises:
        ExportError: the checker rejects the file, or its inputs/outputs are not the
            documented ones.
    """
    if opset < 14:
        raise ValueError(f"opset {opset} is too old: the attention blocks need opset >= 14")
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"ONNX export precision {precision!r}; choose one of {EXPORT_PRECISIONS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: BATCH_AXIS} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    was_training = model.training
    model.eval()
    traced: nn.Module = model if precision == "fp32" else _Float16Graph(model)
    try:
        with warnings.catch_warnings():
            # The legacy exporter is chosen deliberately (module docstring).
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                traced,
                example_inputs(model),
                str(path),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes if dynamic_batch else None,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)
        del traced
    _write_metadata(path, model, precision)
    check_onnx(path, crop_size_of(model), dynamic_batch)
    return path


class _Float16Graph(nn.Module):
    """A float16 copy of ``model`` behind float32 inputs and output (traced for fp16)."""

    def __init__(self, model: DslFiqa):
        super().__init__()
        self.model = copy.deepcopy(model).half().eval()

    def forward(self, crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        return self.model(crops.half(), landmarks.half()).float()


def _write_metadata(path: Path, model: DslFiqa, precision: str = "fp32") -> None:
    """Record the variant, its model config and the precision in the file."""
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[META_VARIANT] = variant_for_config(model.config).name
    props[META_CONFIG] = model.config.to_json()
    props[META_PRECISION] = precision
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def check_onnx(path: str | Path, crop_size: int, dynamic_batch: bool = True) -> None:
    """Run ``onnx.checker`` (full check, shape inference included) and check the interface.

    Raises:
        ExportError: with the checker's message, or the names/shapes found vs expected.
    """
    try:
        # A path (not a loaded proto) also works for files over protobuf's 2 GB limit.
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: onnx.checker rejected the graph: {exc}") from exc
    graph = onnx.load(str(path), load_external_data=False).graph
    batch: int | str = BATCH_AXIS if dynamic_batch else TRACE_BATCH
    expected = {
        "crops": [batch, 3, crop_size, crop_size],
        "landmarks": [batch, NUM_LANDMARK],
        "scores": [batch],
    }
    found = {v.name: _dims(v) for v in (*graph.input, *graph.output)}
    if found != expected:
        raise ExportError(f"{path}: inputs/outputs {found}, expected {expected}")


def check_parity(
    model: DslFiqa,
    path: str | Path,
    batch_sizes: Sequence[int] = (1, 3),
    atol: float | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> dict[int, float]:
    """Score random inputs with ``model`` and with ONNX Runtime on ``path``, per batch size.

    ``atol`` ``None`` = :data:`PARITY_ATOL`, or :data:`FP16_PARITY_ATOL` for an fp16 file.

    Returns:
        {batch size: max abs score deviation}.

    Raises:
        ExportError: a deviation above ``atol``.
    """
    from engines.runtimes.onnxruntime import OrtQualityEngine

    engine = OrtQualityEngine(path, providers=providers)
    if atol is None:
        atol = FP16_PARITY_ATOL if engine.precision == "fp16" else PARITY_ATOL
    devs: dict[int, float] = {}
    for b in batch_sizes:
        crops, landmarks = example_inputs(model, b, seed=b)
        with torch.inference_mode():
            ref = model(crops, landmarks).float().cpu().numpy()
        got = engine.score_crops(crops.cpu().numpy(), landmarks.cpu().numpy())
        devs[b] = float(np.abs(got - ref).max())
    bad = {b: d for b, d in devs.items() if not d <= atol}
    if bad:
        raise ExportError(f"{path}: ONNX Runtime vs PyTorch max abs deviation {bad} > {atol}")
    return devs
