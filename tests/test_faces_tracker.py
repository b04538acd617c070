"""FaceTracker policy on synthetic boxes: lifecycle, coasting, the low-score pass, ids."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.faces.boxes import box_iou
from monitor.faces.detections import FaceDetections
from monitor.faces.tracking import (
    FaceTracker,
    KalmanFilter,
    TrackEventKind,
    TrackState,
)
from monitor.faces.tracking.matching import greedy_match


def dets(*rows: tuple[float, float, float, float, float]) -> FaceDetections:
    """Detections from (x1, y1, x2, y2, score) rows."""
    if not rows:
        return FaceDetections.empty()
    a = np.array(rows, np.float32)
    return FaceDetections(xyxy=a[:, :4], scores=a[:, 4], keypoints=np.zeros((len(a), 6, 2)))


def face(x: float, score: float = 0.9, y: float = 100, size: float = 80) -> tuple:
    return (x, y, x + size, y + size, score)


def kinds(update) -> list[str]:
    return [e.kind.value for e in update.events]


def test_tentative_track_is_confirmed_after_min_hits_and_gets_id_1() -> None:
    tracker = FaceTracker(min_hits=3)
    first = tracker.update(dets(face(100)))
    assert first.faces.states.tolist() == [TrackState.TENTATIVE]
    assert first.faces.track_ids.tolist() == [-1]  # provisional
    tracker.update(dets(face(102)))
    third = tracker.update(dets(face(104)))
    assert kinds(third) == ["confirmed"]
    assert third.faces.track_ids.tolist() == [1]
    assert third.faces.states.tolist() == [TrackState.CONFIRMED]


def test_a_one_frame_false_positive_uses_no_id() -> None:
    tracker = FaceTracker(min_hits=2)
    tracker.update(dets(face(300)))  # blip
    step = tracker.update(dets())
    assert step.events == ()
    assert len(tracker) == 0
    for x in (100, 101):
        step = tracker.update(dets(face(x)))
    assert step.faces.track_ids.tolist() == [1]  # the blip did not consume id 1


def test_confirmed_track_coasts_when_lost_and_recovers_with_the_same_id() -> None:
    tracker = FaceTracker(min_hits=1, max_lost_frames=10)
    tracker.update(dets(face(100)))
    lost = tracker.update(dets())
    assert kinds(lost) == ["lost"]
    assert lost.faces.states.tolist() == [TrackState.LOST]
    assert lost.faces.detection_index.tolist() == [-1]
    for _ in range(3):
        tracker.update(dets())
    back = tracker.update(dets(face(101)))
    assert kinds(back) == ["recovered"]
    assert back.faces.track_ids.tolist() == [1]
    assert back.faces.states.tolist() == [TrackState.CONFIRMED]


def test_lost_track_ends_after_max_lost_frames_with_a_summary() -> None:
    tracker = FaceTracker(min_hits=1, max_lost_frames=3)
    for x in (100, 102, 104):
        tracker.update(dets(face(x, score=0.8)), pts=x / 100)
    events = []
    for _ in range(5):
        events += tracker.update(dets()).events
    ended = [e for e in events if e.kind == TrackEventKind.ENDED]
    assert len(ended) == 1
    s = ended[0].summary
    assert s is not None
    assert (s.track_id, s.first_frame, s.last_frame, s.hits) == (1, 0, 2, 3)
    assert (s.first_pts, s.last_pts) == (1.0, 1.04)
    assert s.mean_score == pytest.approx(0.8)
    assert s.was_confirmed
    assert len(tracker) == 0  # per-track state deleted with the track


def test_moving_face_is_followed_through_coasting_frames() -> None:
    """Constant velocity: the Kalman prediction carries the box over undetected frames."""
    tracker = FaceTracker(min_hits=1, max_lost_frames=30)
    for i in range(10):
        tracker.update(dets(face(100 + 10 * i)))
    for _ in range(3):
        coast = tracker.coast()
    assert coast.events == ()
    assert coast.faces.states.tolist() == [TrackState.CONFIRMED]  # coast counts no miss
    assert coast.faces.xyxy[0, 0] == pytest.approx(100 + 10 * 12, abs=3)
    step = tracker.update(dets(face(100 + 10 * 13)))
    assert step.faces.track_ids.tolist() == [1]
    assert step.faces.detection_index.tolist() == [0]


def test_low_score_second_pass_keeps_a_confirmed_track_but_never_starts_one() -> None:
    tracker = FaceTracker(min_hits=1, high_threshold=0.6, low_threshold=0.2)
    tracker.update(dets(face(100)))
    dip = tracker.update(dets(face(101, score=0.4), face(400, score=0.5)))
    assert dip.events == ()  # not lost: the low-score detection extended it
    assert dip.faces.track_ids.tolist() == [1]
    assert dip.faces.detection_index.tolist() == [0]
    # The unmatched 0.5 detection at x=400 started nothing.
    assert len(tracker) == 1


def test_low_score_detections_alone_create_no_tracks() -> None:
    tracker = FaceTracker(min_hits=1)
    for _ in range(10):
        step = tracker.update(dets(face(100, score=0.55)))
    assert len(step.faces) == 0


def test_two_faces_crossing_paths_keep_their_ids() -> None:
    """Two faces walk through each other: for 8 frames their boxes overlap, and around the
    crossing each detection overlaps the other face's last box more than its own. Matching
    on the Kalman-predicted boxes keeps the ids (matching on last boxes swaps them at frame
    15, checked when this test was written); order of detections must not matter either."""
    tracker = FaceTracker(min_hits=1)
    ids: dict[str, int] = {}
    overlapping = 0
    for i in range(30):
        a, b = face(100 + 10 * i, y=100), face(390 - 10 * i, y=108)
        overlapping += bool(box_iou(np.array([a[:4]]), np.array([b[:4]]))[0, 0] > 0)
        rows = {"a": 0, "b": 1} if i % 2 else {"a": 1, "b": 0}
        step = tracker.update(dets(a, b) if i % 2 else dets(b, a))
        assert len(step.faces) == 2
        row_to_id = dict(
            zip(step.faces.detection_index.tolist(), step.faces.track_ids.tolist(), strict=True)
        )
        now = {name: row_to_id[row] for name, row in rows.items()}
        ids = ids or now
        assert now == ids, f"ids swapped at frame {i}"
    assert overlapping == 8  # the paths genuinely cross
    assert sorted(ids.values()) == [1, 2]


def test_finish_ends_confirmed_tracks_and_reset_restarts_ids() -> None:
    tracker = FaceTracker(min_hits=1)
    tracker.update(dets(face(100), face(300)))
    ended = tracker.finish()
    assert sorted(e.track_id for e in ended) == [1, 2]
    assert all(e.kind == TrackEventKind.ENDED for e in ended)
    tracker.update(dets(face(100)))
    tracker.reset()
    assert len(tracker) == 0
    assert tracker.update(dets(face(100))).faces.track_ids.tolist() == [1]


def test_inputs_are_not_mutated() -> None:
    d = dets(face(100))
    before = d.xyxy.copy()
    tracker = FaceTracker(min_hits=1)
    tracker.update(d)
    tracker.update(d)
    assert np.array_equal(d.xyxy, before)


def test_conflicting_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="low_threshold <= high_threshold"):
        FaceTracker(low_threshold=0.7, high_threshold=0.6)


def test_greedy_match_takes_best_pairs_first() -> None:
    iou = np.array([[0.9, 0.5], [0.8, 0.1], [0.0, 0.05]])
    pairs, rows, cols = greedy_match(iou, min_iou=0.2)
    assert pairs == [(0, 0)]
    assert rows == [1, 2]
    assert cols == [1]


def test_kalman_learns_velocity_and_keeps_sizes_positive() -> None:
    kf = KalmanFilter()
    mean, cov = kf.initiate(np.array([100, 100, 50, 50.0]))
    for i in range(1, 15):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, np.array([100 + 5 * i, 100, 50, 50.0]))
    assert mean[4] == pytest.approx(5, abs=0.5)
    shrink = (mean.copy(), cov)
    shrink[0][6:8] = -100
    m2, _ = kf.predict(*shrink)
    assert (m2[2:4] >= 1).all()


def test_stream_indices_drive_ages_and_summaries() -> None:
    tracker = FaceTracker(min_hits=1, max_lost_frames=10)
    tracker.update(dets(face(100)), index=100)
    tracker.update(dets(face(100)), index=104)
    tracker.update(dets(), index=108)
    assert len(tracker) == 1  # 4 frames undetected
    ended = tracker.update(dets(), index=115).events  # 11 frames undetected
    assert [e.kind for e in ended] == [TrackEventKind.ENDED]
    assert (ended[0].summary.first_frame, ended[0].summary.last_frame) == (100, 104)
    with pytest.raises(ValueError, match="not after the previous one"):
        tracker.update(dets(), index=115)


def test_summary_counts_every_miss_over_the_tracks_life() -> None:
    """A recovery does not wipe the misses before it: the summary covers the whole life."""
    tracker = FaceTracker(min_hits=1, max_lost_frames=10)
    tracker.update(dets(face(100)))
    tracker.update(dets())  # miss 1
    tracker.update(dets())  # miss 2
    tracker.update(dets(face(100)))  # recovered
    tracker.update(dets())  # miss 3
    tracker.coast()  # no detection run: not a miss
    tracker.update(dets(face(100)))  # recovered
    (ended,) = tracker.finish()
    assert (ended.summary.hits, ended.summary.misses) == (3, 3)


def test_coasting_never_ends_a_confirmed_track_only_a_miss_then_max_age_does() -> None:
    """ByteTrack semantics: CONFIRMED -> LOST needs a detection frame that misses the face;
    a LOST track then ends once undetected for more than ``max_lost_frames``, on whatever
    kind of frame that happens (coast frames count towards its age)."""
    tracker = FaceTracker(min_hits=1, max_lost_frames=3)
    tracker.update(dets(face(100)))
    for _ in range(10):  # far longer than max_lost_frames, but no detector ran
        coast = tracker.coast()
        assert coast.events == ()
        assert coast.faces.states.tolist() == [TrackState.CONFIRMED]
    missed = tracker.update(dets())  # undetected for 11 frames: lost and past its age
    assert kinds(missed) == ["lost", "ended"]
    assert len(tracker) == 0

    tracker = FaceTracker(min_hits=1, max_lost_frames=3)
    tracker.update(dets(face(100)))  # frame 0
    assert kinds(tracker.update(dets())) == ["lost"]  # frame 1
    assert tracker.coast().events == ()  # frame 2
    assert tracker.coast().events == ()  # frame 3: 3 frames undetected, still allowed
    ended = tracker.coast()  # frame 4: 4 frames undetected
    assert kinds(ended) == ["ended"]
    assert ended.events[0].summary.misses == 1


def test_skipped_indices_age_a_lost_track_as_coast_frames_would() -> None:
    """A lost track past ``max_lost_frames`` is gone even when the frames in between were
    never given to the tracker: the next detection starts a new id instead of recovering it."""
    tracker = FaceTracker(min_hits=1, max_lost_frames=3)
    tracker.update(dets(face(100)), index=0)
    assert kinds(tracker.update(dets(), index=1)) == ["lost"]
    step = tracker.update(dets(face(100)), index=10)  # 10 frames undetected
    assert kinds(step) == ["ended", "confirmed"]
    assert step.events[0].track_id == 1
    assert step.faces.track_ids.tolist() == [2]
