"""pipelines/ logic: URL masking, decimation, sizing, queues, pacing, backoff, threads."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.assets import asset_path
from pipelines.av_source import AvSource
from pipelines.backoff import BackoffPolicy
from pipelines.errors import SourceDecodeError, SourceError, SourceOpenError
from pipelines.frame import Frame
from pipelines.gst_source import rgb_from_padded
from pipelines.queueing import FrameQueue, Overflow, QueueClosed, paced
from pipelines.source import DecodeOptions, FrameDecimator
from pipelines.threaded import ThreadedSource
from pipelines.urls import SourceKind, default_stream_id, mask_url, source_kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://admin:***@10.0.0.5:554/s1"),
        ("rtsp://admin:p%40ss:w0rd@cam/s", "rtsp://admin:***@cam/s"),
        (
            "https://u:pw@cdn.example/live.m3u8?token=abc&x=1",
            "https://u:***@cdn.example/live.m3u8?token=***&x=1",
        ),
        ("http://cam/video.cgi?user=a&password=s3cret", "http://cam/video.cgi?user=a&password=***"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
        # A user name alone may be a token (https://TOKEN@host): the whole userinfo goes.
        ("rtsp://user@cam/stream", "rtsp://***@cam/stream"),
        ("https://ghp_T0KEN@git.example/x.m3u8", "https://***@git.example/x.m3u8"),
        ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),
        # Unencoded '/', ' ' and '@' in a password: the userinfo ends at the LAST '@'.
        ("rtsp://admin:p@ss/w rd@10.0.0.5:554/x", "rtsp://admin:***@10.0.0.5:554/x"),
        (
            "http://h/a?apikey=S1&api_key=S2&x=1&token=S3;access_token=S4",
            "http://h/a?apikey=***&api_key=***&x=1&token=***;access_token=***",
        ),
        (
            "Error opening input file rtsp://admin:p@ss/w rd@10.0.0.5:554/x: 401 Unauthorized",
            "Error opening input file rtsp://admin:***@10.0.0.5:554/x: 401 Unauthorized",
        ),
        (
            "rtsp://a:x@h1/s failed; then https://TOK@h2/l.m3u8?key=k failed",
            "rtsp://a:***@h1/s failed; then https://***@h2/l.m3u8?key=*** failed",
        ),
        # Ordinary text is left alone.
        (
            "mail admin@example.com at 10:30 about /a:b@c",
            "mail admin@example.com at 10:30 about /a:b@c",
        ),
        (
            "see https://example.com/a?b=1&keys=2 and x@y",
            "see https://example.com/a?b=1&keys=2 and x@y",
        ),
        ("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream"),
        (
            "open failed: 'rtsp://a:x@h1/s' then 'rtsp://b:y@h2/s'",
            "open failed: 'rtsp://a:***@h1/s' then 'rtsp://b:***@h2/s'",
        ),
    ],
)
def test_mask_url(text: str, expected: str) -> None:
    assert mask_url(text) == expected


def test_source_kind_and_id() -> None:
    assert source_kind("clip.mp4") is SourceKind.FILE
    assert source_kind("file:///x/clip.mkv") is SourceKind.FILE
    assert source_kind("rtsp://cam/s") is SourceKind.RTSP
    assert source_kind("https://cdn/live.m3u8") is SourceKind.HTTP
    assert source_kind("/dev/video0") is SourceKind.DEVICE
    assert source_kind("srt://host:9000") is SourceKind.OTHER
    assert not SourceKind.FILE.is_live
    assert SourceKind.RTSP.is_live
    assert default_stream_id("/a/b/clip.mp4") == "clip"
    assert default_stream_id("rtsp://u:secret@cam1:554/live/") == "cam1:554/live"
    assert default_stream_id("rtsp://admin:p@ss/w rd@10.0.0.5:554/x") == "10.0.0.5:554/x"
    assert default_stream_id("https://TOKEN@cdn.example/live.m3u8") == "cdn.example/live.m3u8"


def test_output_size_keeps_aspect_and_never_upscales() -> None:
    assert DecodeOptions().output_size(1920, 1080) == (1920, 1080)
    assert DecodeOptions(max_width=1280).output_size(1920, 1080) == (1280, 720)
    assert DecodeOptions(max_height=360).output_size(1920, 1080) == (640, 360)
    assert DecodeOptions(max_width=4000).output_size(176, 144) == (176, 144)
    with pytest.raises(ValueError, match="max_fps"):
        DecodeOptions(max_fps=0)


@pytest.mark.parametrize(("fps", "max_fps", "kept"), [(30, 15, 50), (30, 10, 34), (25, 30, 100)])
def test_decimator_keeps_the_right_share(fps: float, max_fps: float, kept: int) -> None:
    decimator = FrameDecimator(max_fps)
    pts = [i / fps for i in range(100)]
    assert sum(decimator.keep(p) for p in pts) == kept


def test_decimator_restarts_after_a_timeline_jump() -> None:
    decimator = FrameDecimator(10)
    assert [decimator.keep(p) for p in (5.0, 5.05, 0.0, 0.05, 0.1)] == [1, 0, 1, 0, 1]


def test_rgb_from_padded_rows() -> None:
    """Odd widths: GStreamer pads each RGB row to a multiple of 4 bytes."""
    width, height = 5, 3
    stride = 16  # 15 bytes of pixels + 1 byte of padding
    rows = np.arange(height * stride, dtype=np.uint8).reshape(height, stride)
    image = rgb_from_padded(rows.tobytes(), width, height)
    assert image.shape == (3, 5, 3)
    np.testing.assert_array_equal(image.reshape(height, 15), rows[:, :15])
    with pytest.raises(SourceDecodeError, match="cannot hold"):
        rgb_from_padded(b"\0" * 40, width, height)


def _frame(i: int, pts: float | None = None) -> Frame:
    return Frame("s", i, pts, 0.0, np.zeros((2, 2, 3), np.uint8))


def test_drop_oldest_queue_keeps_the_newest_and_counts() -> None:
    q = FrameQueue(2, Overflow.DROP_OLDEST)
    for i in range(5):
        assert q.put(_frame(i))
    assert q.dropped == 3
    assert [q.get(0).index, q.get(0).index] == [3, 4]
    assert q.get(0.01) is None


def test_blocking_queue_waits_for_the_consumer() -> None:
    q = FrameQueue(1, Overflow.BLOCK)
    q.put(_frame(0))
    done = threading.Event()

    def produce() -> None:
        q.put(_frame(1))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.2), "put must block while the queue is full"
    assert q.get(1).index == 0
    assert done.wait(5)
    assert q.get(1).index == 1
    assert q.dropped == 0


def test_finished_queue_drains_then_raises_its_error() -> None:
    q = FrameQueue(4, Overflow.BLOCK)
    q.put(_frame(0))
    q.finish(SourceError("boom"))
    assert not q.put(_frame(1))
    assert q.get(0).index == 0
    with pytest.raises(SourceError, match="boom"):
        q.get(0)
    q2 = FrameQueue(4, Overflow.BLOCK)
    q2.finish()
    with pytest.raises(QueueClosed):
        q2.get(0)


def test_paced_follows_pts() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    frames = [_frame(i, i * 0.5) for i in range(4)]
    out = list(paced(frames, speed=2.0, clock=lambda: now[0], sleep=sleep))
    assert [f.index for f in out] == [0, 1, 2, 3]
    assert sleeps == pytest.approx([0.25, 0.25, 0.25])


def test_paced_in_real_time_is_not_faster_than_pts() -> None:
    frames = [_frame(i, i * 0.05) for i in range(5)]
    t0 = time.monotonic()
    list(paced(frames))
    assert time.monotonic() - t0 >= 0.19  # a lower bound only: never a speed assertion


def test_backoff_grows_caps_and_jitters() -> None:
    policy = BackoffPolicy(initial_s=1, max_s=8, factor=2, jitter=0.2)
    rng = random.Random(0)
    for failures, base in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8)]:
        delays = [policy.delay(failures, rng) for _ in range(50)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)
        assert len(set(delays)) > 1, "jitter must spread reconnects"
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter=1.5)


def test_threaded_file_source_is_exact_with_a_slow_consumer() -> None:

    with ThreadedSource(AvSource(asset_path("carphone_pristine.mp4"))) as source:
        indices = []
        for frame in source:
            indices.append(frame.index)
            time.sleep(0.001)
    assert indices == list(range(120))
    assert source.stats.dropped == 0


def test_threaded_live_policy_drops_the_oldest() -> None:

    source = ThreadedSource(
        AvSource(asset_path("carphone_pristine.mp4")), overflow=Overflow.DROP_OLDEST
    )
    with source:
        indices = []
        for frame in source:
            indices.append(frame.index)
            time.sleep(0.02)  # a consumer slower than the decoder
    assert source.stats.dropped > 0
    assert len(indices) + source.stats.dropped == 120
    assert indices == sorted(indices)
    assert indices[-1] == 119, "the newest frame is never the one dropped"


def test_threaded_source_raises_open_errors_in_open(tmp_path: Path) -> None:

    with pytest.raises(SourceOpenError, match="no such file"):
        ThreadedSource(AvSource(tmp_path / "absent.mp4")).open()
