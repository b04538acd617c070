"""``fqm bench policy``: what the scoring policy saves, and what it costs in best frames.

Runs the real face stage (``FaceStage``: detection, tracking with shot cuts, landmarks) on a
video, aligns every confirmed face that got a mesh and computes its cheap signals, then
feeds two ``TrackQualityBook``s with the same settings:

* **all**: every face is scored (what the product would do with unlimited compute);
* **policy**: only the faces a ``ScoringPolicy`` chooses (time = the frame's pts).

The report: faces seen, faces the policy scores (and why: new / promising / routine), and
per track how the policy's best frame compares with the best frame of scoring every face
(same frame; score ratio; the score the policy gave up).

**Stand-in scorer.** DSL-FIQA costs ~1.6 s per face on a 2-core CPU (center mode), too much
for every face of a video, so the "quality score" here is ``standin_score``, a fixed
function of the cheap signals (size, pose, sharpness, brightness, contrast). The bench thus
measures the policy's *selection behaviour* — how many faces it sends and whether the frames
it sends include the one that scores best — not the real model's scores. The stand-in shares
inputs with the policy's promise rules (size, pose, sharpness), which flatters the policy: a
learned model that disagrees with the signals would lose more. Rerun with the real engine
(where a GPU makes scoring every face affordable) before quoting these numbers as quality.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monitor.faces.quality import QualitySignals
from monitor.tracks import (
    PolicyConfig,
    Priority,
    ScoredFace,
    ScoringBudget,
    ScoringPolicy,
    TrackEnded,
    TrackQualityBook,
    TrackQualityConfig,
)

STANDIN_SCORER = (
    "standin_score: a fixed function of the cheap signals (size, pose, sharpness, brightness, "
    "contrast), not DSL-FIQA; measures the policy's selection, not the model's quality"
)
#: Face size (px) at which the stand-in's size term reaches 1 - 1/e.
STANDIN_SIZE_SCALE = 80.0
#: Laplacian variance at which the stand-in's sharpness term reaches 0.5.
STANDIN_SHARPNESS_HALF = 40.0


def standin_score(s: QualitySignals) -> float:
    """A cheap, deterministic stand-in for a face quality score, in [0, 1].

    Product of: size ``1 - exp(-size / 80)``; pose ``cos(yaw) * cos(pitch)`` (clipped at 0);
    sharpness ``v / (v + 40)`` (Laplacian variance v); exposure ``exp(-((mean - 128) / 80)^2)``;
    contrast ``min(1, std / 40)``. Monotonic in what every face IQA rewards, nothing more.
    """
    size = 1.0 - math.exp(-s.face_size / STANDIN_SIZE_SCALE)
    pose = max(0.0, math.cos(math.radians(s.yaw))) * max(0.0, math.cos(math.radians(s.pitch)))
    sharp = s.sharpness / (s.sharpness + STANDIN_SHARPNESS_HALF) if s.sharpness > 0 else 0.0
    exposure = math.exp(-(((s.brightness - 128.0) / 80.0) ** 2))
    contrast = min(1.0, s.contrast / 40.0)
    return size * pose * sharp * exposure * contrast


@dataclass
class TrackComparison:
    """One track: faces seen and scored, and the best frame of each arm."""

    track_id: int
    faces_seen: int
    faces_scored: int
    all_best_frame: int | None
    all_best_score: float | None
    policy_best_frame: int | None
    policy_best_score: float | None
    max_score: float | None  # the highest score of any face of the track (no hysteresis)


@dataclass
class PolicyBenchResult:
    source: str
    frames: int
    scorer: str
    policy: dict[str, Any]
    quality: dict[str, Any]
    budget_faces_per_s: float | None
    faces_seen: int = 0
    faces_tiny: int = 0
    faces_scored: int = 0
    scored_by_priority: dict[str, int] = field(default_factory=dict)
    faces_deferred: int = 0
    tracks: list[TrackComparison] = field(default_factory=list)
    error: str | None = None

    @property
    def scored_fraction(self) -> float | None:
        return self.faces_scored / self.faces_seen if self.faces_seen else None

    def agreement(self) -> dict[str, Any]:
        """Best-frame agreement over the tracks both arms scored."""
        both = [
            t
            for t in self.tracks
            if t.all_best_score is not None and t.policy_best_score is not None
        ]
        missed = [t for t in self.tracks if t.all_best_score is not None and t not in both]
        if not both:
            return {"tracks_compared": 0, "tracks_unscored_by_policy": len(missed)}
        ratios = [t.policy_best_score / t.all_best_score if t.all_best_score else 1.0 for t in both]
        gaps = [t.all_best_score - t.policy_best_score for t in both]
        vs_max = [t.policy_best_score / t.max_score if t.max_score else 1.0 for t in both]
        return {
            "tracks_compared": len(both),
            "tracks_unscored_by_policy": len(missed),
            "same_best_frame": sum(t.all_best_frame == t.policy_best_frame for t in both)
            / len(both),
            "within_2pct": sum(r >= 0.98 for r in ratios) / len(both),
            "score_ratio_mean": statistics.fmean(ratios),
            "score_ratio_min": min(ratios),
            "score_gap_mean": statistics.fmean(gaps),
            "score_gap_max": max(gaps),
            "score_ratio_vs_max_mean": statistics.fmean(vs_max),
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["scored_fraction"] = self.scored_fraction
        d["agreement"] = self.agreement()
        return d


def bench_policy(
    location: str | Path,
    *,
    max_frames: int | None = None,
    policy: PolicyConfig | None = None,
    quality: TrackQualityConfig | None = None,
    budget_faces_per_s: float | None = None,
    detect_every: int = 1,
) -> PolicyBenchResult:
    """Runs the face stage on ``location`` and compares the policy with scoring every face.

    ``budget_faces_per_s`` caps the policy's scoring rate (a ``ScoringBudget`` of that rate,
    in the video's time); ``None`` leaves only the policy's own rules. A decode failure
    ends the run early; ``error`` then says why and the counts cover the frames read.
    """

    from monitor.faces import FaceDetector, FaceLandmarker, FaceStage
    from monitor.tracks.candidates import frame_candidates, with_score
    from pipelines.errors import SourceError
    from pipelines.open import open_source
    from pipelines.urls import mask_url

    policy_cfg = policy or PolicyConfig()
    quality_cfg = quality or TrackQualityConfig(keep_faces=False)
    chooser = ScoringPolicy(policy_cfg, ScoringBudget(budget_faces_per_s))
    book_all = TrackQualityBook("bench", quality_cfg)
    book_policy = TrackQualityBook("bench", quality_cfg)
    seen: dict[int, int] = {}
    scored: dict[int, int] = {}
    top: dict[int, float] = {}
    by_priority = {p.name.lower(): 0 for p in Priority}
    ended_all: dict[int, TrackEnded] = {}
    ended_policy: dict[int, TrackEnded] = {}
    result = PolicyBenchResult(
        source=mask_url(str(location)),
        frames=0,
        scorer=STANDIN_SCORER,
        policy=asdict(policy_cfg),
        quality=asdict(quality_cfg),
        budget_faces_per_s=budget_faces_per_s,
    )

    def collect(updates: tuple, into: dict[int, TrackEnded]) -> None:
        for u in updates:
            if isinstance(u, TrackEnded):
                into[u.track_id] = u

    with (
        open_source(location, "av", live=False) as source,
        FaceDetector() as detector,
    ):
        stage = FaceStage(detector, landmarker=FaceLandmarker(), detect_every=detect_every)
        pts = 0.0
        try:
            for frame in source:
                if max_frames is not None and result.frames >= max_frames:
                    break
                result.frames += 1
                out = stage.process(frame)
                # Frames without a pts count at 25 fps.
                pts = frame.pts if frame.pts is not None else frame.index / 25.0
                pairs = frame_candidates(frame.image, out, pts)
                faces: dict[int, ScoredFace] = {}
                candidates = []
                for face, candidate in pairs:
                    score = standin_score(face.signals)
                    faces[face.track_id] = with_score(face, score)
                    candidates.append(candidate)
                    seen[face.track_id] = seen.get(face.track_id, 0) + 1
                    top[face.track_id] = max(top.get(face.track_id, -math.inf), score)
                result.faces_seen += len(candidates)
                plan = chooser.select(candidates, frame=frame.index, now=pts)
                result.faces_tiny += plan.tiny
                result.faces_deferred += len(plan.deferred)
                chosen = [faces[d.candidate.track_id] for d in plan.score]
                for d in plan.score:
                    by_priority[d.priority.name.lower()] += 1
                    scored[d.candidate.track_id] = scored.get(d.candidate.track_id, 0) + 1
                collect(book_all.step(out.events, faces.values()), ended_all)
                updates = book_policy.step(out.events, chosen)
                chooser.apply(updates)
                collect(updates, ended_policy)
        except SourceError as exc:
            result.error = str(exc)
        final = stage.finish(pts)
        collect(book_all.step(final), ended_all)
        collect(book_policy.step(final), ended_policy)
        chooser.apply(final)

    result.faces_scored = sum(by_priority.values())
    result.scored_by_priority = by_priority
    for track in sorted(ended_all):
        a = ended_all[track].summary
        p = ended_policy[track].summary if track in ended_policy else None
        result.tracks.append(
            TrackComparison(
                track_id=track,
                faces_seen=seen.get(track, 0),
                faces_scored=scored.get(track, 0),
                all_best_frame=a.best_frame.frame if a.best_frame else None,
                all_best_score=a.best_score,
                policy_best_frame=p.best_frame.frame if p and p.best_frame else None,
                policy_best_score=p.best_score if p else None,
                max_score=top.get(track),
            )
        )
    return result


def format_report(r: PolicyBenchResult) -> str:
    """The human-readable report."""
    a = r.agreement()
    frac = r.scored_fraction
    lines = [
        f"{Path(r.source).name}: {r.frames} frames, {len(r.tracks)} track(s), "
        f"budget {'none' if r.budget_faces_per_s is None else f'{r.budget_faces_per_s} faces/s'}",
        f"scorer: {r.scorer}",
        f"faces seen {r.faces_seen}, tiny {r.faces_tiny}, scored by the policy {r.faces_scored}"
        + ("" if frac is None else f" ({100 * frac:.1f} %)")
        + f", deferred {r.faces_deferred}",
        "scored by reason: " + ", ".join(f"{k} {v}" for k, v in r.scored_by_priority.items()),
    ]
    if a.get("tracks_compared"):
        lines.append(
            f"best frame vs scoring every face, over {a['tracks_compared']} track(s): "
            f"same frame {100 * a['same_best_frame']:.0f} %, within 2 % of its score "
            f"{100 * a['within_2pct']:.0f} %, score ratio mean {a['score_ratio_mean']:.3f} "
            f"(min {a['score_ratio_min']:.3f}), score given up mean {a['score_gap_mean']:.4f} "
            f"(max {a['score_gap_max']:.4f}); vs the track's highest score "
            f"{a['score_ratio_vs_max_mean']:.3f}; tracks never scored by the policy "
            f"{a['tracks_unscored_by_policy']}"
        )
    lines.append(f"{'track':>5} {'seen':>6} {'scored':>6} {'all best':>14} {'policy best':>14}")
    for t in r.tracks:

        def cell(frame: int | None, score: float | None) -> str:
            return "-" if frame is None else f"{score:.3f}@{frame}"

        lines.append(
            f"{t.track_id:>5} {t.faces_seen:>6} {t.faces_scored:>6} "
            f"{cell(t.all_best_frame, t.all_best_score):>14} "
            f"{cell(t.policy_best_frame, t.policy_best_score):>14}"
        )
    if r.error is not None:
        lines.append(f"partial: stopped after {r.frames} frames ({r.error})")
    return "\n".join(lines)
