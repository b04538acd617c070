"""PyAV file source on the real test clips."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from monitor.assets import asset_path
from pipelines.av_source import AvFileSource
from pipelines.errors import SourceOpenError
from pipelines.frame import Frame


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
