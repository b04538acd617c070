"""Face detection and tracking on real video: one person = one track, two people = two ids,
non-faces rejected. Counts, never timings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np
import pytest

from monitor.assets import asset_path
from monitor.faces import FaceDetector, FaceLandmarker, FaceStage, TrackEventKind, TrackState
from pipelines.av_source import AvFileSource
from pipelines.frame import Frame


@pytest.fixture(scope="module")
def detector() -> Iterator[FaceDetector]:
    with FaceDetector() as d:
        yield d


@dataclass
class Run:
    """What a clip produced: confirmed ids per processed frame, and all events."""

    ids: list[list[int]] = field(default_factory=list)
    boxes: list[dict[int, np.ndarray]] = field(default_factory=list)
    events: list = field(default_factory=list)

    @property
    def confirmed_ids(self) -> set[int]:
        return {e.track_id for e in self.events if e.kind == TrackEventKind.CONFIRMED}

    def id_switches(self) -> int:
        """For a one-person clip: every id after the first is a switch (or a fragment)."""
        return max(len(self.confirmed_ids) - 1, 0)

    def coverage(self) -> float:
        return float(np.mean([len(i) > 0 for i in self.ids]))


def run_clip(stage: FaceStage, name: str, *, step: int = 1, limit: int | None = None) -> Run:
    run = Run()
    with AvFileSource(asset_path(name)) as source:
        for frame in source:
            if limit is not None and frame.index >= limit:
                break
            if frame.index % step:
                continue
            result = stage.process(frame)
            live = result.faces.in_state(TrackState.CONFIRMED, TrackState.LOST)
            run.ids.append(live.track_ids.tolist())
            run.boxes.append(dict(zip(live.track_ids.tolist(), live.xyxy, strict=True)))
            run.events.extend(result.events)
    run.events.extend(stage.finish())
    return run


def test_carphone_is_one_track_with_no_id_switch(detector: FaceDetector) -> None:
    run = run_clip(FaceStage(detector), "carphone_pristine.mp4")
    assert run.id_switches() == 0
    assert run.coverage() > 0.95  # confirmed from the third frame on
    assert max(len(i) for i in run.ids) == 1
    ended = [e for e in run.events if e.kind == TrackEventKind.ENDED]
    assert len(ended) == 1
    assert ended[0].summary.hits >= 115


def test_carphone_detecting_every_third_frame_keeps_one_track(detector: FaceDetector) -> None:
    run = run_clip(FaceStage(detector, detect_every=3), "carphone_pristine.mp4")
    assert run.id_switches() == 0
    assert run.coverage() > 0.9


def test_franck_whole_clip_every_4th_frame_is_one_track(detector: FaceDetector) -> None:
    """4800 frames decimated to 1200: bigger steps between frames than live video has."""
    run = run_clip(FaceStage(detector), "franck.mp4", step=4)
    assert len(run.ids) == 1200
    assert run.id_switches() == 0
    assert run.coverage() > 0.95
    assert max(len(i) for i in run.ids) == 1


@pytest.mark.slow
def test_franck_every_frame_with_detection_every_other_frame_is_one_track(
    detector: FaceDetector,
) -> None:
    run = run_clip(FaceStage(detector, detect_every=2), "franck.mp4")
    assert len(run.ids) == 4800
    assert run.id_switches() == 0
    assert run.coverage() > 0.95


def test_megamind_two_faces_keep_separate_ids(detector: FaceDetector) -> None:
    """Shot 1 (frames 0-97): a woman in front (left) and a man behind her (right).

    The man's face scores only 0.4-0.6 most of the time; the tracker's low-score pass keeps
    his track. Each id must stay on its own side of the picture for the whole shot.
    """
    run = run_clip(FaceStage(detector), "Megamind.avi", limit=98)
    both = [b for b in run.boxes if len(b) == 2]
    assert len(both) > 60
    ids = set(both[0])
    assert len(ids) == 2
    left, right = sorted(ids, key=lambda i: both[0][i][0])
    for boxes in both:
        assert set(boxes) == ids
        assert (boxes[left][0] + boxes[left][2]) / 2 < 400 < (boxes[right][0] + boxes[right][2]) / 2


@pytest.mark.parametrize("name", ["logo.png", "coffee.png"])
@pytest.mark.parametrize("model", ["short", "full"])
def test_non_faces_are_rejected_at_the_default_threshold(name: str, model: str) -> None:
    with av.open(str(asset_path(name))) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    with FaceDetector(model) as d:
        assert len(d.faces(d.detect(image))) == 0
        # Nor does a tracker fed the still for many frames ever confirm a face.
        stage = FaceStage(d)
        for i in range(8):
            result = stage.process(
                Frame(stream_id="still", index=i, pts=i / 25, wall_time=0.0, image=image)
            )
            assert len(result.faces.in_state(TrackState.CONFIRMED)) == 0


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_frames_have_no_faces(detector: FaceDetector, value: int) -> None:
    image = np.full((288, 360, 3), value, np.uint8)
    assert len(detector.detect(image)) == 0


def test_noise_frames_have_no_faces(detector: FaceDetector) -> None:
    image = np.random.default_rng(0).integers(0, 256, (288, 360, 3), dtype=np.uint8)
    assert len(detector.faces(detector.detect(image))) == 0


def test_full_range_finds_the_small_faces_of_a_group_photo() -> None:
    with av.open(str(asset_path("t1.jpg"))) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    with FaceDetector("short") as short, FaceDetector("both") as both:
        assert len(short.faces(short.detect(image))) == 0
        assert len(both.faces(both.detect(image))) >= 5


def test_stage_gives_landmarks_to_confirmed_detected_faces_only(detector: FaceDetector) -> None:
    stage = FaceStage(detector, landmarker=FaceLandmarker(), detect_every=2)
    with AvFileSource(asset_path("carphone_pristine.mp4")) as source:
        results = [stage.process(f) for f, _ in zip(source, range(10), strict=False)]
    for r in results:
        confirmed = (r.faces.states == TrackState.CONFIRMED) & (r.faces.detection_index >= 0)
        assert r.landmarks.found.tolist() == confirmed.tolist()
        if not r.detected:
            assert len(r.detections) == 0
    assert any(r.landmarks.found.any() for r in results)
    assert not results[1].detected


def test_detector_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="low_score <= min_score"):
        FaceDetector(min_score=0.3, low_score=0.5)
    with pytest.raises(ValueError, match="model must be"):
        FaceDetector("far")  # type: ignore[arg-type]


def test_megamind_tracks_end_at_shot_cuts_so_no_id_crosses_to_another_person(
    detector: FaceDetector,
) -> None:
    """Cuts at frames 1 (after a black frame), 98, 154 and 200.

    Without cut handling, the man who appears at 98 where the background man stood would
    inherit his id.
    """
    stage = FaceStage(detector)
    cuts, spans = [], {}
    with AvFileSource(asset_path("Megamind.avi")) as source:
        for frame in source:
            result = stage.process(frame)
            if result.shot_cut:
                cuts.append(frame.index)
            for e in result.events:
                if e.kind == TrackEventKind.ENDED:
                    spans[e.track_id] = (e.summary.first_frame, e.summary.last_frame)
    for e in stage.finish():
        spans[e.track_id] = (e.summary.first_frame, e.summary.last_frame)
    assert cuts == [1, 98, 154, 200]  # frame 0 is a black fade-in frame
    shots = [(1, 97), (98, 153), (154, 199), (200, 269)]
    for first, last in spans.values():
        assert any(a <= first and last <= b for a, b in shots), (first, last)
    assert len(spans) == 5  # two faces in shot 1, one in each later shot


def test_no_shot_cuts_in_continuous_clips() -> None:
    from monitor.faces.shot_cut import ShotCutDetector

    for name in ("franck.mp4", "carphone_pristine.mp4"):
        cuts = ShotCutDetector()
        with AvFileSource(asset_path(name)) as source:
            assert not any(cuts.is_cut(f.image) for f, _ in zip(source, range(1500), strict=False))
