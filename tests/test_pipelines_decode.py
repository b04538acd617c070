"""PyAV and GStreamer sources on real clips: formats, parity, options, broken files."""

from __future__ import annotations

import functools
import itertools
import queue
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from monitor.assets import asset_path
from pipelines import gst_source
from pipelines.av_source import CORRUPT_WINDOW_PACKETS, MAX_CORRUPT_FRACTION, AvSource
from pipelines.errors import BackendUnavailableError, SourceDecodeError, SourceOpenError
from pipelines.events import Down, StatusEvent
from pipelines.gst_source import GstSource
from pipelines.queueing import FILE_QUEUE_SIZE, Overflow, paced
from pipelines.source import DecodeOptions, Source
from pipelines.supervisor import SupervisedSource, SupervisorSettings
from tests.support.clips import (
    CLIP_FRAMES,
    cut,
    ffmpeg_frame_count,
    make_clip,
    overwrite,
    packet_offsets,
    truncate,
)

#: Mean absolute difference (0-255) allowed between backends: both decode the same bits, but
#: their YUV->RGB conversions round (and, for HD, pick the matrix) differently.
BACKEND_PIXEL_TOLERANCE = 4.0


def _read(source: Source) -> list:
    with source:
        return list(source)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The container formats the product promises, made from the same frames."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "mp4": asset_path("carphone_pristine.mp4"),
        "avi": make_clip(d / "c.avi", codec_args=["-c:v", "mpeg4", "-q:v", "3"]),
        "webm": make_clip(d / "c.webm", codec_args=["-c:v", "libvpx", "-b:v", "400k"]),
        # 175x143 RGB: GStreamer pads its rows to 528 bytes, so stride handling is exercised.
        "mkv": make_clip(
            d / "odd.mkv", codec_args=["-c:v", "ffv1"], vf="format=yuv444p,crop=175:143:0:0"
        ),
    }


@pytest.mark.parametrize("fmt", ["mp4", "avi", "webm", "mkv"])
def test_av_decodes_each_container(clips: dict[str, Path], fmt: str) -> None:
    frames = _read(AvSource(clips[fmt]))
    expected = 120 if fmt == "mp4" else CLIP_FRAMES
    assert len(frames) == expected
    assert [f.index for f in frames] == list(range(expected))
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert frames[0].image.dtype == np.uint8
    assert frames[0].image.std() > 20


@pytest.mark.gstreamer
@pytest.mark.parametrize("fmt", ["mp4", "avi", "webm", "mkv"])
def test_backends_agree(clips: dict[str, Path], fmt: str) -> None:
    av_frames = _read(AvSource(clips[fmt]))
    gst_frames = _read(GstSource(clips[fmt]))
    assert len(gst_frames) == len(av_frames)
    assert gst_frames[0].image.shape == av_frames[0].image.shape
    for a, g in zip(av_frames, gst_frames, strict=True):
        diff = np.abs(a.image.astype(np.int16) - g.image.astype(np.int16)).mean()
        assert diff < BACKEND_PIXEL_TOLERANCE, f"frame {a.index}: mean difference {diff:.2f}"


@pytest.mark.gstreamer
@pytest.mark.slow
@pytest.mark.parametrize("name", ["Megamind.avi", "bigbuckbunny.mp4"])
def test_backends_agree_on_fetched_clips(name: str) -> None:
    av_frames = _read(AvSource(asset_path(name)))
    gst_frames = _read(GstSource(asset_path(name)))
    assert len(av_frames) == len(gst_frames) == {"Megamind.avi": 270, "bigbuckbunny.mp4": 132}[name]
    for a, g in zip(av_frames[::10], gst_frames[::10], strict=True):
        diff = np.abs(a.image.astype(np.int16) - g.image.astype(np.int16)).mean()
        assert diff < BACKEND_PIXEL_TOLERANCE


