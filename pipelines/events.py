"""Status events of a supervised source, for callbacks, queues, logs and the status topic.

Every text field is masked (``urls.mask_url``) before an event is built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StatusEvent:
    """Base of all status events.

    Attributes:
        stream_id: the supervised stream.
        reason: why this happened, in words (masked).
        wall_time: Unix time of the event.
    """

    stream_id: str
    reason: str = ""
    wall_time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Connecting(StatusEvent):
    """An attempt to open the stream began."""

    attempt: int = 1
    location: str = ""


@dataclass(frozen=True)
class Up(StatusEvent):
    """The first frame of this attempt arrived; ``decoder`` says which decoder runs.

    ``decoder`` is ``SourceStats.decoder_summary`` of the inner source, e.g. ``"h264 on
    cuda"`` or ``"h264 in software (cuda: cannot open the device ...)"``.
    """

    attempt: int = 1
    width: int = 0
    height: int = 0
    decoder: str = ""


@dataclass(frozen=True)
class Stalled(StatusEvent):
    """No frame arrived for ``seconds`` although the stream did not end (the watchdog fired)."""

    seconds: float = 0.0


@dataclass(frozen=True)
class Down(StatusEvent):
    """The stream is down: it failed, ended or stalled. ``final`` means no more retries."""

    failures: int = 1
    final: bool = False


@dataclass(frozen=True)
class Reconnecting(StatusEvent):
    """The next attempt starts after ``delay_s`` seconds of backoff."""

    attempt: int = 2
    delay_s: float = 0.0
