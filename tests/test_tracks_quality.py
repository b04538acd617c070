"""Per-track quality on scripted score sequences: hysteresis, tie-breaks, best K, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.faces.align import AlignedFace
from monitor.faces.quality import QualitySignals
from monitor.faces.tracking import TrackEvent, TrackEventKind, TrackSummary
from monitor.tracks import (
    BestFrameChanged,
    BestFrames,
    QualityCurve,
    ScoredFace,
    ScoreRecorded,
    TrackEnded,
    TrackQuality,
    TrackQualityBook,
    TrackQualityConfig,
)


def signals(size: float = 100.0, yaw: float = 0.0, pitch: float = 0.0) -> QualitySignals:
    return QualitySignals(size, size * 0.4, yaw, pitch, 0.0, 50.0, 120.0, 40.0)


def face(
    frame: int,
    score: float,
    *,
    track: int = 1,
    size: float = 100.0,
    yaw: float = 0.0,
    det: float = 0.9,
    aligned: bool = False,
) -> ScoredFace:
    img = None
    if aligned:
        img = AlignedFace(
            np.zeros((512, 512, 3), np.uint8), np.zeros((68, 2), np.float32), np.zeros((2, 3))
        )
    return ScoredFace(track, frame, frame / 25, score, det, signals(size, yaw), face=img)


def event(kind: TrackEventKind, track: int, frame: int, hits: int = 10) -> TrackEvent:
    summary = None
    if kind is TrackEventKind.ENDED:
        summary = TrackSummary(
            track, 0, frame, 0.0, frame / 25, hits, 2, 0.95, 0.9, (0, 0, 1, 1), True
        )
    return TrackEvent(kind, track, frame, frame / 25, summary)


# ------------------------------------------------------------------- best K, hysteresis


def test_candidate_better_by_less_than_margin_does_not_replace() -> None:
    best = BestFrames(1, margin=0.05, tie_tolerance=0.0)
    assert best.offer(face(0, 0.60)) is not None
    assert best.offer(face(1, 0.64)) is None  # better by 0.04 < 0.05
    assert best.top.frame == 0


def test_candidate_better_by_more_than_margin_replaces() -> None:
    best = BestFrames(1, margin=0.05, tie_tolerance=0.0)
    best.offer(face(0, 0.60))
    change = best.offer(face(1, 0.66))
    assert change is not None
    assert change.top_changed
    assert change.rank == 0
    assert change.replaced.frame == 0
    assert [f.frame for f in best.frames] == [1]


def test_top_is_sticky_even_when_a_free_slot_takes_the_candidate() -> None:
    best = BestFrames(3, margin=0.05, tie_tolerance=0.0)
    best.offer(face(0, 0.60))
    change = best.offer(face(1, 0.62))  # enters a free slot, but cannot take the top
    assert change is not None
    assert change.rank == 1
    assert not change.top_changed
    assert [f.frame for f in best.frames] == [0, 1]


@pytest.mark.parametrize(
    ("incumbent", "candidate"),
    [
        ({"size": 100.0}, {"size": 120.0}),  # 1: the larger face
        ({"yaw": 20.0}, {"yaw": 5.0}),  # 2: the more frontal face
        ({"det": 0.8}, {"det": 0.9}),  # 3: the higher detection score
    ],
)
def test_ties_are_broken_by_size_then_pose_then_detection(incumbent: dict, candidate: dict) -> None:
    best = BestFrames(1, margin=0.0, tie_tolerance=0.01)
    best.offer(face(0, 0.70, **incumbent))
    assert best.offer(face(1, 0.705, **candidate)) is not None  # within the tolerance: a tie
    assert best.top.frame == 1
    # The other way round the incumbent stays.
    best = BestFrames(1, margin=0.0, tie_tolerance=0.01)
    best.offer(face(0, 0.70, **candidate))
    assert best.offer(face(1, 0.705, **incumbent)) is None


def test_tie_break_order_size_before_pose() -> None:
    best = BestFrames(1, margin=0.0, tie_tolerance=0.01)
    best.offer(face(0, 0.70, size=120.0, yaw=30.0))
    assert best.offer(face(1, 0.70, size=100.0, yaw=0.0)) is None


def test_full_tie_keeps_the_incumbent() -> None:
    best = BestFrames(1, margin=0.0, tie_tolerance=0.0)
    best.offer(face(0, 0.7))
    assert best.offer(face(1, 0.7)) is None


def test_best_k_ordering_and_eviction_of_the_worst() -> None:
    best = BestFrames(3, margin=0.02, tie_tolerance=0.0)
    for i, s in enumerate([0.5, 0.9, 0.7]):
        best.offer(face(i, s))
    assert [f.score for f in best.frames] == [0.9, 0.7, 0.5]
    assert best.offer(face(3, 0.51)) is None  # beats the worst by less than the margin
    change = best.offer(face(4, 0.8))
    assert change.replaced.frame == 0
    assert change.rank == 1
    assert not change.top_changed
    assert [f.score for f in best.frames] == [0.9, 0.8, 0.7]
    change = best.offer(face(5, 0.95))
    assert change.top_changed
    assert [f.frame for f in best.frames] == [5, 1, 4]


def test_near_duplicates_compete_with_their_neighbour_only() -> None:
    best = BestFrames(3, margin=0.0, tie_tolerance=0.0, min_gap_frames=5)
    best.offer(face(0, 0.5))
    assert best.offer(face(2, 0.4)) is None  # near frame 0 and worse: dropped, slot stays free
    change = best.offer(face(3, 0.6))  # near frame 0 and better: replaces it
    assert change.replaced.frame == 0
    best.offer(face(20, 0.3))
    assert [f.frame for f in best.frames] == [3, 20]


def test_only_the_best_k_keep_aligned_faces() -> None:
    t = TrackQuality(1, TrackQualityConfig(best_k=2, margin=0.0))
    for i in range(50):
        t.add(face(i, float(i % 7) / 10, aligned=True))
    assert len(t.best) == 2
    assert all(f.face is not None for f in t.best)
    t = TrackQuality(1, TrackQualityConfig(best_k=2, keep_faces=False))
    t.add(face(0, 0.5, aligned=True))
    assert t.best[0].face is None


# ------------------------------------------------------------------- curve and smoothing


def test_ema_follows_the_half_life_in_frames() -> None:
    curve = QualityCurve(half_life_frames=10)
    assert curve.add(0, None, 1.0) == 1.0
    assert curve.add(10, None, 0.0) == pytest.approx(0.5)  # one half-life later: halfway
    assert curve.add(11, None, 0.0) == pytest.approx(0.5 * 0.5 ** (1 / 10))


def test_a_100000_observation_track_keeps_a_bounded_curve() -> None:
    t = TrackQuality(7, TrackQualityConfig(curve_points=64, best_k=3))
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 100_000)
    for i, s in enumerate(scores):
        t.add(ScoredFace(7, i, None, float(s), 0.9, signals()))
        assert t.curve_length <= 64
    s = t.summary()
    assert s.observations == 100_000
    assert len(s.curve.points) <= 64
    assert len(s.best) == 3
    assert s.curve.low == scores.min()
    assert s.curve.high == scores.max()
    assert s.curve.mean == pytest.approx(scores.mean())
    assert s.curve.median == pytest.approx(np.median(scores), abs=0.05)
    assert sum(p.count for p in s.curve.points) == 100_000
    assert s.curve.points[0].first_frame == 0
    assert s.curve.points[-1].last_frame == 99_999


def test_median_is_exact_before_any_merge() -> None:
    curve = QualityCurve(max_points=8)
    for i, s in enumerate([0.3, 0.9, 0.1, 0.5]):
        curve.add(i, None, s)
    assert curve.median() == pytest.approx(0.4)


def test_frames_must_move_forward() -> None:
    t = TrackQuality(1)
    t.add(face(5, 0.5))
    with pytest.raises(ValueError, match="stream order"):
        t.add(face(5, 0.6))


def test_a_failed_score_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        face(0, float("nan"))


# ------------------------------------------------------------------- the book


def test_book_follows_the_lifecycle_and_deletes_ended_tracks() -> None:
    book = TrackQualityBook("cam", TrackQualityConfig(best_k=2, margin=0.0))
    out = book.step([event(TrackEventKind.CONFIRMED, 1, 3)], [face(3, 0.5)])
    assert [type(u) for u in out] == [ScoreRecorded, BestFrameChanged]
    assert out[1].top_changed
    assert out[0].smoothed == 0.5
    assert 1 in book
    out = book.step([], [face(4, 0.4)])
    assert [type(u) for u in out] == [ScoreRecorded, BestFrameChanged]
    assert out[1].rank == 1
    assert not out[1].top_changed
    book.step([event(TrackEventKind.LOST, 1, 5)])
    out = book.step([event(TrackEventKind.ENDED, 1, 40, hits=7)])
    assert len(out) == 1
    assert isinstance(out[0], TrackEnded)
    s = out[0].summary
    assert (s.track_id, s.first_frame, s.last_frame, s.frames_seen, s.observations) == (
        1,
        0,
        40,
        7,
        2,
    )
    assert s.best_score == 0.5
    assert s.best_frame.frame == 3
    assert (s.curve.low, s.curve.median, s.curve.high) == (0.4, pytest.approx(0.45), 0.5)
    assert len(book) == 0


def test_book_ends_an_unscored_track_with_an_empty_summary() -> None:
    book = TrackQualityBook("cam")
    book.step([event(TrackEventKind.CONFIRMED, 2, 1)])
    (ended,) = book.step([event(TrackEventKind.ENDED, 2, 9)])
    assert ended.summary.observations == 0
    assert ended.summary.best_frame is None
    assert len(book) == 0


def test_book_memory_stays_bounded_over_many_tracks() -> None:
    book = TrackQualityBook("cam", TrackQualityConfig(curve_points=8))
    for track in range(1, 1001):
        frame = track * 10
        book.step([event(TrackEventKind.CONFIRMED, track, frame)], [face(frame, 0.5, track=track)])
        book.step([event(TrackEventKind.ENDED, track, frame + 5)])
    assert len(book) == 0


def test_step_orders_confirm_then_faces_then_ends() -> None:
    book = TrackQualityBook("cam")
    book.step([event(TrackEventKind.CONFIRMED, 1, 0)], [face(0, 0.5)])
    out = book.step(
        [event(TrackEventKind.ENDED, 1, 1), event(TrackEventKind.CONFIRMED, 2, 1)],
        [face(1, 0.7, track=2)],
    )
    assert [type(u).__name__ for u in out] == ["ScoreRecorded", "BestFrameChanged", "TrackEnded"]
    assert book.track_ids == (2,)
