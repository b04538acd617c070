"""PyAV source on the real test clips, and on real streams served from 127.0.0.1."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from monitor.assets import asset_path
from pipelines.av_source import AvFileSource, AvSource
from pipelines.errors import SourceOpenError, SourceTimeoutError
from pipelines.frame import Frame
from tests.support.clips import concat, packets, without_pictures


def test_decodes_every_frame_in_order() -> None:
    with AvFileSource(asset_path("carphone_pristine.mp4")) as source:
        frames = list(source)
    assert len(frames) == source.stats.frames == 120
    assert [f.index for f in frames] == list(range(120))
    assert all(f.stream_id == "carphone_pristine" for f in frames)
    assert frames[0].image.shape == (144, 176, 3)
    assert frames[0].image.dtype == np.uint8
    pts = [f.pts for f in frames]
    assert pts[0] == pytest.approx(0.0, abs=0.1)
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts must increase"
    # A real picture, not a blank buffer: a talking head has texture.
    assert frames[60].image.std() > 20


def test_pristine_and_distorted_show_the_same_scene() -> None:
    """The carphone pair is the same frames at two qualities: close, but not equal."""
    with AvFileSource(asset_path("carphone_pristine.mp4")) as a:
        clean = next(iter(a)).image.astype(np.float32)
    with AvFileSource(asset_path("carphone_distorted.mp4")) as b:
        bad = next(iter(b)).image.astype(np.float32)
    diff = np.abs(clean - bad).mean()
    assert 1.0 < diff < 40.0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceOpenError, match="no such file"):
        AvFileSource(tmp_path / "absent.mp4").open()


def test_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 64 * 1024, np.uint8).tobytes())
    with pytest.raises(SourceOpenError, match=r"junk\.mp4"):
        AvFileSource(junk).open()


def test_read_before_open_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="open the source"):
        iter(AvFileSource("x.mp4")).__next__()


def test_frame_rejects_wrong_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Frame("s", 0, 0.0, 0.0, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        Frame("s", 0, 0.0, 0.0, np.zeros((4, 4), np.uint8))


#: Seconds between the chunks of a paced stream; far below any read timeout used here.
PACE_S = 0.08
#: A packet stripped of its slices: an access unit delimiter in a Matroska block.
EMPTY_PACKET_BYTES = 16


@contextlib.contextmanager
def paced_server(data: bytes, fast: int, chunk: int) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 sending ``data[:fast]`` at once, then ``chunk`` bytes
    every ``PACE_S``: a live stream, as slow as a camera. Yields the URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the client may hang up early
                self.wfile.write(data[:fast])
                for i in range(fast, len(data), chunk):
                    self.wfile.flush()
                    time.sleep(PACE_S)
                    self.wfile.write(data[i : i + chunk])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam.mkv"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(120)
def test_packets_without_pictures_trip_the_read_timeout(tmp_path: Path) -> None:
    """A live stream that keeps sending packets but no picture is caught at the read timeout.

    2 s of franck.mp4, then 4.5 s whose packets hold no slice (no picture), paced at about
    one packet per ``PACE_S``: FFmpeg's own timeout never fires (data flows), so only a check
    made at every packet can notice. Before that check, the stream just ended normally.
    """
    franck = asset_path("franck.mp4")
    good = tmp_path / "good.mkv"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(franck), "-t", "2", "-an", "-c", "copy"]
    subprocess.run([*cmd, str(good)], check=True, timeout=120)
    empty = without_pictures(franck, tmp_path / "empty.mkv", 2.0, 2.5)
    clip = concat([good, empty], tmp_path / "clip.mkv")
    # Send every packet with a picture at once, pace the rest (about 12 bytes a packet).
    fast = next(pos for pos, size in packets(clip) if size <= EMPTY_PACKET_BYTES)
    frames: list[Frame] = []

    def read(source: AvSource) -> None:
        with source:
            frames.extend(source)

    with paced_server(clip.read_bytes(), fast, chunk=12) as url:
        source = AvSource(url, read_timeout_s=3)
        with pytest.raises(SourceTimeoutError, match="packets but no picture"):
            read(source)
    # Every picture before the gap was delivered, but for the ones the decoder still holds
    # back to reorder B-frames (franck.mp4: 2), which only more pictures or an end release.
    with AvSource(good) as alone:
        before_gap = len(list(alone))
    assert before_gap - 2 <= len(frames) <= before_gap
    assert source.stats.corrupt_packets > 0  # a packet without a slice is "no frame!"
