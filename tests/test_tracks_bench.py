"""``fqm bench policy`` runs on a real clip; its report is checked for structure and
invariants, never for timings or exact counts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.assets import asset_path
from monitor.benchmarks.policy import standin_score
from monitor.faces.quality import QualitySignals

FQM = str(Path(sys.executable).with_name("fqm"))


@pytest.mark.slow
def test_bench_policy_json_on_franck_keeps_its_invariants() -> None:
    clip = str(asset_path("franck.mp4"))
    proc = subprocess.run(
        [FQM, "bench", "policy", clip, "--max-frames", "100", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["frames"] == 100
    assert "not DSL-FIQA" in r["scorer"]
    assert r["tracks"], "franck.mp4 shows a face from its first frames"
    assert 0 < r["faces_scored"] <= r["faces_seen"] - r["faces_tiny"]
    assert r["scored_fraction"] == r["faces_scored"] / r["faces_seen"]
    assert sum(r["scored_by_priority"].values()) == r["faces_scored"]
    assert r["scored_by_priority"]["new"] <= len(r["tracks"])
    assert sum(t["faces_seen"] for t in r["tracks"]) <= r["faces_seen"]
    for t in r["tracks"]:
        assert t["faces_scored"] <= t["faces_seen"]
        if t["policy_best_score"] is not None:
            # The policy scores a subset of the same faces: it can never beat their maximum.
            assert t["policy_best_score"] <= t["max_score"]
            assert t["all_best_score"] <= t["max_score"]
    a = r["agreement"]
    assert a["tracks_compared"] + a["tracks_unscored_by_policy"] <= len(r["tracks"])
    if a["tracks_compared"]:
        assert 0 <= a["same_best_frame"] <= 1
        assert 0 < a["score_ratio_vs_max_mean"] <= 1


def test_standin_score_rewards_what_face_iqa_rewards() -> None:
    base = QualitySignals(100.0, 40.0, 0.0, 0.0, 0.0, 80.0, 128.0, 40.0)

    def score(**kw: float) -> float:
        return standin_score(replace(base, **kw))

    s = standin_score(base)
    assert 0 < s <= 1
    assert score(face_size=150.0) > s > score(face_size=50.0)
    assert score(yaw=30.0) < s
    assert score(sharpness=20.0) < s
    assert score(brightness=40.0) < s
    assert score(contrast=10.0) < s
