"""Exponential backoff with jitter, so that a fleet of cameras does not reconnect in step."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Delays between reconnect attempts: ``initial_s * factor**n``, capped, +/- jitter.

    Attributes:
        initial_s: delay before the first retry.
        max_s: the cap; a camera down for hours is retried this often.
        factor: growth per consecutive failure.
        jitter: fraction of the delay added or removed at random (0.2: +/-20 %); many
            cameras that lost one switch then do not all reconnect in the same instant.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failures."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))
        return base * (1 + self.jitter * rng.uniform(-1, 1))
