"""The scoring policy on scripted signal sequences (time passed in, never the clock)."""

from __future__ import annotations

import pytest

from monitor.faces.quality import QualitySignals
from monitor.faces.tracking import TrackEvent, TrackEventKind
from monitor.tracks import (
    BestFrameChanged,
    Candidate,
    PolicyConfig,
    Priority,
    ScoredFace,
    ScoringBudget,
    ScoringPolicy,
)

FPS = 25.0


def cand(
    track: int, size: float = 100.0, yaw: float = 0.0, sharp: float = 50.0, det: float = 0.9
) -> Candidate:
    return Candidate(track, QualitySignals(size, size * 0.4, yaw, 0.0, 0.0, sharp, 120, 40), det)


def run(policy: ScoringPolicy, frames: list[list[Candidate]], start: int = 0) -> list[list[int]]:
    """Track ids chosen per frame."""
    return [
        [d.candidate.track_id for d in policy.select(c, frame=i, now=i / FPS).score]
        for i, c in enumerate(frames, start)
    ]


def test_new_track_is_scored_at_once() -> None:
    policy = ScoringPolicy()
    plan = policy.select([cand(1)], frame=0, now=0.0)
    assert [(d.candidate.track_id, d.priority) for d in plan.score] == [(1, Priority.NEW)]


def test_routine_rescoring_waits_for_the_interval_in_seconds() -> None:
    policy = ScoringPolicy(PolicyConfig(rescore_interval=1.0))
    chosen = run(policy, [[cand(1)] for _ in range(76)])
    assert [i for i, c in enumerate(chosen) if c] == [0, 25, 50, 75]


def test_routine_rescoring_in_frames() -> None:
    policy = ScoringPolicy(PolicyConfig(rescore_interval=10, interval_unit="frames"))
    chosen = run(policy, [[cand(1)] for _ in range(31)])
    assert [i for i, c in enumerate(chosen) if c] == [0, 10, 20, 30]


@pytest.mark.parametrize(
    ("later", "early"),
    [
        ({"size": 125.0}, True),  # 25 % bigger >= 20 %
        ({"size": 115.0}, False),  # 15 % bigger < 20 %
        ({"yaw": 10.0}, True),  # 20 -> 10 degrees: 10 more frontal
        ({"yaw": 15.0}, False),  # 5 degrees more frontal only
        ({"sharp": 70.0}, True),  # 40 % sharper >= 30 %
        ({"sharp": 60.0}, False),  # 20 % sharper only
        ({"size": 130.0, "yaw": 45.0}, False),  # bigger but turned away: not promising
    ],
)
def test_promising_candidate_is_scored_early(later: dict, early: bool) -> None:
    policy = ScoringPolicy(PolicyConfig(rescore_interval=10.0))
    first = {"size": 100.0, "yaw": 20.0, "sharp": 50.0}
    assert run(policy, [[cand(1, **first)]]) == [[1]]
    plan = policy.select([cand(1, **{**first, **later})], frame=1, now=1 / FPS)
    assert [d.priority for d in plan.score] == ([Priority.PROMISING] if early else [])


def test_promise_is_measured_against_the_best_and_the_last_scored() -> None:
    policy = ScoringPolicy(PolicyConfig(rescore_interval=10.0))
    run(policy, [[cand(1, size=100)]])
    assert run(policy, [[cand(1, size=125)]], start=1) == [[1]]  # bigger than frame 0
    # frame 1 scored no better (the best stays frame 0's), so a plateau at 126 is not promising
    assert run(policy, [[cand(1, size=126)]], start=2) == [[]]
    assert run(policy, [[cand(1, size=160)]], start=3) == [[1]]  # bigger than both again


def test_promising_is_measured_against_the_best_frame_given_by_the_book() -> None:
    policy = ScoringPolicy(PolicyConfig(rescore_interval=10.0))
    run(policy, [[cand(1, size=100)]])
    best = cand(1, size=200).signals
    policy.apply(
        [BestFrameChanged("cam", ScoredFace(1, 0, 0.0, 0.9, 0.9, best), 0, None, True, ())]
    )
    assert run(policy, [[cand(1, size=130)]], start=1) == [[]]  # bigger than last, not than best


def test_tiny_faces_are_never_scored() -> None:
    policy = ScoringPolicy(PolicyConfig(min_face_size=40, rescore_interval=1.0))
    plans = [policy.select([cand(1, size=39.9)], frame=i, now=i / FPS) for i in range(60)]
    assert all(not p.score and p.tiny == 1 for p in plans)
    assert len(policy) == 0


def test_budget_is_honoured() -> None:
    budget = ScoringBudget(faces_per_s=5.0, burst=1.0)
    policy = ScoringPolicy(PolicyConfig(rescore_interval=0.0, routine_reserve=0.0), budget)
    chosen = run(policy, [[cand(1)] for _ in range(250)])  # 10 s at 25 fps
    scored = sum(len(c) for c in chosen)
    assert 50 <= scored <= 51  # 5 faces/s over 10 s, plus the first token


def test_over_budget_new_tracks_come_before_promising_before_routine() -> None:
    budget = ScoringBudget(faces_per_s=1.0, burst=3.0)
    policy = ScoringPolicy(PolicyConfig(rescore_interval=1.0, routine_reserve=0.0), budget)
    assert run(policy, [[cand(1)]]) == [[1]]  # 2 tokens left
    plan = policy.select([cand(1), cand(2)], frame=12, now=0.5)  # 2.5 tokens
    assert [d.candidate.track_id for d in plan.score] == [2]  # 1.5 left
    # At 1 s: 2 tokens. Track 1 is routine, track 2 promising (bigger), track 3 new.
    plan = policy.select([cand(1), cand(2, size=150), cand(3)], frame=25, now=1.0)
    assert [(d.candidate.track_id, d.priority) for d in plan.score] == [
        (3, Priority.NEW),
        (2, Priority.PROMISING),
    ]
    assert [(d.candidate.track_id, d.deferred) for d in plan.deferred] == [(1, True)]
    # The deferred track stays due and is served when a token comes back.
    plan = policy.select([cand(1)], frame=50, now=2.0)
    assert [d.priority for d in plan.score] == [Priority.ROUTINE]


