"""Errors of the TensorRT package: each is a user-fixable problem, its fix in the message."""

from __future__ import annotations

from engines.backend_config import BackendConfigError, BackendUnavailableError

__all__ = [
    "EngineCacheError",
    "PrecisionError",
    "ProfileError",
    "ShapeError",
    "TensorRTError",
    "TensorRTMissingError",
]


class TensorRTError(Exception):
    """Base of every error below; the CLI shows it as one line."""


class TensorRTMissingError(TensorRTError, BackendUnavailableError):
    """TensorRT (or a CUDA device) is not available here; ``auto`` skips the backend."""


class ProfileError(TensorRTError, BackendConfigError):
    """An optimisation profile that is not 1 <= min <= opt <= max."""


class PrecisionError(TensorRTError, BackendConfigError):
    """A precision this TensorRT build or this GPU does not have."""


class ShapeError(TensorRTError, ValueError):
    """Inputs whose names, shapes or batch do not fit the engine and its profile."""


class EngineCacheError(TensorRTError):
    """A missing, ambiguous or unreadable engine cache entry."""
