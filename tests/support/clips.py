"""Small test clips made with the ffmpeg CLI from the fetched test media."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

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


def cut(src: Path, out: Path, frames: int) -> Path:
    """The first ``frames`` video packets of ``src``, copied (not re-encoded) into ``out``."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-frames:v", str(frames)]
    # Index first, so that it also streams from a server that ignores Range requests.
    cmd += ["-an", "-c", "copy", "-movflags", "+faststart"]
    subprocess.run([*cmd, str(out)], check=True, timeout=120)
    return out


def packet_offsets(path: Path) -> list[int]:
    """Byte offset of each video packet of ``path``, in decoding order (from ffprobe)."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0"]
    cmd += ["-show_entries", "packet=pos", "-of", "csv=p=0", str(path)]
    out = subprocess.run(cmd, check=True, timeout=120, capture_output=True, text=True).stdout
    return [int(line.strip().rstrip(",")) for line in out.splitlines() if line.strip()]


def ffmpeg_frame_count(path: Path) -> int:
    """Pictures the ffmpeg CLI (ffprobe -count_frames) decodes from ``path``'s video."""
    cmd = ["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0"]
    cmd += ["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)]
    out = subprocess.run(cmd, check=True, timeout=120, capture_output=True, text=True).stdout
    return int(out.strip().rstrip(","))


def overwrite(src: Path, out: Path, start: int, size: int, seed: int = 1) -> Path:
    """Copy ``src`` with ``size`` random bytes written over it from ``start``: a bad sector,
    a flipped network buffer. The container's index is untouched, so it still opens."""
    data = bytearray(src.read_bytes())
    noise = np.random.default_rng(seed).integers(0, 256, size, np.uint8)
    data[start : start + size] = noise.tobytes()
    out.write_bytes(bytes(data))
    return out
