"""Dark video: faces are found, tracked and meshed by default; faceless dark frames stay empty,
and normal frames are detected exactly as before. Counts, never timings."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import av
import numpy as np
import pytest

from monitor.assets import asset_path
from monitor.faces import FaceDetector, FaceLandmarker, FaceStage, TrackEventKind, TrackState
from monitor.faces.exposure import DARK_TARGET_P90, MAX_GAIN, brighten, dark_gain, normalised
from pipelines.av_source import AvFileSource
from pipelines.frame import Frame

DARK = 0.05  # RGB x 0.05: a very dark room


def _darken(image: np.ndarray, factor: float) -> np.ndarray:
    return (image.astype(np.float32) * factor).astype(np.uint8)


def _clip(name: str, factor: float, limit: int | None = None) -> Iterator[Frame]:
    with AvFileSource(asset_path(name)) as source:
        for frame in source:
            if limit is not None and frame.index >= limit:
                return
            yield dataclasses.replace(frame, image=_darken(frame.image, factor))


def _read_first(name: str) -> np.ndarray:
    with av.open(str(asset_path(name))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _still(name: str, factor: float, n: int = 20) -> Iterator[Frame]:
    dark = _darken(_read_first(name), factor)
    for i in range(n):
        yield Frame(stream_id="still", index=i, pts=i / 25, wall_time=0.0, image=dark)


def _run(stage: FaceStage, frames: Iterator[Frame]) -> tuple[float, float, set[int]]:
    """Fraction of frames with a confirmed face, with a confirmed face that has a mesh, and
    the ids of the tracks confirmed."""
    confirmed = meshed = n = 0
    ids: set[int] = set()
    for frame in frames:
        out = stage.process(frame)
        live = out.faces.states == TrackState.CONFIRMED
        confirmed += bool(live.any())
        meshed += bool((live & out.landmarks.found).any())
        ids |= {e.track_id for e in out.events if e.kind == TrackEventKind.CONFIRMED}
        n += 1
    return confirmed / n, meshed / n, ids


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def test_a_dark_clip_yields_its_face_by_default(landmarker: FaceLandmarker) -> None:
    """carphone_pristine.mp4 darkened x0.05: the frame as it is scores the face 0.4-0.7 (under
    the 0.7 that starts a track) and the mesh's face flag mostly fails; the default detector
    and landmarker see the frame brightened and track one face, meshed, through the clip."""
    with FaceDetector() as detector:
        confirmed, meshed, ids = _run(
            FaceStage(detector, landmarker=landmarker), _clip("carphone_pristine.mp4", DARK)
        )
    assert confirmed > 0.9
    assert meshed > 0.9
    assert len(ids) == 1
    with FaceDetector(low_light=False) as plain:
        before, _, _ = _run(
            FaceStage(plain, landmarker=FaceLandmarker(low_light=False)),
            _clip("carphone_pristine.mp4", DARK),
        )
    assert before < 0.5


def test_a_dark_two_person_clip_keeps_its_coverage(landmarker: FaceLandmarker) -> None:
    """Megamind.avi (a film, 1-2 faces, its own dark shots) darkened x0.05."""
    with FaceDetector() as detector:
        confirmed, meshed, _ = _run(
            FaceStage(detector, landmarker=landmarker), _clip("Megamind.avi", DARK, limit=150)
        )
    assert confirmed > 0.9
    assert meshed > 0.85


@pytest.mark.parametrize("factor", [0.2, DARK])
@pytest.mark.parametrize("name", ["logo.png", "coffee.png"])
def test_dark_faceless_pictures_start_no_track(name: str, factor: float) -> None:
    with FaceDetector() as detector:
        confirmed, _, ids = _run(FaceStage(detector), _still(name, factor))
    assert dark_gain(_darken(_read_first(name), factor)) > 1.0  # the brightened path ran
    assert confirmed == 0
    assert ids == set()


def test_dark_sensor_noise_starts_no_track() -> None:
    rng = np.random.default_rng(7)
    frames = (
        Frame(
            stream_id="noise",
            index=i,
            pts=i / 25,
            wall_time=0.0,
            image=np.clip(rng.normal(4, 2, (288, 360, 3)), 0, 255).astype(np.uint8),
        )
        for i in range(30)
    )
    with FaceDetector() as detector:
        confirmed, _, ids = _run(FaceStage(detector), frames)
    assert confirmed == 0
    assert ids == set()


def test_normal_frames_are_detected_exactly_as_before() -> None:
    """No test media frame counts as dark, so the default detects them untouched."""
    with FaceDetector() as on, FaceDetector(low_light=False) as off:
        for name in ("franck.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"):
            for frame in _clip(name, 1.0, limit=40):
                if frame.index % 10:
                    continue
                assert dark_gain(frame.image) == 1.0
                a, b = on.detect(frame.image), off.detect(frame.image)
                assert np.array_equal(a.xyxy, b.xyxy)
                assert np.array_equal(a.scores, b.scores)


def test_dark_gain_undoes_darkening() -> None:
    image = _read_first("grace_hopper_512x512.jpg")
    assert dark_gain(image) == 1.0
    assert normalised(image) is image
    dark = _darken(image, DARK)
    gain = dark_gain(dark)
    assert 10 < gain < 32
    restored = brighten(dark, gain).astype(np.float64)
    # The 90th luma percentile lands on the target; the picture correlates with the original
    # (a gain: only the quantisation of the dark picture is lost).
    luma = restored @ [0.299, 0.587, 0.114]
    assert abs(np.percentile(luma, 90) - DARK_TARGET_P90) < 15
    assert np.corrcoef(restored.ravel(), image.astype(np.float64).ravel())[0, 1] > 0.97
    # A black frame gets the largest gain, and stays black.
    black = np.zeros((10, 10, 3), np.uint8)
    assert dark_gain(black) == MAX_GAIN
    assert not brighten(black, MAX_GAIN).any()
