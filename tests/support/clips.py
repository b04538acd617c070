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


def packets(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet of ``path``, in decoding order (ffprobe)."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0"]
    cmd += ["-show_entries", "packet=pos,size", "-of", "csv=p=0", str(path)]
    out = subprocess.run(cmd, check=True, timeout=120, capture_output=True, text=True).stdout
    rows = [line.strip().rstrip(",").split(",") for line in out.splitlines() if line.strip()]
    # ffprobe prints the fields in its own order (size, pos).
    return [(int(pos), int(size)) for size, pos in rows]


def packet_offsets(path: Path) -> list[int]:
    """Byte offset of each video packet of ``path``, in decoding order (from ffprobe)."""
    return [pos for pos, _size in packets(path)]


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


def without_pictures(src: Path, out: Path, start_s: float, seconds: float) -> Path:
    """``seconds`` of ``src``'s H.264 from ``start_s``, copied with every slice removed: each
    packet still arrives (an access unit delimiter, parameter sets) but none makes a picture,
    like a camera whose encoder hangs while its streamer keeps sending."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-ss", str(start_s), "-i", str(src)]
    cmd += ["-t", str(seconds), "-an", "-c", "copy", "-bsf:v"]
    cmd += ["h264_mp4toannexb,h264_metadata=aud=insert,filter_units=remove_types=1|5"]
    subprocess.run([*cmd, str(out)], check=True, timeout=120)
    return out


def concat(parts: list[Path], out: Path) -> Path:
    """``parts`` (same codec and parameters) one after the other in ``out``, copied."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    subprocess.run([*cmd, "-c", "copy", str(out)], check=True, timeout=120)
    return out
