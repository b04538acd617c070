"""Aligned training faces for DSL-FIQA-Lite, cut from the fetched media (``monitor/assets.toml``).

The first stage of ``fqm train lite``: every source below is decoded (PyAV, through
``engines.dslfiqa.training.contrastive.read_video_frames``), its faces are detected,
landmarked and aligned with :mod:`monitor.faces` (the same alignment the stream path uses),
then area-resized from 512 to ``size`` (256) with their 68 landmarks, and written as one
``faces_<source>.npz`` per source. The engines' side (``engines.dslfiqa.training.lite_data``)
degrades and labels them; it never imports ``monitor``.

Splits hold out whole videos and identities (docs/model-card-lite.md):

* ``train``: franck.mp4 (one man, 200 s), the six people of t1.jpg, Tom_Hanks_54745.png;
* ``val`` (checkpoint selection only): astronaut.png, grace_hopper_512x512.jpg;
* ``test`` (never seen in training or selection): Megamind.avi (CGI, other identities) and
  the carphone pristine/distorted pair (another man; its distorted frames are real H.264
  damage, aligned with the pristine frame's box and landmarks so both halves match).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FACE_SIZE = 256
MANIFEST = "faces.json"


@dataclass(frozen=True)
class FaceSource:
    """One fetched file that faces are cut from.

    Attributes:
        name: short name, the ``faces_<name>.npz`` file and the ``source`` of each face.
        asset: the file's name in monitor/assets.toml.
        split: ``train`` | ``val`` | ``test``.
        identity: who is in it (one label per source; t1.jpg holds six people).
        every / max_frames: video frame sampling.
        pair: the asset of the distorted twin of a video (frame-aligned), or None.
    """

    name: str
    asset: str
    split: str
    identity: str
    every: int = 1
    max_frames: int | None = None
    pair: str | None = None


SOURCES: tuple[FaceSource, ...] = (
    FaceSource("franck", "franck.mp4", "train", "franck", every=12, max_frames=400),
    FaceSource("t1", "t1.jpg", "train", "t1-group"),
    FaceSource("tom_hanks", "Tom_Hanks_54745.png", "train", "tom-hanks"),
    FaceSource("astronaut", "astronaut.png", "val", "eileen-collins"),
    FaceSource("grace_hopper", "grace_hopper_512x512.jpg", "val", "grace-hopper"),
    FaceSource("megamind", "Megamind.avi", "test", "megamind-cgi", every=3),
    FaceSource(
        "carphone",
        "carphone_pristine.mp4",
        "test",
        "carphone-man",
        every=2,
        pair="carphone_distorted.mp4",
    ),
)


def _frames(path: Path, source: FaceSource) -> tuple[list[np.ndarray], list[int]]:
    from engines.dataset import read_image_rgb
    from engines.dslfiqa.training.contrastive import read_video_frames

    if path.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"):
        frames = read_video_frames(path, max_frames=source.max_frames, every=source.every)
        return frames, [i * source.every for i in range(len(frames))]
    image = read_image_rgb(path)
    if max(image.shape[:2]) < 200:  # an already tight crop (Tom_Hanks, 112 px): pad it
        pad = image.shape[0] // 2
        image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return [image], [0]


def extract_source(
    source: FaceSource,
    asset_path: Callable[[str], Path],
    size: int = FACE_SIZE,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, np.ndarray]:
    """The aligned faces of one source: arrays ``images`` [N,size,size,3] uint8,
    ``landmarks`` [N,68,2] float32, ``frame`` [N], ``face`` [N] (index in its frame), and
    for a pair ``distorted`` [N,size,size,3] (the twin frame, same alignment)."""
    from engines.dslfiqa.preprocess import resize_face
    from monitor.faces import FaceDetector, FaceLandmarker, align_face

    frames, indices = _frames(asset_path(source.asset), source)
    twins = _frames(asset_path(source.pair), source)[0] if source.pair else None
    images, marks, frame_ids, face_ids, distorted = [], [], [], [], []
    with FaceDetector("both") as detector:
        landmarker = FaceLandmarker()
        for k, (frame, index) in enumerate(zip(frames, indices, strict=True)):
            faces = detector.faces(detector.detect(frame))
            found = landmarker.landmarks(frame, faces.xyxy, faces.keypoints)
            for j in np.flatnonzero(found.found):
                aligned = align_face(frame, faces.xyxy[j], found.ibug68[j])
                img, pts = resize_face(aligned.image, aligned.landmarks, size)
                images.append(img)
                marks.append(pts.astype(np.float32))
                frame_ids.append(index)
                face_ids.append(int(j))
                if twins is not None:
                    twin = align_face(twins[k], faces.xyxy[j], found.ibug68[j])
                    distorted.append(resize_face(twin.image, twin.landmarks, size)[0])
    log(f"{source.name}: {len(images)} faces in {len(frames)} frames")
    out = {
        "images": np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
        "landmarks": np.stack(marks) if marks else np.zeros((0, 68, 2), np.float32),
        "frame": np.asarray(frame_ids, np.int64),
        "face": np.asarray(face_ids, np.int64),
    }
    if source.pair:
        out["distorted"] = (
            np.stack(distorted) if distorted else np.zeros((0, size, size, 3), np.uint8)
        )
    return out


def extract_faces(
    out: str | Path,
    sources: tuple[FaceSource, ...] = SOURCES,
    size: int = FACE_SIZE,
    log: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Write ``faces_<name>.npz`` per source and ``faces.json`` (sources, splits, counts)
    into ``out``; sources already extracted at this size are kept (a cache)."""
    from monitor.assets import asset_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest.get("size") != size:
        manifest = {"size": size, "sources": {}}
    for source in sources:
        path = out / f"faces_{source.name}.npz"
        entry = manifest["sources"].get(source.name)
        if entry and path.is_file() and entry.get("asset") == source.asset:
            continue
        arrays = extract_source(source, asset_path, size, log)
        tmp = out / f".faces_{source.name}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(path)
        manifest["sources"][source.name] = {
            "asset": source.asset,
            "pair": source.pair,
            "split": source.split,
            "identity": source.identity,
            "faces": len(arrays["images"]),
        }
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def measure_speed(
    onnx_path: str | Path,
    *,
    threads: int = 1,
    batch: int = 1,
    faces: int = 240,
    direct: bool = False,
) -> dict[str, float]:
    """Faces/s of DSL-FIQA-Lite from a detected face to its score, on ONNX Runtime's CPU.

    Per face: ``align_face`` (the stream path's alignment, to 512), the area resize to the
    variant's 144, the centre crop, normalisation and the landmark vector (the runtimes'
    ``prepare_faces``), then ONNX Runtime in runs of ``batch`` faces. The faces of t1.jpg
    (six people) are aligned in turn; detection and landmarks are not counted (the face
    stage has them already). ``direct=True`` warps straight to the 144 face instead of
    512-then-resize (what aligning at the variant's size would cost).

    Returns ``{"faces_per_s", "ms_per_face", "align_ms", "prepare_ms", "model_ms"}``.
    """
    import time

    import torch

    from engines.dataset import read_image_rgb
    from engines.dslfiqa.lite_config import LiteConfig
    from engines.dslfiqa.preprocess import (
        crop_images,
        crop_offsets,
        landmark_vectors,
        normalize_image,
        resize_face,
    )
    from engines.runtimes.onnxruntime import OrtQualityEngine
    from monitor.assets import asset_path
    from monitor.faces import FaceDetector, FaceLandmarker, align_face
    from monitor.faces.align import alignment_matrix
    from monitor.faces.warp import image_to_crop, warp_crop

    torch.set_num_threads(threads)
    cfg = LiteConfig()
    engine = OrtQualityEngine(onnx_path, intra_op_threads=threads, variant="dslfiqa-lite")
    frame = read_image_rgb(asset_path("t1.jpg"))
    with FaceDetector("both") as detector:
        found = detector.faces(detector.detect(frame))
        marks = FaceLandmarker().landmarks(frame, found.xyxy, found.keypoints)
    boxes = [(found.xyxy[i], marks.ibug68[i]) for i in np.flatnonzero(marks.found)]
    offsets = crop_offsets("center", None, image_size=cfg.image_size, crop_size=cfg.crop_size)
    scale = np.diag([512 / cfg.image_size, 512 / cfg.image_size, 1.0])
    t_align = t_prep = t_model = 0.0
    pending_c, pending_v = [], []
    for k in range(faces + 8):  # 8 warm-up faces
        xyxy, pts = boxes[k % len(boxes)]
        t0 = time.perf_counter()
        if direct:  # the 144-pixel face: the same geometry, sampled once at that size
            h, w = frame.shape[:2]
            m = np.vstack([alignment_matrix(xyxy, pts, w, h), [0, 0, 1]]) @ scale
            image = warp_crop(frame, m[:2], cfg.image_size)
            lms = image_to_crop(pts, m[:2])
        else:
            aligned = align_face(frame, xyxy, pts)
        t1 = time.perf_counter()
        if not direct:
            image, lms = resize_face(aligned.image, aligned.landmarks, cfg.image_size)
        pending_c.append(crop_images(normalize_image(image), offsets, cfg.crop_size))
        pending_v.append(landmark_vectors(lms, offsets, cfg.crop_size))
        t2 = time.perf_counter()
        if len(pending_c) == batch:
            engine.score_crops(np.concatenate(pending_c), np.concatenate(pending_v))
            pending_c, pending_v = [], []
        t3 = time.perf_counter()
        if k >= 8:
            t_align, t_prep, t_model = t_align + t1 - t0, t_prep + t2 - t1, t_model + t3 - t2
    total = t_align + t_prep + t_model
    return {
        "faces_per_s": faces / total,
        "ms_per_face": 1e3 * total / faces,
        "align_ms": 1e3 * t_align / faces,
        "prepare_ms": 1e3 * t_prep / faces,
        "model_ms": 1e3 * t_model / faces,
    }
