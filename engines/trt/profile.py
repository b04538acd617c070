"""What an engine is built for: its batch profile and precision, and the checks against them.

Torch- and TensorRT-free: the builder, the cache key and the runtime all use these, and the
tests check them without a GPU.

Example:
    >>> BatchProfile(min=1, opt=20, max=40).check_batch(20)
    >>> BuildConfig(precision="fp16", profile=BatchProfile(1, 20, 40)).profile.label
    '1-20-40'
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engines.trt.errors import PrecisionError, ProfileError, ShapeError

__all__ = [
    "BUILDER_FLAGS",
    "MIN_COMPUTE_CAPABILITY",
    "TRT_PRECISIONS",
    "BatchProfile",
    "BuildConfig",
    "check_input_shapes",
    "check_precision",
]

TrtPrecision = Literal["fp32", "fp16", "bf16", "fp8"]
TRT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "fp8")
# The BuilderFlag each reduced precision turns on (fp32 needs none).
BUILDER_FLAGS: dict[str, str] = {"fp16": "FP16", "bf16": "BF16", "fp8": "FP8"}
# The oldest GPU generation with fast kernels for each precision (major, minor).
MIN_COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    "fp32": (0, 0),
    "fp16": (5, 3),
    "bf16": (8, 0),  # Ampere
    "fp8": (8, 9),  # Ada, Hopper
}


@dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile of the batch axis: the engine runs any batch in [min, max]
    and is tuned for ``opt``.

    Raises:
        ProfileError: unless 1 <= min <= opt <= max (integers).
    """

    min: int = 1
    opt: int = 20
    max: int = 40

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ProfileError(f"batch profile min/opt/max must be integers, got {values}")
        if not 1 <= self.min <= self.opt <= self.max:
            raise ProfileError(
                f"batch profile must satisfy 1 <= min <= opt <= max, got min={self.min} "
                f"opt={self.opt} max={self.max}"
            )

    @classmethod
    def up_to(cls, max_batch: int) -> BatchProfile:
        """Batches 1..``max_batch``, tuned for the largest (what a busy scorer runs)."""
        return cls(1, max_batch, max_batch)

    @property
    def label(self) -> str:
        return f"{self.min}-{self.opt}-{self.max}"

    def as_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchProfile:
        return cls(int(data["min"]), int(data["opt"]), int(data["max"]))

    def check_batch(self, batch: int) -> None:
        """Raise :class:`ShapeError` unless ``batch`` is inside the profile."""
        if not self.min <= batch <= self.max:
            raise ShapeError(
                f"batch {batch} is outside the engine's profile (min {self.min}, max "
                f"{self.max}); split the batch or rebuild the engine with a larger --max-batch"
            )


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """How to build an engine.

    Attributes:
        precision: ``fp32``, ``fp16`` (default), ``bf16`` (compute capability >= 8.0) or
            ``fp8`` (>= 8.9 and a TensorRT with the FP8 flag). Inputs and outputs stay fp32.
        profile: the batch optimisation profile.
        workspace_mib: builder workspace limit; ``None`` = TensorRT's default (the device).
    """

    precision: TrtPrecision = "fp16"
    profile: BatchProfile = field(default_factory=BatchProfile)
    workspace_mib: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in TRT_PRECISIONS:
            raise PrecisionError(
                f"TensorRT precision {self.precision!r}; choose one of {TRT_PRECISIONS}"
            )
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise ProfileError(f"workspace_mib must be >= 1, got {self.workspace_mib}")


def check_precision(
    precision: str,
    compute_capability: tuple[int, int],
    builder_flags: Collection[str],
    gpu_name: str = "this GPU",
) -> None:
    """Refuse a precision this TensorRT (its ``BuilderFlag`` names) or this GPU lacks.

    Raises:
        PrecisionError: the message names what is missing and what to use instead.
    """
    if precision not in TRT_PRECISIONS:
        raise PrecisionError(f"TensorRT precision {precision!r}; choose one of {TRT_PRECISIONS}")
    flag = BUILDER_FLAGS.get(precision)
    if flag is not None and flag not in builder_flags:
        raise PrecisionError(
            f"{precision}: this TensorRT has no BuilderFlag.{flag}; use fp16 or a newer TensorRT"
        )
    need = MIN_COMPUTE_CAPABILITY[precision]
    if tuple(compute_capability) < need:
        have = ".".join(map(str, compute_capability))
        raise PrecisionError(
            f"{precision} needs compute capability >= {need[0]}.{need[1]}; {gpu_name} has "
            f"{have}; use fp16"
        )


def check_input_shapes(
    shapes: Mapping[str, Sequence[int]],
    expected: Mapping[str, Sequence[int]],
    profile: BatchProfile,
) -> int:
    """Check inputs against the engine's interface and profile; return their common batch.

    Args:
        shapes: full shapes of the given inputs, by name.
        expected: per-sample dims of each engine input (without the batch axis), by name.
        profile: the engine's batch profile.

    Raises:
        ShapeError: a missing or unknown input, a wrong rank or dim, inputs with different
            batches, or a batch outside the profile.
    """
    missing = [n for n in expected if n not in shapes]
    unknown = [n for n in shapes if n not in expected]
    if missing or unknown:
        raise ShapeError(
            f"engine inputs are {list(expected)}; missing {missing}, unknown {unknown}"
        )
    batches = {}
    for name, dims in expected.items():
        shape = tuple(int(d) for d in shapes[name])
        want = (-1, *dims)
        if len(shape) != len(want) or shape[1:] != tuple(dims):
            shown = ",".join(["batch", *map(str, dims)])
            raise ShapeError(f"input {name!r} must be [{shown}], got {list(shape)}")
        batches[name] = shape[0]
    if len(set(batches.values())) > 1:
        raise ShapeError(f"inputs must share one batch size, got {batches}")
    batch = next(iter(batches.values()))
    profile.check_batch(batch)
    return batch