@pytest.mark.parametrize(
    "backend", [AvSource, pytest.param(GstSource, marks=pytest.mark.gstreamer)]
)
def test_decimation_and_max_size(backend: type[Source]) -> None:
    """franck.mp4 is 24 fps: 10 fps keeps pictures 0, 3, 5, 8, 10, ...; 360x288 -> 200x160."""
    options = DecodeOptions(max_fps=10, max_width=200)
    with backend(asset_path("franck.mp4"), options=options) as source:
        frames = list(itertools.islice(source, 20))
    assert frames[0].image.shape == (160, 200, 3)
    assert [f.index for f in frames[:5]] == [0, 3, 5, 8, 10]
    gaps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]
    assert all(0.08 <= g <= 0.13 for g in gaps)
    assert source.stats.skipped >= 25


@pytest.mark.gstreamer
def test_gst_user_pipeline(tmp_path: Path) -> None:
    path = asset_path("carphone_pristine.mp4")
    launch = (
        f'filesrc location="{path}" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert '
        "! video/x-raw,format=RGB ! appsink name=sink sync=false"
    )
    frames = _read(GstSource(pipeline=launch, stream_id="custom"))
    assert len(frames) == 120
    assert frames[0].stream_id == "custom"
    with pytest.raises(SourceOpenError, match="appsink named 'sink'"):
        GstSource(pipeline="videotestsrc ! fakesink name=sink").open()
    with pytest.raises(ValueError, match="DecodeOptions"):
        GstSource(pipeline=launch, options=DecodeOptions(max_fps=5))


def test_missing_gstreamer_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> None:
        raise ImportError("No module named 'gi'")

    monkeypatch.setattr(gst_source, "load_gst", unavailable)
    with pytest.raises(BackendUnavailableError, match="PyAV backend") as info:
        GstSource("clip.mp4")
    assert isinstance(info.value, ImportError)


BACKENDS = [AvSource, pytest.param(GstSource, marks=pytest.mark.gstreamer)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_garbage_file_is_an_open_error_naming_it(backend: type[Source], tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 64 * 1024, np.uint8).tobytes())
    with pytest.raises(SourceOpenError, match=r"junk\.mp4"):
        _read(backend(junk))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_files_fail_clearly(backend: type[Source], tmp_path: Path) -> None:
    """Index at the end (camera recordings): no index, cannot open. Index first: cut short."""
    franck = asset_path("franck.mp4")
    tail_index = truncate(franck, tmp_path / "cut.mp4", 0.1)
    # GStreamer's qtdemux sometimes waits silently instead of failing: its open timeout fires.
    quick = {"open_timeout_s": 3} if backend is GstSource else {}
    with pytest.raises(SourceOpenError, match=r"cut\.mp4"):
        _read(backend(tail_index, **quick))
    faststart = make_clip(
        tmp_path / "fs.mp4", codec_args=["-c:v", "libx264", "-movflags", "+faststart"]
    )
    cut = truncate(faststart, tmp_path / "fs_cut.mp4", 0.5)
    if backend is AvSource:
        with pytest.raises(SourceDecodeError, match=r"fs_cut\.mp4.*truncated"):
            _read(backend(cut))
    else:  # qtdemux stops early without an error: short, never a hang
        assert len(_read(backend(cut))) < CLIP_FRAMES


#: Pictures by which PyAV, GStreamer and the ffmpeg CLI may differ on a damaged file: each
#: conceals damage its own way (measured: all three decode 689 of the damaged 720).
CORRUPT_FRAME_SLACK = 3


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """franck.mp4's first 720 pictures (30 s, one keyframe every 250), copied, then damaged.

    ``damaged.mp4``: 12 KB of noise from packet 360 on (about 18 packets, mid-GOP), a bad
    sector or a flipped buffer. ``garbage.mp4``: noise over packets 200 to 600, far past the
    error rate a source accepts.
    """
    d = tmp_path_factory.mktemp("damaged")
    clip = cut(asset_path("franck.mp4"), d / "clip.mp4", 720)
    offsets = packet_offsets(clip)
    return (
        overwrite(clip, d / "damaged.mp4", offsets[360], 12_000),
        overwrite(clip, d / "garbage.mp4", offsets[200], offsets[600] - offsets[200]),
    )


