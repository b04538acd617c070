"""The tensor interface of an exported graph (names, dtypes, per-sample dims) and its hash.

Read from the ONNX file with the ``onnx`` package (imported when called), so that the cache
key, the Triton config and the runtime's shape checks all come from the graph itself rather
than from constants repeated here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.runtimes import META_CONFIG, META_VARIANT
from engines.trt.errors import ShapeError

__all__ = ["GraphInterface", "TensorSpec", "onnx_interface", "onnx_variant", "sha256_file"]

# ONNX TensorProto element type -> numpy-style dtype name.
ONNX_DTYPES: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, dtype (``float32`` ...), dims after the batch axis."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(d) for d in data["dims"]))


@dataclass(frozen=True)
class GraphInterface:
    """Inputs and outputs of a graph whose first axis is the (dynamic) batch."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input_dims(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.dims for t in self.inputs}

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.as_dict() for t in self.inputs],
            "outputs": [t.as_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphInterface:
        return cls(
            tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _spec(value: Any, path: Path) -> TensorSpec:
    tensor = value.type.tensor_type
    dtype = ONNX_DTYPES.get(tensor.elem_type)
    if dtype is None:
        raise ShapeError(f"{path}: {value.name} has unsupported element type {tensor.elem_type}")
    dims = list(tensor.shape.dim)
    if not dims or (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
        raise ShapeError(
            f"{path}: {value.name} has no dynamic batch axis; export it with export_onnx"
        )
    rest = []
    for d in dims[1:]:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            raise ShapeError(f"{path}: {value.name} has a dynamic non-batch axis ({d})")
        rest.append(int(d.dim_value))
    return TensorSpec(value.name, dtype, tuple(rest))


def _load(path: str | Path) -> Any:
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such ONNX file", str(path))
    return onnx.load(str(path), load_external_data=False)


def onnx_interface(path: str | Path) -> GraphInterface:
    """The graph interface of an ONNX file (batch axis first and dynamic, other dims fixed).

    Raises:
        ShapeError: a tensor without a dynamic batch axis, or with another dynamic axis.
    """
    model = _load(path)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = tuple(_spec(v, Path(path)) for v in graph.input if v.name not in initializers)
    return GraphInterface(inputs, tuple(_spec(v, Path(path)) for v in graph.output))


def onnx_variant(path: str | Path) -> str | None:
    """The model variant recorded by ``export_onnx`` (``None`` for other files).

    A registered variant's name; for an unregistered config, the name the variant registry
    gives it (``custom:...``).
    """
    meta = {p.key: p.value for p in _load(path).metadata_props}
    if META_CONFIG in meta:
        from engines.dslfiqa.variants import config_from_dict, variant_for_config

        return variant_for_config(config_from_dict(json.loads(meta[META_CONFIG]))).name
    return meta.get(META_VARIANT)
