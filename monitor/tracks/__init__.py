"""Per-track quality and the scoring policy (pure logic: no torch, no Kafka, no click).

* ``ScoringPolicy`` (+ ``ScoringBudget``) decides, from the cheap signals, which faces of a
  frame go to the quality engine (``monitor.tracks.policy``);
* ``TrackQualityBook`` turns the scores that come back and the tracker's lifecycle events
  into typed updates — ``ScoreRecorded``, ``BestFrameChanged``, ``TrackEnded`` with a
  ``TrackQualitySummary`` — holding per track a bounded ``TrackQuality``: EMA-smoothed
  curve (``monitor.tracks.curve``) and best K frames with hysteresis
  (``monitor.tracks.best``).

One frame of one stream::

    result = stage.process(frame)                          # FacesFrame
    plan = policy.select(candidates, frame=frame.index, now=frame.pts)
    scored = [...]                                         # ScoredFace per plan.score
    updates = book.step(result.events, scored)
    policy.apply(updates)                                  # new best frames, ended tracks
"""

from monitor.tracks.best import BestChange, BestFrames, compare
from monitor.tracks.book import (
    BestFrameChanged,
    ScoreRecorded,
    TrackEnded,
    TrackQualityBook,
    TrackUpdate,
)
from monitor.tracks.curve import CurvePoint, CurveSummary, QualityCurve
from monitor.tracks.observation import ScoredFace, pose_deviation
from monitor.tracks.policy import (
    Candidate,
    Decision,
    PolicyConfig,
    Priority,
    ScoringBudget,
    ScoringPlan,
    ScoringPolicy,
)
from monitor.tracks.quality import TrackQuality, TrackQualityConfig, TrackQualitySummary

__all__ = [
    "BestChange",
    "BestFrameChanged",
    "BestFrames",
    "Candidate",
    "CurvePoint",
    "CurveSummary",
    "Decision",
    "PolicyConfig",
    "Priority",
    "QualityCurve",
    "ScoreRecorded",
    "ScoredFace",
    "ScoringBudget",
    "ScoringPlan",
    "ScoringPolicy",
    "TrackEnded",
    "TrackQuality",
    "TrackQualityBook",
    "TrackQualityConfig",
    "TrackQualitySummary",
    "TrackUpdate",
    "compare",
    "pose_deviation",
]