@pytest.mark.timeout(120)
def test_av_skips_corrupt_packets_like_the_ffmpeg_cli(damaged: tuple[Path, Path]) -> None:
    """One damaged packet is not the end of a file: skip it, count it, decode the rest."""
    path = damaged[0]
    source = AvSource(path)
    frames = _read(source)
    reference = ffmpeg_frame_count(path)
    assert reference > 600  # the damage costs the ffmpeg CLI a few dozen pictures at most
    assert abs(len(frames) - reference) <= CORRUPT_FRAME_SLACK
    assert source.stats.corrupt_packets > 0
    assert all(b.index > a.index for a, b in itertools.pairwise(frames))
    assert frames[-1].pts > 29.0, "decoding went on to the end of the clip"


@pytest.mark.gstreamer
@pytest.mark.timeout(120)
def test_backends_agree_on_a_damaged_file(damaged: tuple[Path, Path]) -> None:
    av_frames = _read(AvSource(damaged[0]))
    gst_frames = _read(GstSource(damaged[0]))
    assert abs(len(av_frames) - len(gst_frames)) <= CORRUPT_FRAME_SLACK


@pytest.mark.timeout(120)
def test_garbage_past_the_error_rate_is_a_decode_error(damaged: tuple[Path, Path]) -> None:
    source = AvSource(damaged[1])
    with pytest.raises(SourceDecodeError, match=r"garbage\.mp4: \d+ of the last \d+ packets"):
        _read(source)
    assert source.stats.corrupt_packets > CORRUPT_WINDOW_PACKETS * MAX_CORRUPT_FRACTION


@pytest.mark.timeout(120)
def test_a_live_source_keeps_going_through_corrupt_packets(
    damaged: tuple[Path, Path], http_root: tuple[str, Path]
) -> None:
    """Over HTTP (a live kind), supervised: corrupt packets are counted, never a reconnect."""
    base, root = http_root
    (root / "live.mp4").write_bytes(damaged[0].read_bytes())
    events: queue.Queue[StatusEvent] = queue.Queue()
    settings = SupervisorSettings(
        reconnect_on_eos=False, queue_size=FILE_QUEUE_SIZE, overflow=Overflow.BLOCK
    )
    source = SupervisedSource(
        lambda: AvSource(f"{base}/live.mp4", "cam"), "cam", settings=settings, events=events
    )
    frames = _read(source)
    seen = [type(e) for e in iter_queue(events)]
    assert Down not in seen, seen
    assert source.stats.reconnects == 0
    assert source.stats.corrupt_packets > 0
    assert abs(len(frames) - ffmpeg_frame_count(damaged[0])) <= CORRUPT_FRAME_SLACK


def iter_queue(events: queue.Queue[StatusEvent]) -> Iterator[StatusEvent]:
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return


def test_sources_decode_in_parallel_threads() -> None:
    """Many streams, one process: each source in its own thread gives what it gives alone."""
    names = ["carphone_pristine.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4"]
    alone = [[f.image.sum() for f in _read(AvSource(asset_path(n)))] for n in names]
    results: dict[int, list] = {}

    def run(i: int) -> None:
        results[i] = [f.image.sum() for f in _read(AvSource(asset_path(names[i])))]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [results[i] for i in range(len(names))] == alone


def test_real_time_replay_of_a_file() -> None:
    with AvSource(asset_path("carphone_pristine.mp4")) as source:
        frames = list(itertools.islice(paced(source, speed=4.0), 12))
    assert [f.index for f in frames] == list(range(12))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path`` (progressive download and HLS)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_http_and_hls(backend: type[Source], http_root: tuple[str, Path]) -> None:
    base, root = http_root
    src = str(asset_path("carphone_pristine.mp4"))
    # Index first: http.server ignores Range requests, so FFmpeg could not seek to a trailing
    # index (real web servers and CDNs honour Range).
    for args in (
        ["-movflags", "+faststart", str(root / "clip.mp4")],
        ["-hls_time", "1", "-hls_playlist_type", "vod", str(root / "live.m3u8")],
    ):
        cmd = ["ffmpeg", "-v", "error", "-i", src, "-c", "copy", *args]
        subprocess.run(cmd, check=True, timeout=60)
    assert len(_read(backend(f"{base}/clip.mp4"))) == 120
    hls = _read(backend(f"{base}/live.m3u8"))
    assert len(hls) == 120
    assert hls[0].image.shape == (144, 176, 3)