def test_routine_leaves_the_reserve_for_new_tracks() -> None:
    budget = ScoringBudget(faces_per_s=1.0, burst=2.0)
    policy = ScoringPolicy(PolicyConfig(rescore_interval=1.0, routine_reserve=1.0), budget)
    run(policy, [[cand(1), cand(9)]])  # no token left
    plan = policy.select([cand(1)], frame=37, now=1.5)  # 1.5 tokens < 1 + reserve
    assert plan.score == ()
    assert [d.priority for d in plan.deferred] == [Priority.ROUTINE]
    plan = policy.select([cand(2)], frame=38, now=1.52)  # a new track may use the reserve
    assert [d.priority for d in plan.score] == [Priority.NEW]
    plan = policy.select([cand(1)], frame=75, now=3.0)  # 2 tokens again: routine is served
    assert [d.priority for d in plan.score] == [Priority.ROUTINE]


def test_budget_rate_follows_the_engine() -> None:
    budget = ScoringBudget(burst=2.0, ema_alpha=0.5)
    assert budget.rate is None
    assert budget.take()
    budget.observe_engine(10, 1.0)
    assert budget.rate == 10.0
    budget.observe_engine(2, 1.0)
    assert budget.rate == pytest.approx(6.0)
    budget.refill(0.0)
    assert budget.take()
    assert budget.take()
    assert not budget.take()
    budget.refill(0.1)  # 0.6 tokens
    assert not budget.take()
    budget.refill(0.2)
    assert budget.take()


def test_ended_tracks_are_forgotten() -> None:
    policy = ScoringPolicy()
    run(policy, [[cand(1), cand(2)]])
    policy.apply([TrackEvent(TrackEventKind.ENDED, 1, 5, 0.2)])
    assert len(policy) == 1
    assert [d.priority for d in policy.select([cand(1)], frame=6, now=0.24).score] == [Priority.NEW]


def test_same_inputs_same_decisions() -> None:
    script = [[cand(t, size=80 + (i * 7 + t * 13) % 60) for t in (1, 2, 3)] for i in range(200)]

    def decisions() -> list[list[int]]:
        budget = ScoringBudget(faces_per_s=3.0)
        return run(ScoringPolicy(PolicyConfig(rescore_interval=0.5), budget), script)

    assert decisions() == decisions()


def test_bad_settings_fail_fast() -> None:
    with pytest.raises(ValueError, match="interval_unit"):
        PolicyConfig(interval_unit="minutes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bigger_pct"):
        PolicyConfig(bigger_pct=-1)
    with pytest.raises(ValueError, match="burst"):
        ScoringBudget(burst=0.5)


def looks(policy: ScoringPolicy, track: int, times: list[float], size: float = 100.0) -> list:
    return [policy.wants_look(track, size, frame=i, now=t) for i, t in enumerate(times)]


def test_new_tracks_are_looked_at_until_scored_and_tiny_faces_never() -> None:
    policy = ScoringPolicy()
    assert looks(policy, 1, [0.0, 0.04, 0.08]) == [True, True, True]
    assert looks(policy, 2, [0.0, 0.04], size=10.0) == [False, False]


def test_between_routine_scores_a_track_is_looked_at_every_look_interval() -> None:
    policy = ScoringPolicy(PolicyConfig(rescore_interval=1.0, look_interval=0.2))
    policy.select([cand(1)], frame=0, now=0.0)  # scored: the clocks restart
    times = [i / FPS for i in range(1, 26)]  # the next second, at 25 fps
    got = looks(policy, 1, times)
    looked_at = [t for t, g in zip(times, got, strict=True) if g]
    # every 0.2 s (5 frames), then every frame once the routine rescore is due (t >= 1.0)
    assert looked_at == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_no_look_without_a_token_and_routine_looks_keep_the_reserve() -> None:
    budget = ScoringBudget(faces_per_s=1.0, burst=1.0)
    policy = ScoringPolicy(PolicyConfig(rescore_interval=0.5, routine_reserve=1.0), budget)
    assert policy.wants_look(1, 100.0, frame=0, now=0.0)
    assert [d.candidate.track_id for d in policy.select([cand(1)], frame=0, now=0.0).score] == [1]
    assert not policy.wants_look(2, 100.0, frame=1, now=0.1)  # the bucket is empty
    assert policy.wants_look(2, 100.0, frame=2, now=1.0)  # one token again: a new track
    assert not policy.wants_look(1, 100.0, frame=2, now=1.0)  # due, but 1 + reserve needed


def test_a_shared_budget_runs_on_its_own_clock() -> None:
    budget = ScoringBudget(faces_per_s=1.0, burst=1.0)
    a, b = ScoringPolicy(budget=budget), ScoringPolicy(budget=budget)
    # stream a at pts 100 s, stream b at pts 0 s: one wall clock (budget_now) for the budget
    assert a.select([cand(1)], frame=0, now=100.0, budget_now=5.0).score
    assert not b.select([cand(1)], frame=0, now=0.0, budget_now=5.1).score
    assert b.select([cand(1)], frame=1, now=0.04, budget_now=6.1).score
