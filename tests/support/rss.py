"""A process's resident memory (VmRSS) sampled in a thread: /proc only, no psutil."""

from __future__ import annotations

import threading
import time
from pathlib import Path


def rss_mb(pid: int | str = "self") -> float | None:
    """The process's VmRSS in MiB; ``None`` once it is gone (or a zombie, without one)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


class RssSampler(threading.Thread):
    """Samples ``pid``'s RSS every ``interval_s`` into ``samples`` as (monotonic s, MiB),
    until ``stop()`` or the process is gone."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        super().__init__(name=f"rss-{pid}", daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            value = rss_mb(self.pid)
            if value is None:
                return
            self.samples.append((time.monotonic(), value))
            self._halt.wait(self.interval_s)

    def stop(self) -> list[tuple[float, float]]:
        """Stop sampling; returns the samples."""
        self._halt.set()
        self.join(5)
        return self.samples

    def between(self, start: float, end: float) -> list[float]:
        """The MiB sampled in [start, end] (monotonic seconds)."""
        return [mb for t, mb in self.samples if start <= t <= end]
