"""``fqm bench faces`` runs as a user runs it and reports every step (no timed assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monitor.assets import asset_path

FQM = str(Path(sys.executable).with_name("fqm"))


def test_bench_faces_json_on_carphone_reports_one_track() -> None:
    clip = str(asset_path("carphone_pristine.mp4"))
    proc = subprocess.run(
        [FQM, "bench", "faces", clip, "--max-frames", "30", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["frames"] == 30
    assert (report["width"], report["height"]) == (176, 144)
    assert report["tracks"] == 1
    assert report["faces_landmarked"] > 20
    assert set(report["steps"]) == {"detection", "tracking", "landmarks", "alignment", "total"}
    assert report["steps"]["detection"]["calls"] == 30
    assert all(step["fps"] > 0 for step in report["steps"].values())
