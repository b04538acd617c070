"""10,000 frames through the whole live path keep memory flat."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor.assets import asset_path
from pipelines.av_source import AvSource
from pipelines.backoff import BackoffPolicy
from pipelines.queueing import Overflow
from pipelines.supervisor import SupervisedSource, SupervisorSettings

FRAMES = 10_000
#: Frames read before the baseline is taken: decoder pools, numpy and thread stacks settle.
WARMUP_FRAMES = 1_000
#: RSS growth allowed after warm-up. One 360x288 RGB frame is 311 kB, so a leak of one frame
#: per frame would be ~2.8 GB; a retained queue or list of frames shows up far above this.
MAX_GROWTH_MB = 40


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_thousand_frames_keep_memory_flat() -> None:
    """franck.mp4 (4,800 frames) looped by the supervisor: EOS reconnects, queue, decode."""
    settings = SupervisorSettings(
        reconnect_on_eos=True,
        overflow=Overflow.BLOCK,  # count every frame; DROP_OLDEST is exercised elsewhere
        queue_size=4,
        max_failures=None,
        backoff=BackoffPolicy(initial_s=0.01, max_s=0.01),
    )
    source = SupervisedSource(lambda: AvSource(asset_path("franck.mp4")), "loop", settings=settings)
    baseline = peak = 0.0
    last_index = -1
    with source:
        for n, frame in enumerate(itertools.islice(source, FRAMES), start=1):
            assert frame.index > last_index
            last_index = frame.index
            if n == WARMUP_FRAMES:
                baseline = _rss_mb()
            elif n > WARMUP_FRAMES and n % 500 == 0:
                peak = max(peak, _rss_mb())
    assert source.stats.frames == FRAMES
    assert source.stats.reconnects >= 2, "the file must have looped"
    assert peak - baseline < MAX_GROWTH_MB, f"RSS grew {peak - baseline:.1f} MB"
