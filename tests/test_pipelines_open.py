"""``open_source``, supervision stats across reconnects, and ``fqm bench decode --streams``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.assets import asset_path
from monitor.cli.bench import bench_cli
from pipelines.av_source import AvSource
from pipelines.backoff import BackoffPolicy
from pipelines.errors import SourceOpenError
from pipelines.open import open_source
from pipelines.queueing import Overflow
from pipelines.source import DecodeOptions, Source
from pipelines.supervisor import SupervisedSource, SupervisorSettings
from tests.support.clips import CLIP_FRAMES, make_clip
from tests.support.rtsp_server import free_port

CLIP = "carphone_pristine.mp4"
CLIP_FRAMES_FULL = 120
SECRET = "s3cr3t-pw"


def test_a_file_gets_a_bare_source_that_reads_every_frame() -> None:
    source = open_source(asset_path(CLIP), options=DecodeOptions(max_width=88))
    assert isinstance(source, AvSource)
    assert source.stream_id == "carphone_pristine"
    with source:
        frames = list(source)
    assert len(frames) == CLIP_FRAMES_FULL
    assert frames[0].image.shape == (72, 88, 3)


@pytest.mark.gstreamer
def test_gst_backend() -> None:
    from pipelines.gst_source import GstSource

    source = open_source(asset_path(CLIP), "gst", stream_id="clip")
    assert isinstance(source, GstSource)
    with source:
        assert sum(1 for _ in source) == CLIP_FRAMES_FULL
    assert source.stats.decoder == "avdec_h264"
    assert source.stats.decoder_summary == "avdec_h264 in software"


@pytest.mark.parametrize(
    ("url", "stream_id"),
    [
        (f"rtsp://admin:{SECRET}@10.0.0.5:554/stream1", "10.0.0.5:554/stream1"),
        ("rtsps://cam.local/live", "cam.local/live"),
        ("http://cam.local/hls/index.m3u8", "cam.local/hls/index.m3u8"),
        ("/dev/video0", "video0"),
    ],
)
def test_live_locations_are_supervised(url: str, stream_id: str) -> None:
    settings = SupervisorSettings(stall_timeout_s=4)
    source = open_source(url, rtsp_transport="udp", settings=settings)  # nothing connects yet
    assert isinstance(source, SupervisedSource)
    assert source.stream_id == stream_id
    assert source.settings is settings
    inner = source.factory()
    assert isinstance(inner, AvSource)
    assert inner.read_timeout_s == 4, "a stuck reader must exit within the stall timeout"
    assert inner.rtsp_transport == "udp"
    assert inner.location == url


def test_live_can_be_forced_either_way() -> None:
    bare = open_source(f"rtsp://admin:{SECRET}@cam/s", live=False)
    assert isinstance(bare, AvSource)
    settings = SupervisorSettings(reconnect_on_eos=False, queue_size=8, overflow=Overflow.BLOCK)
    replay = open_source(asset_path(CLIP), live=True, settings=settings)
    assert isinstance(replay, SupervisedSource)
    with replay:
        assert sum(1 for _ in replay) == CLIP_FRAMES_FULL


def test_bad_backend_or_option_names_the_location_masked() -> None:
    url = f"rtsp://admin:{SECRET}@10.0.0.5/stream1"
    with pytest.raises(ValueError, match="backend must be one of") as info:
        open_source(url, "opencv")
    assert SECRET not in str(info.value)
    assert "rtsp://admin:***@10.0.0.5/stream1" in str(info.value)
    with pytest.raises(ValueError, match="hwaccel") as info:
        open_source(url, hwaccel="no-such-device")
    assert SECRET not in str(info.value)
    assert "admin:***@" in str(info.value)
    with pytest.raises(ValueError, match="GStreamer backend takes hwaccel") as info:
        open_source(url, "gst", hwaccel="qsv")
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="decoder_threads"):
        open_source(url, "gst", decoder_threads=2)


def test_open_errors_mask_the_password() -> None:
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/live"  # nothing listens there
    source = open_source(url, live=False)
    with pytest.raises(SourceOpenError) as info:
        source.open()
    assert SECRET not in str(info.value)
    assert "admin:***@127.0.0.1" in str(info.value)
    with pytest.raises(SourceOpenError, match="no such file"):
        open_source("/nonexistent/clip.mp4").open()


def test_supervised_stats_add_up_across_reconnects() -> None:
    """A file reconnected at each end: decode time and skips sum over every inner source."""
    made: list[Source] = []

    def factory() -> Source:
        source = AvSource(asset_path(CLIP), options=DecodeOptions(max_fps=15))
        made.append(source)
        return source

    settings = SupervisorSettings(
        backoff=BackoffPolicy(initial_s=0.01, max_s=0.02),
        max_failures=None,
        queue_size=8,
        overflow=Overflow.BLOCK,
    )
    wanted = 2 * 60 + 10  # two full passes (15 of 30 fps kept) and part of a third
    got = 0
    with SupervisedSource(factory, "cam", settings=settings) as source:
        for _ in source:
            got += 1
            if got == wanted:
                break
    stats = source.stats
    assert len(made) >= 3
    assert stats.reconnects >= 2
    assert stats.frames == wanted
    assert stats.decode_seconds == pytest.approx(sum(s.stats.decode_seconds for s in made))
    assert stats.decode_seconds > made[0].stats.decode_seconds + made[1].stats.decode_seconds / 2
    assert stats.skipped == sum(s.stats.skipped for s in made) >= 2 * 60
    assert sum(s.stats.frames for s in made) >= stats.frames
    assert stats.decoder_summary == "h264 in software"


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "small.mp4"
    return make_clip(out, codec_args=["-c:v", "libx264", "-preset", "ultrafast"])


@pytest.mark.parametrize("backend", ["av", pytest.param("gst", marks=pytest.mark.gstreamer)])
def test_bench_decode_streams_json(small_clip: Path, backend: str) -> None:
    args = ["decode", str(small_clip), "--streams", "2", "--json", "--backend", backend]
    result = CliRunner().invoke(bench_cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["streams"] == 2
    assert report["frames_per_stream"] == [CLIP_FRAMES, CLIP_FRAMES]
    assert report["single_stream_frames"] == CLIP_FRAMES
    assert len(report["per_stream_fps"]) == 2
    assert (report["width"], report["height"]) == (176, 144)
    for key in ("aggregate_fps", "single_stream_fps", "aggregate_ratio", "per_stream_ratio"):
        assert report[key] > 0
    assert "in software" in report["decoder"]


def test_bench_decode_streams_table_and_max_frames(small_clip: Path) -> None:
    args = ["decode", str(small_clip), "--streams", "3", "--max-frames", "5"]
    result = CliRunner().invoke(bench_cli, args)
    assert result.exit_code == 0, result.output
    assert "aggregate" in result.output
    assert "    3      15" in result.output  # 3 streams, 5 frames each


def test_bench_decode_single_reports_the_decoder() -> None:
    result = CliRunner().invoke(
        bench_cli, ["decode", str(asset_path(CLIP)), "--json", "--hwaccel", "cuda"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames"] == CLIP_FRAMES_FULL
    assert report["decoder"].startswith("h264 ")
    bad = CliRunner().invoke(bench_cli, ["decode", str(asset_path(CLIP)), "--hwaccel", "nope"])
    assert bad.exit_code == 2
    assert "hwaccel must be" in bad.output
