"""The decoded frame, the one thing every source yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded video frame.

    Attributes:
        stream_id: the source's id (camera name or file stem); events are keyed by it.
        index: 0-based number of the decoded picture in the stream; frames dropped by
            decimation leave gaps, so indices of one stream id only ever increase.
        pts: presentation time in seconds from the stream's timeline, ``None`` when the
            container gives none (some raw streams).
        wall_time: Unix time at which the frame was decoded; the capture clock for live sources.
        image: RGB, ``uint8``, shape ``(height, width, 3)``; treat as read-only, it may share
            memory with the decoder's output.
    """

    stream_id: str
    index: int
    pts: float | None
    wall_time: float
    image: np.ndarray

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"Frame.image must be uint8 (H, W, 3) RGB, got {img.dtype} {tuple(img.shape)}"
            )

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]
