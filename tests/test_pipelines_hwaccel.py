"""Hardware decoding in AvSource: fallback to software where there is no device, and the
stats that say which decoder ran. The ``gpu`` test checks the CUDA path where it exists."""

from __future__ import annotations

import queue
from types import SimpleNamespace

import numpy as np
import pytest

from monitor.assets import asset_path
from pipelines import av_source
from pipelines.av_source import AvSource
from pipelines.events import StatusEvent, Up
from pipelines.hwaccel import available_hwaccels, choose_device, probe_device
from pipelines.queueing import Overflow
from pipelines.supervisor import SupervisedSource, SupervisorSettings

CLIP = "carphone_pristine.mp4"
CLIP_FRAMES = 120
#: Mean absolute difference (0-255) allowed between NVDEC and FFmpeg's software H.264: both
#: are bit-exact decoders, but the picture reaches swscale as NV12 instead of YUV 4:2:0.
HW_PIXEL_TOLERANCE = 1.0


def _decode(**kw: object) -> tuple[list[np.ndarray], AvSource]:
    with AvSource(asset_path(CLIP), **kw) as source:  # type: ignore[arg-type]
        images = [frame.image for frame in source]
    return images, source


def test_cuda_without_a_device_falls_back_to_identical_software_frames() -> None:
    if "cuda" not in available_hwaccels():
        pytest.skip("this FFmpeg has no CUDA support")
    if probe_device("cuda") is None:
        pytest.skip("a CUDA device is present: test_cuda_decodes_on_the_device covers it")
    software, sw_source = _decode()
    fallback, hw_source = _decode(hwaccel="cuda")
    assert len(fallback) == len(software) == CLIP_FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(software, fallback, strict=True))
    stats = hw_source.stats
    assert stats.decoder == "h264"
    assert stats.hwaccel is None
    assert stats.hwaccel_note.startswith("cuda: cannot open the device")
    assert stats.decoder_summary.startswith("h264 in software (cuda: ")
    assert sw_source.stats.decoder_summary == "h264 in software"
    assert sw_source.stats.hwaccel_note == ""


def test_auto_decodes_and_says_how() -> None:
    images, source = _decode(hwaccel="auto")
    assert len(images) == CLIP_FRAMES
    device, why = choose_device("auto")
    assert source.stats.hwaccel == device
    if device is None:
        assert source.stats.hwaccel_note == why
        assert why, "software after asking for hardware must say why"


def test_unknown_device_type_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"hwaccel must be None, 'auto' or one of") as info:
        AvSource(asset_path(CLIP), hwaccel="no-such-device")
    assert str(available_hwaccels()) in str(info.value)
    with pytest.raises(ValueError, match="threads"):
        AvSource(asset_path(CLIP), threads=-1)


def test_a_device_the_codec_cannot_use_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg's H.264 decoder has no QSV hardware config here: PyAV attaches no device."""
    monkeypatch.setattr(av_source, "choose_device", lambda request, device: ("qsv", ""))
    images, source = _decode(hwaccel="qsv")
    assert len(images) == CLIP_FRAMES
    assert source.stats.hwaccel is None
    assert source.stats.hwaccel_note == "qsv: the h264 decoder cannot use it"


def test_first_picture_confirms_or_revokes_the_device() -> None:
    """The decoder may refuse the device once it has parsed the stream (profile, size)."""
    source = AvSource(asset_path(CLIP))
    source.stats.decoder = "h264"
    source._hw_formats, source.stats.hwaccel = {"cuda"}, "cuda"
    source._confirm_hardware(SimpleNamespace(pix_fmt="cuda"))  # type: ignore[arg-type]
    assert source.stats.decoder_summary == "h264 on cuda"

    source._hw_formats = {"cuda"}
    source._confirm_hardware(SimpleNamespace(pix_fmt="yuv420p"))  # type: ignore[arg-type]
    assert source.stats.hwaccel is None
    assert "refused" in source.stats.hwaccel_note
    assert source.stats.decoder_summary.startswith("h264 in software (cuda: ")


def test_supervised_source_reports_the_decoder() -> None:
    events: queue.Queue[StatusEvent] = queue.Queue()
    settings = SupervisorSettings(reconnect_on_eos=False, queue_size=8, overflow=Overflow.BLOCK)
    source = SupervisedSource(
        lambda: AvSource(asset_path(CLIP), hwaccel="cuda"), "cam", settings=settings, events=events
    )
    with source:
        frames = sum(1 for _ in source)
    assert frames == CLIP_FRAMES
    ups = [e for e in list(events.queue) if isinstance(e, Up)]
    assert len(ups) == 1
    assert ups[0].decoder.startswith("h264 ")
    assert source.stats.decoder == "h264"
    assert source.stats.decoder_summary == ups[0].decoder


@pytest.mark.gpu
def test_cuda_decodes_on_the_device() -> None:
    if "cuda" not in available_hwaccels():
        pytest.skip("this FFmpeg has no CUDA support")
    reason = probe_device("cuda")
    assert reason is None, reason
    software, _ = _decode()
    hardware, source = _decode(hwaccel="cuda")
    assert source.stats.hwaccel == "cuda", source.stats.hwaccel_note
    assert source.stats.decoder_summary == "h264 on cuda"
    assert len(hardware) == len(software) == CLIP_FRAMES
    diffs = [
        np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
        for a, b in zip(software, hardware, strict=True)
    ]
    assert max(diffs) < HW_PIXEL_TOLERANCE, max(diffs)
