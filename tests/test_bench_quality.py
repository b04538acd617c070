"""``fqm bench modes`` and its faces: real stills and video frames through ``PhotoAligner``.

Without --weights the model is random, so scores mean nothing; what is checked is that the bench
takes aligned faces from the bundled media and reports every crop mode. A face costs 25 crop
forwards (~2-3 s each on the 2-core CPU host), hence ``slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.benchmarks.quality import STILLS, VIDEOS, sample_aligned_faces

FQM = str(Path(sys.executable).with_name("fqm"))


@pytest.mark.slow
def test_bench_faces_are_aligned_faces_from_stills_then_every_video() -> None:
    faces = sample_aligned_faces(len(STILLS) + len(VIDEOS))
    labels = [f.label for f in faces]
    assert labels[: len(STILLS)] == list(STILLS)
    # One frame from each video (in VIDEOS order), numbered by its frame index.
    assert [label.split("#")[0] for label in labels[len(STILLS) :]] == list(VIDEOS)
    assert all(label.split("#")[1].isdigit() for label in labels[len(STILLS) :])
    for face in faces:
        assert face.image.shape == (512, 512, 3)
        assert face.image.dtype == np.uint8
        assert face.landmarks.shape == (68, 2)
        assert face.landmarks.dtype == np.float32
        # The official alignment centres the face: its points average inside [128, 384], the
        # area every crop sees (single points of a face cut by the photo's edge, as in the
        # 112x112 Tom_Hanks still, may fall outside the aligned image).
        assert ((face.landmarks.mean(axis=0) > 128) & (face.landmarks.mean(axis=0) < 384)).all()


@pytest.mark.slow
def test_bench_modes_one_face_json_reports_all_three_modes() -> None:
    proc = subprocess.run(
        [FQM, "bench", "modes", "--faces", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "random" in report["weights"]  # the random-weights caveat travels with it
    (face,) = report["faces"]
    assert face["label"] == STILLS[0]
    for mode in ("official", "fixed5", "center"):
        assert np.isfinite(face[mode])
    assert face["official_crop_std"] > 0
    agreement = report["agreement_with_official"]
    assert set(agreement) == {"fixed5", "center", "official"}
    for mode in ("fixed5", "center"):
        # One face: no correlation, but the differences are defined.
        assert agreement[mode]["srcc"] is None
        assert agreement[mode]["plcc"] is None
        assert agreement[mode]["mean_abs_diff"] == pytest.approx(abs(face[mode] - face["official"]))
    assert agreement["official"]["score_std_across_faces"] is None
