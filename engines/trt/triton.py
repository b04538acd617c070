"""Export a Triton Inference Server model repository: the TensorRT plan and the ONNX fallback.

Layout (Triton's model repository: one folder per model, numbered version folders)::

    <repo>/<name>/config.pbtxt           platform "tensorrt_plan"  (when a plan is given)
    <repo>/<name>/<version>/model.plan
    <repo>/<name>_onnx/config.pbtxt      platform "onnxruntime_onnx"
    <repo>/<name>_onnx/<version>/model.onnx

``config.pbtxt`` is the protobuf text format of Triton's ``ModelConfig``, written here as
text (no protobuf dependency): ``max_batch_size`` is the profile's maximum, so ``dims`` leave
the batch axis out; inputs and outputs (names, ``TYPE_*`` dtypes, dims) come from the
graph's interface. An output that is only ``[batch]`` (the scores) is declared with
``dims: [ 1 ]`` and ``reshape { shape: [ ] }``, Triton's way to serve a rank-1 batched
tensor. ``dynamic_batching`` lets Triton merge requests up to the profile's maximum.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engines.trt.interface import GraphInterface, TensorSpec, onnx_interface

__all__ = [
    "ONNX_PLATFORM",
    "PLAN_PLATFORM",
    "TRITON_DTYPES",
    "TritonModel",
    "triton_config",
    "write_model_repository",
]

PLAN_PLATFORM = "tensorrt_plan"
ONNX_PLATFORM = "onnxruntime_onnx"
PLATFORM_FILES = {PLAN_PLATFORM: "model.plan", ONNX_PLATFORM: "model.onnx"}
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU", "KIND_AUTO")
# numpy-style dtype name -> Triton data_type.
TRITON_DTYPES: dict[str, str] = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}
DEFAULT_QUEUE_DELAY_US = 2000


@dataclass(frozen=True)
class TritonModel:
    """One model written into the repository."""

    name: str
    platform: str
    folder: Path
    model_file: Path


def _tensor(spec: TensorSpec, indent: str) -> list[str]:
    dims = list(spec.dims) or [1]
    lines = [
        f"{indent}{{",
        f'{indent}  name: "{spec.name}"',
        f"{indent}  data_type: {TRITON_DTYPES[spec.dtype]}",
        f"{indent}  dims: [ {', '.join(map(str, dims))} ]",
    ]
    if not spec.dims:
        lines.append(f"{indent}  reshape: {{ shape: [ ] }}")
    lines.append(f"{indent}}}")
    return lines


def _tensors(field: str, specs: Sequence[TensorSpec]) -> list[str]:
    lines = [f"{field} ["]
    for i, spec in enumerate(specs):
        block = _tensor(spec, "  ")
        if i < len(specs) - 1:
            block[-1] += ","
        lines += block
    return [*lines, "]"]


def triton_config(
    name: str,
    platform: str,
    interface: GraphInterface,
    max_batch_size: int,
    *,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    instance_count: int = 1,
    instance_kind: str = "KIND_GPU",
) -> str:
    """The ``config.pbtxt`` text of one model.

    Raises:
        ValueError: an unknown platform, instance kind or dtype, or a bad batch size.
    """
    if platform not in PLATFORM_FILES:
        raise ValueError(f"platform {platform!r}; choose one of {list(PLATFORM_FILES)}")
    if instance_kind not in INSTANCE_KINDS:
        raise ValueError(f"instance kind {instance_kind!r}; choose one of {INSTANCE_KINDS}")
    if max_batch_size < 1 or instance_count < 1 or max_queue_delay_us < 0:
        raise ValueError("max_batch_size and instance_count must be >= 1, the delay >= 0")
    preferred = sorted({b for b in preferred_batch_sizes if 1 <= b <= max_batch_size})
    unknown = [
        t.dtype for t in (*interface.inputs, *interface.outputs) if t.dtype not in TRITON_DTYPES
    ]
    if unknown:
        raise ValueError(f"no Triton data type for {unknown}")
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch_size}",
        *_tensors("input", interface.inputs),
        *_tensors("output", interface.outputs),
        "dynamic_batching {",
    ]
    if preferred:
        lines.append(f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]")
    lines += [
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {instance_count}",
        f"    kind: {instance_kind}",
        "  }",
        "]",
    ]
    return "\n".join(lines) + "\n"


def _write_model(
    repo: Path, name: str, platform: str, model_file: Path, config: str, version: int
) -> TritonModel:
    """Write ``<repo>/<name>`` in a temp folder, then swap it into place."""
    repo.mkdir(parents=True, exist_ok=True)
    final = repo / name
    tmp = repo / f".tmp-{name}-{uuid.uuid4().hex}"
    try:
        (tmp / str(version)).mkdir(parents=True)
        target = tmp / str(version) / PLATFORM_FILES[platform]
        shutil.copyfile(model_file, target)
        (tmp / "config.pbtxt").write_text(config)
        if final.exists():
            old = repo / f".tmp-old-{name}-{uuid.uuid4().hex}"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TritonModel(name, platform, final, final / str(version) / PLATFORM_FILES[platform])


def write_model_repository(
    repo: str | Path,
    name: str,
    onnx_path: str | Path,
    *,
    max_batch_size: int,
    plan_path: str | Path | None = None,
    version: int = 1,
    preferred_batch_sizes: Sequence[int] = (),
    onnx_instance_kind: str = "KIND_AUTO",
) -> list[TritonModel]:
    """Write the ONNX model (``<name>_onnx``) and, given a plan, the TensorRT one (``<name>``).

    Args:
        repo: the model repository folder (created).
        name: the TensorRT model's name; the ONNX fallback is ``<name>_onnx``.
        onnx_path: the exported graph; its interface fills both configs.
        max_batch_size: the plan's profile maximum (the ONNX graph takes any batch).
        plan_path: a built ``engine.plan``; ``None`` = the ONNX model only.
        version: the version folder.
        preferred_batch_sizes: for ``dynamic_batching`` (e.g. the profile's opt).
        onnx_instance_kind: where Triton runs the ONNX fallback.
    """
    if version < 1:
        raise ValueError(f"version must be >= 1, got {version}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"model name {name!r} must be a plain folder name")
    repo = Path(repo)
    interface = onnx_interface(onnx_path)
    common = {"max_batch_size": max_batch_size, "preferred_batch_sizes": preferred_batch_sizes}
    models = []
    if plan_path is not None:
        text = triton_config(name, PLAN_PLATFORM, interface, **common)
        models.append(_write_model(repo, name, PLAN_PLATFORM, Path(plan_path), text, version))
    onnx_name = f"{name}_onnx"
    text = triton_config(
        onnx_name, ONNX_PLATFORM, interface, instance_kind=onnx_instance_kind, **common
    )
    models.append(_write_model(repo, onnx_name, ONNX_PLATFORM, Path(onnx_path), text, version))
    return models
