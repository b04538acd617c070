"""GStreamer shares the process with PyAV, MediaPipe and torch without breaking C++ exceptions."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The order that aborted before load_gst pinned libgcc's unwinder: PyAV, then GStreamer, then a
# C++ extension that throws during import (matplotlib's ft2font, pulled in by MediaPipe).
SCRIPT = """
import av
from pipelines.gstreamer import load_gst
load_gst()
from mediapipe.tasks.python import vision
import torch
try:
    torch.zeros(2).view(3)  # a C++ exception crossing into Python
except RuntimeError:
    print("survived")
"""


@pytest.mark.gstreamer
def test_cpp_exceptions_survive_gstreamer() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived"
