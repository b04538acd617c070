"""Small test clips made with the ffmpeg CLI from the fetched test media."""

from __future__ import annotations

import subprocess
from pathlib import Path

from monitor.assets import asset_path

#: Frames in the generated clips: enough to see order and decimation, quick to encode.
CLIP_FRAMES = 30


def make_clip(out: Path, *, codec_args: list[str], vf: str | None = None) -> Path:
    """Re-encode the first ``CLIP_FRAMES`` of carphone_pristine.mp4 into ``out``."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(asset_path("carphone_pristine.mp4"))]
    cmd += ["-frames:v", str(CLIP_FRAMES), "-an"]
    if vf:
        cmd += ["-vf", vf]
    subprocess.run([*cmd, *codec_args, str(out)], check=True, timeout=120)
    return out


def truncate(src: Path, out: Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes: a download or recording cut short."""
    data = src.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
