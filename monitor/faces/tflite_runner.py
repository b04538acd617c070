"""A minimal TFLite interpreter in torch, for MediaPipe's face mesh model only.

Why: MediaPipe >= 0.10.30 exposes no generic TFLite interpreter, and its Tasks
``FaceLandmarker`` misreads the bundled ``face_landmark.tflite``: the graph expects 478
points, divides the model's 1404 outputs (468 x xyz) by 478, gets 2 values per point, and so
returns points whose x/y are interleaved with z (measured here: z is always 0 and the mesh is
scrambled). The attention model fails there outright. The mesh network is a plain CNN, so this
module reads the ``.tflite`` flatbuffer (with the ``flatbuffers`` runtime MediaPipe already
depends on) and runs its seven op types with torch, which fqm depends on anyway.

Supported: CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, PAD, DEQUANTIZE (fp16
weights), float32 activations. Anything else is refused when the model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from flatbuffers import encode
from flatbuffers import number_types as nt
from flatbuffers.table import Table

# Builtin operator codes and tensor types from the TFLite schema.
ADD, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, MAX_POOL_2D, PAD, PRELU = 0, 3, 4, 6, 17, 34, 54
OP_NAMES = {
    ADD: "ADD",
    CONV_2D: "CONV_2D",
    DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D",
    DEQUANTIZE: "DEQUANTIZE",
    MAX_POOL_2D: "MAX_POOL_2D",
    PAD: "PAD",
    PRELU: "PRELU",
}
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32}
SAME, VALID = 0, 1
RELU, RELU6 = 1, 3


# ------------------------------------------------------------------ flatbuffer access


def _field(t: Table, i: int) -> int:
    return t.Offset(4 + 2 * i)


def _tables(t: Table, i: int) -> list[Table]:
    o = _field(t, i)
    if not o:
        return []
    start = t.Vector(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(t.VectorLen(o))]


def _ints(t: Table, i: int) -> list[int]:
    o = _field(t, i)
    if not o:
        return []
    start = t.Vector(o)
    return [t.Get(nt.Int32Flags, start + 4 * k) for k in range(t.VectorLen(o))]


def _scalar(t: Table, i: int, flags: type, default: int = 0) -> int:
    o = _field(t, i)
    return t.Get(flags, o + t.Pos) if o else default


def _bytes(t: Table, i: int) -> bytes:
    o = _field(t, i)
    if not o:
        return b""
    start = t.Vector(o)
    return bytes(t.Bytes[start : start + t.VectorLen(o)])


def _options(op: Table) -> Table | None:
    o = _field(op, 4)
    if not o:
        return None
    holder = Table(op.Bytes, 0)
    op.Union(holder, o)
    return holder


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class _Op:
    code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    params: tuple[int, ...]  # op-specific options, see _load


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _activate(x: torch.Tensor, act: int) -> torch.Tensor:
    if act == RELU:
        return F.relu(x)
    if act == RELU6:
        return F.relu6(x)
    if act != 0:
        raise ValueError(f"fused activation {act} is not supported")
    return x


class TfliteModel:
    """A loaded ``.tflite`` graph (first subgraph), run on NCHW torch tensors."""

    def __init__(self, path: str | Path) -> None:
        buf = bytearray(Path(path).read_bytes())
        model = Table(buf, encode.Get(nt.UOffsetTFlags.packer_type, buf, 0))
        codes = []
        for c in _tables(model, 1):
            code = max(_scalar(c, 0, nt.Int8Flags), _scalar(c, 3, nt.Int32Flags))
            if code not in OP_NAMES:
                raise ValueError(f"{path}: op code {code} is not supported by this runner")
            codes.append(code)
        buffers = [_bytes(b, 0) for b in _tables(model, 4)]
        graph = _tables(model, 2)[0]
        self.inputs = tuple(_ints(graph, 1))
        self.outputs = tuple(_ints(graph, 2))
        self._consts: dict[int, torch.Tensor] = {}
        self.shapes: dict[int, tuple[int, ...]] = {}
        for i, t in enumerate(_tables(graph, 0)):
            shape = tuple(_ints(t, 0))
            self.shapes[i] = shape
            data = buffers[_scalar(t, 2, nt.Uint32Flags)]
            if data:
                arr = np.frombuffer(data, DTYPES[_scalar(t, 1, nt.Int8Flags)]).reshape(shape)
                self._consts[i] = torch.from_numpy(
                    arr.astype(np.float32 if arr.dtype != np.int32 else np.int64)
                )
        self._ops = [self._load(op, codes) for op in _tables(graph, 3)]
        self._prepare()

    @staticmethod
    def _load(op: Table, codes: list[int]) -> _Op:
        code = codes[_scalar(op, 0, nt.Uint32Flags)]
        opt = _options(op)
        i32 = nt.Int32Flags
        params: tuple[int, ...] = ()
        if opt is not None and code == CONV_2D:
            # padding, stride_w, stride_h, activation, dilation_w, dilation_h
            params = (
                _scalar(opt, 0, nt.Int8Flags),
                _scalar(opt, 1, i32, 1),
                _scalar(opt, 2, i32, 1),
                _scalar(opt, 3, nt.Int8Flags),
                _scalar(opt, 4, i32, 1),
                _scalar(opt, 5, i32, 1),
            )
        elif opt is not None and code == DEPTHWISE_CONV_2D:
            params = (
                _scalar(opt, 0, nt.Int8Flags),
                _scalar(opt, 1, i32, 1),
                _scalar(opt, 2, i32, 1),
                _scalar(opt, 4, nt.Int8Flags),
                _scalar(opt, 5, i32, 1),
                _scalar(opt, 6, i32, 1),
            )
        elif opt is not None and code == MAX_POOL_2D:
            # padding, stride_w, stride_h, filter_w, filter_h, activation
            params = tuple(_scalar(opt, k, nt.Int8Flags if k in (0, 5) else i32) for k in range(6))
        elif opt is not None and code == ADD:
            params = (_scalar(opt, 0, nt.Int8Flags),)
        return _Op(code, tuple(_ints(op, 1)), tuple(_ints(op, 2)), params)

    def _prepare(self) -> None:
        """Turns constant weights into torch layouts once, so ``run`` only computes."""
        for op in self._ops:
            if op.code == DEQUANTIZE and op.inputs[0] in self._consts:
                self._consts[op.outputs[0]] = self._consts[op.inputs[0]]
        self._ops = [
            op for op in self._ops if not (op.code == DEQUANTIZE and op.outputs[0] in self._consts)
        ]
        self._w: dict[int, torch.Tensor] = {}
        for op in self._ops:
            if op.code == CONV_2D:  # OHWI -> OIHW
                self._w[op.inputs[1]] = self._consts[op.inputs[1]].permute(0, 3, 1, 2).contiguous()
            elif op.code == DEPTHWISE_CONV_2D:  # 1HW(C*m) -> (C*m)1HW
                self._w[op.inputs[1]] = self._consts[op.inputs[1]].permute(3, 0, 1, 2).contiguous()
            elif op.code == PRELU:  # alpha over channels, last axis in NHWC
                a = self._consts[op.inputs[1]].reshape(-1)
                self._w[op.inputs[1]] = a.reshape(1, -1, 1, 1)

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Runs an NHWC float32 batch; returns the outputs as NHWC numpy arrays."""
        vals: dict[int, torch.Tensor] = {self.inputs[0]: torch.from_numpy(x).permute(0, 3, 1, 2)}
        for op in self._ops:
            vals[op.outputs[0]] = self._step(op, vals)
        outs = []
        for i in self.outputs:
            v = vals[i]
            outs.append((v.permute(0, 2, 3, 1) if v.ndim == 4 else v).numpy())
        return outs

    def _step(self, op: _Op, vals: dict[int, torch.Tensor]) -> torch.Tensor:
        def get(i: int) -> torch.Tensor:
            return vals[i] if i in vals else self._consts[i]

        x = get(op.inputs[0])
        if op.code in (CONV_2D, DEPTHWISE_CONV_2D):
            pad, sw, sh, act, dw, dh = op.params
            w = self._w[op.inputs[1]]
            bias = self._consts[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            if pad == SAME:
                pt, pb = _same_pad(x.shape[2], w.shape[2], sh, dh)
                pl, pr = _same_pad(x.shape[3], w.shape[3], sw, dw)
                x = F.pad(x, (pl, pr, pt, pb))
            groups = x.shape[1] if op.code == DEPTHWISE_CONV_2D else 1
            y = F.conv2d(x, w, bias, stride=(sh, sw), dilation=(dh, dw), groups=groups)
            return _activate(y, act)
        if op.code == PRELU:
            alpha = self._w[op.inputs[1]]
            return torch.where(x >= 0, x, x * alpha)
        if op.code == ADD:
            return _activate(x + get(op.inputs[1]), op.params[0])
        if op.code == MAX_POOL_2D:
            pad, sw, sh, fw, fh, act = op.params
            if pad == SAME:
                pt, pb = _same_pad(x.shape[2], fh, sh, 1)
                pl, pr = _same_pad(x.shape[3], fw, sw, 1)
                x = F.pad(x, (pl, pr, pt, pb), value=-math.inf)
            return _activate(F.max_pool2d(x, (fh, fw), (sh, sw)), act)
        if op.code == PAD:
            p = self._consts[op.inputs[1]].tolist()  # NHWC [[before, after], ...]
            # torch pads from the last NCHW axis backwards: W, H, C.
            return F.pad(x, (*p[2], *p[1], *p[3]))
        if op.code == DEQUANTIZE:
            return x.float()
        raise ValueError(f"op {OP_NAMES.get(op.code, op.code)} is not supported")
