"""DSL-FIQA-Lite training data: degradation families at calibrated severities, and labels.

Input: the aligned faces ``monitor.lite_faces`` writes (``faces_<source>.npz``: 256-pixel
aligned faces, their 68 landmarks; ``faces.json``: split and identity per source).

**Degradations.** Nine families, each a function of a severity level ``s`` in (0, 1] applied
to a 256-pixel aligned face (:func:`degrade`); ``s = 0`` is the clean face. Ranges span
"barely visible" to "unusable" at that size:

=============  ==============================================================================
family         parameter at level s
=============  ==============================================================================
defocus        disk (pillbox) blur, radius 0.5 + 6.5 s px
motion         linear motion blur, length 2 + 20 s px, random direction
noise          Gaussian noise, sigma 3 + 42 s grey levels
jpeg           JPEG (FFmpeg mjpeg), qscale 2 + 29 s
h264           one H.264 intra frame (libx264), QP 20 + 31 s
downscale      area down by 1.25 + 8.75 s, bilinear back up
underexposure  gain 1 - 0.85 s, gamma 1 + 1.5 s (darker, crushed shadows)
overexposure   gain 1 + 3 s with clipping (blown highlights)
occlusion      a flat occluder over 10 % + 60 s % of the face box (lower face, eyes or side)
=============  ==============================================================================

**Labels** (:func:`make_labels`; docs/model-card-lite.md). They never depend on identity:

* *recognisability* ``r``: the cosine similarity of the degraded face's dlib ResNet embedding
  (``dlib_face_recognition_resnet_model_v1.dat``, CC0) to its own clean original's, both
  cut with the clean face's landmarks, rescaled so that the typical similarity between two
  *different* people of the training data (the median impostor cosine, measured) is 0 and
  identity is 1, clipped to [0, 1];
* *calibrated severity* ``c``: per family, the mean recognisability loss ``1 - r`` of the
  training faces as a monotone function of the level (binned, made non-decreasing),
  normalised by the largest loss of any family, and averaged with the level itself:
  ``c = (s + D_f(s) / max D) / 2``. So equal ``c`` means equal harm to recognition on
  average across families, and ``c`` always grows with ``s`` even where the embedding is
  robust (mild noise, exposure);
* label ``q = (r + 1 - c) / 2``: 1 for a clean face, toward 0 as the face becomes
  unrecognisable. The per-sample term ``r`` carries what the face itself suffered; the
  per-family term ``c`` keeps the labels monotone in severity.

Validation and test faces get severity *ladders* instead (every family at fixed levels), to
measure the per-clip Spearman correlation of scores vs severity without any embedding.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.dslfiqa.training.degradations import add_noise, downscale, h264_intra, jpeg

FAMILIES: tuple[str, ...] = (
    "defocus",
    "motion",
    "noise",
    "jpeg",
    "h264",
    "downscale",
    "underexposure",
    "overexposure",
    "occlusion",
)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
LADDER_LEVELS: tuple[float, ...] = (0.0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0)
CALIBRATION_BINS = 8
EMBEDDING_CHIP = 150  # dlib's face chip side
EMBEDDING_PADDING = 0.25  # dlib's default chip padding


# ------------------------------------------------------------------------- degradations
def _to_t(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def _to_img(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    k = torch.from_numpy((kernel / kernel.sum()).astype(np.float32))
    r = k.shape[0] // 2
    t = F.pad(_to_t(image), (r, r, r, r), mode="replicate")
    return _to_img(F.conv2d(t, k[None, None].expand(3, 1, -1, -1), groups=3))


def disk_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Defocus: a pillbox kernel of ``radius`` px, edges anti-aliased (4x supersampled)."""
    r = int(np.ceil(radius))
    ss = 4
    ax = (np.arange(-r * ss, (r + 1) * ss) + 0.5) / ss - 0.5
    xx, yy = np.meshgrid(ax, ax)
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    kernel = inside.reshape(2 * r + 1, ss, 2 * r + 1, ss).mean(axis=(1, 3))
    return _filter(image, kernel)


def motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """A straight motion streak of ``length`` px at ``angle`` radians (supersampled line)."""
    r = int(np.ceil(length / 2)) + 1
    kernel = np.zeros((2 * r + 1, 2 * r + 1))
    for t in np.linspace(-length / 2, length / 2, int(length * 8) + 2):
        x, y = r + t * np.cos(angle), r + t * np.sin(angle)
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, w in (
            (0, 0, (1 - fx) * (1 - fy)),
            (1, 0, fx * (1 - fy)),
            (0, 1, (1 - fx) * fy),
            (1, 1, fx * fy),
        ):
            if 0 <= y0 + dy <= 2 * r and 0 <= x0 + dx <= 2 * r:
                kernel[y0 + dy, x0 + dx] += w
    return _filter(image, kernel)


def _exposure(image: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    return np.clip(np.rint(np.power(x, gamma) * gain * 255.0), 0, 255).astype(np.uint8)


def occlude(
    image: np.ndarray, landmarks: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Cover ``fraction`` of the landmarks' box with a flat, slightly noisy occluder: a
    band over the lower face (mask), over the eyes (sunglasses, hat brim) or from a side
    (hand, another head)."""
    out = image.copy()
    h, w = image.shape[:2]
    x1, y1 = landmarks.min(axis=0)
    x2, y2 = landmarks.max(axis=0)
    bw, bh = x2 - x1, y2 - y1
    kind = int(rng.integers(3))
    colour = rng.integers(0, 256, size=3)
    if kind == 0:  # from the bottom up (mask)
        box = (x1, y2 - fraction * bh, x2, y2 + 0.1 * bh)
    elif kind == 1:  # a band centred on the eyes
        ey = landmarks[36:48, 1].mean()
        box = (x1, ey - fraction * bh / 2, x2, ey + fraction * bh / 2)
    else:  # from the left or the right
        if rng.random() < 0.5:
            box = (x1 - 0.1 * bw, y1, x1 + fraction * bw, y2)
        else:
            box = (x2 - fraction * bw, y1, x2 + 0.1 * bw, y2)
    bx1, by1, bx2, by2 = (round(v) for v in box)
    bx1, by1 = max(bx1, 0), max(by1, 0)
    bx2, by2 = min(bx2, w), min(by2, h)
    if bx2 > bx1 and by2 > by1:
        patch = colour + rng.normal(0, 6, size=(by2 - by1, bx2 - bx1, 3))
        out[by1:by2, bx1:bx2] = np.clip(patch, 0, 255).astype(np.uint8)
    return out


def degrade(
    image: np.ndarray, landmarks: np.ndarray, family: str, level: float, seed: int
) -> np.ndarray:
    """``image`` (uint8 RGB aligned face, 256 px) degraded by ``family`` at ``level`` in
    [0, 1]; deterministic given ``seed``. Level 0 returns a copy of the clean face."""
    if family not in FAMILIES:
        raise ValueError(f"unknown degradation family {family!r}; choose one of {FAMILIES}")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level}")
    if level == 0:
        return image.copy()
    rng = np.random.default_rng(seed)
    s = float(level)
    if family == "defocus":
        return disk_blur(image, 0.5 + 6.5 * s)
    if family == "motion":
        return motion_blur(image, 2 + 20 * s, float(rng.uniform(0, np.pi)))
    if family == "noise":
        return add_noise(image, 3 + 42 * s, rng)
    if family == "jpeg":
        return jpeg(image, round(2 + 29 * s))
    if family == "h264":
        return h264_intra(image, round(20 + 31 * s))
    if family == "downscale":
        return downscale(image, 1.25 + 8.75 * s)
    if family == "underexposure":
        return _exposure(image, 1 - 0.85 * s, 1 + 1.5 * s)
    if family == "overexposure":
        return _exposure(image, 1 + 3 * s, 1.0)
    return occlude(image, np.asarray(landmarks, np.float64), 0.1 + 0.6 * s, rng)


def resize_square(image: np.ndarray, landmarks: np.ndarray, size: int):
    """Area-resize a square face and scale its landmarks (as scoring does)."""
    if image.shape[0] == size:
        return image, landmarks
    t = F.interpolate(_to_t(image), size=(size, size), mode="area")
    return _to_img(t), np.asarray(landmarks, np.float32) * (size / image.shape[0])


# ---------------------------------------------------------------------------- embedding
class DlibEmbedder:
    """dlib's ResNet face descriptor (128-d) of a face given its 68 iBUG landmarks.

    ``dlib`` (the ``dlib-bin`` wheel) is imported here only: it is needed to *make* labels,
    never to train from cached ones or to score.
    """

    def __init__(self, model_path: str | Path):
        try:
            import dlib
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from engines.dataset import DatasetError

            raise DatasetError(
                "computing dslfiqa-lite labels needs dlib: install the dlib-bin wheel "
                "(uv pip install dlib-bin); training from labels already cached does not"
            ) from exc
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(model_path))

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        d = self._dlib
        pts = np.asarray(landmarks, np.float64)
        x1, y1 = pts.min(axis=0)
        x2, y2 = pts.max(axis=0)
        rect = d.rectangle(int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2)))
        shape = d.full_object_detection(rect, [d.point(round(x), round(y)) for x, y in pts])
        return d.get_face_chip(
            np.ascontiguousarray(image), shape, size=EMBEDDING_CHIP, padding=EMBEDDING_PADDING
        )

    def embed(self, images: list[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
        """[N,128] unit-norm descriptors; every image is cut with the same ``landmarks``."""
        chips = [self.chip(im, landmarks) for im in images]
        e = np.asarray(self.net.compute_face_descriptor(chips), np.float64)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


# ------------------------------------------------------------------------------ labels
@dataclass(frozen=True)
class Calibration:
    """What turns embeddings and levels into labels (stored with the data, and the card).

    Attributes:
        impostor_cos: median cosine between clean faces of different identities (r = 0).
        bins: level bin edges; ``loss[f]`` the non-decreasing mean recognisability loss per
            bin of family f; ``max_loss`` the largest of all.
    """

    impostor_cos: float
    bins: tuple[float, ...]
    loss: dict[str, tuple[float, ...]]
    max_loss: float

    def recognisability(self, cos: np.ndarray) -> np.ndarray:
        return np.clip((cos - self.impostor_cos) / (1 - self.impostor_cos), 0.0, 1.0)

    def severity(self, family: str, level: np.ndarray) -> np.ndarray:
        """Calibrated severity c in [0, 1] (module docstring)."""
        level = np.asarray(level, np.float64)
        centres = (np.asarray(self.bins[:-1]) + np.asarray(self.bins[1:])) / 2
        xs = np.concatenate([[0.0], centres, [1.0]])
        loss = np.asarray(self.loss[family])
        ys = np.concatenate([[0.0], loss, [loss[-1]]])
        harm = np.interp(level, xs, ys) / max(self.max_loss, 1e-6)
        return np.where(level > 0, (level + harm) / 2, 0.0)

    def expected(self, family: str, level: np.ndarray) -> np.ndarray:
        """The family's mean recognisability at ``level`` (for samples not embedded)."""
        level = np.asarray(level, np.float64)
        centres = (np.asarray(self.bins[:-1]) + np.asarray(self.bins[1:])) / 2
        xs = np.concatenate([[0.0], centres, [1.0]])
        loss = np.asarray(self.loss[family])
        return 1.0 - np.interp(level, xs, np.concatenate([[0.0], loss, [loss[-1]]]))

    def label(self, family: str, level: np.ndarray, cos: np.ndarray) -> np.ndarray:
        r = self.recognisability(np.asarray(cos, np.float64))
        return (r + 1.0 - self.severity(family, level)) / 2

    def to_dict(self) -> dict:
        return {
            "impostor_cos": self.impostor_cos,
            "bins": list(self.bins),
            "loss": {k: list(v) for k, v in self.loss.items()},
            "max_loss": self.max_loss,
        }


def calibrate(
    families: np.ndarray, levels: np.ndarray, cos: np.ndarray, impostor_cos: float
) -> Calibration:
    """Fit the per-family loss curves on (family, level, cosine) of the training samples."""
    bins = tuple(np.linspace(0, 1, CALIBRATION_BINS + 1).tolist())
    r = np.clip((cos - impostor_cos) / (1 - impostor_cos), 0.0, 1.0)
    loss: dict[str, tuple[float, ...]] = {}
    for f in FAMILIES:
        means = []
        for lo, hi in itertools.pairwise(bins):
            sel = (families == f) & (levels > lo) & (levels <= hi)
            means.append(float(np.mean(1 - r[sel])) if sel.any() else np.nan)
        m = np.asarray(means)
        if np.isnan(m).all():
            m = np.zeros_like(m)
        m = np.interp(np.arange(len(m)), np.flatnonzero(~np.isnan(m)), m[~np.isnan(m)])
        loss[f] = tuple(np.maximum.accumulate(np.maximum(m, 0.0)).tolist())
    max_loss = max(max(v) for v in loss.values())
    return Calibration(float(impostor_cos), bins, loss, float(max_loss))


# ------------------------------------------------------------------------------ dataset
def load_faces(faces_dir: str | Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``faces.json`` and each source's arrays, as ``monitor.lite_faces`` wrote them."""
    faces_dir = Path(faces_dir)
    manifest = json.loads((faces_dir / "faces.json").read_text())
    arrays = {}
    for name in manifest["sources"]:
        with np.load(faces_dir / f"faces_{name}.npz") as z:
            arrays[name] = {k: z[k] for k in z.files}
    return manifest, arrays


def build_train_samples(
    faces_dir: str | Path,
    out: str | Path,
    embedder_path: str | Path,
    *,
    image_size: int,
    per_face: int = 6,
    embed_every: int = 3,
    seed: int = 0,
    log: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Degrade every training face ``per_face`` times (distinct random families, uniform
    levels) plus its clean copy and label them; write ``train.npz`` (images at
    ``image_size``, landmarks, family, level, cosine, label, measured flag, source,
    identity, group = face) and ``calibration.json``. Kept when both exist (a cache).

    Every ``embed_every``-th face of a source has all its variants embedded with dlib (the
    measured recognisability); they calibrate the per-family curves. The other faces' labels
    use the family's calibrated expectation ``r = 1 - D_f(s)`` in place of a measurement
    (dlib costs ~0.25 s a face on these CPUs; ``embed_every=1`` measures every sample).
    """
    out = Path(out)
    path = out / "train.npz"
    if path.is_file() and (out / "calibration.json").is_file():
        return path
    out.mkdir(parents=True, exist_ok=True)
    manifest, arrays = load_faces(faces_dir)
    embedder = DlibEmbedder(embedder_path)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    clean_emb: dict[str, list[np.ndarray]] = {}
    train = [n for n, s in manifest["sources"].items() if s["split"] == "train"]
    total = sum(len(arrays[n]["images"]) for n in train)
    done = 0
    for name in train:
        identity = manifest["sources"][name]["identity"]
        faces = zip(arrays[name]["images"], arrays[name]["landmarks"], strict=True)
        for k, (img, lm) in enumerate(faces):
            chosen = rng.choice(len(FAMILIES), size=per_face, replace=False)
            variants = [("clean", 0.0, img)]
            for fi in chosen:
                fam, lvl = FAMILIES[int(fi)], float(rng.uniform(0.02, 1.0))
                variants.append((fam, lvl, degrade(img, lm, fam, lvl, int(rng.integers(2**31)))))
            # Single-image sources are always measured (they are few and varied).
            measured = k % embed_every == 0 or len(arrays[name]["images"]) < embed_every
            if measured:
                emb = embedder.embed([v[2] for v in variants], lm)
                clean_emb.setdefault(identity, []).append(emb[0])
                cos = emb @ emb[0]
            else:
                cos = np.full(len(variants), np.nan)
            for (fam, lvl, im), c in zip(variants, cos, strict=True):
                small, small_lm = resize_square(im, lm, image_size)
                rows.append(
                    {
                        "image": small,
                        "landmarks": small_lm,
                        "family": fam,
                        "level": lvl,
                        "cos": float(c),
                        "source": name,
                        "identity": identity,
                        "group": done,
                    }
                )
            done += 1
            if done % 25 == 0 or done == total:
                log(
                    f"labels: {done}/{total} training faces degraded, "
                    f"{len(clean_emb)} identities embedded"
                )
    impostor = impostor_cosine(clean_emb, rng)
    fams = np.asarray([r["family"] for r in rows])
    levels = np.asarray([r["level"] for r in rows], np.float64)
    coss = np.asarray([r["cos"] for r in rows], np.float64)
    measured = ~np.isnan(coss)
    deg = (fams != "clean") & measured
    cal = calibrate(fams[deg], levels[deg], coss[deg], impostor)
    labels = np.ones(len(rows))
    for i, (f, lv, c) in enumerate(zip(fams, levels, coss, strict=True)):
        if f == "clean":
            continue
        r = cal.recognisability(np.array(c)) if measured[i] else cal.expected(f, np.array(lv))
        labels[i] = (float(r) + 1.0 - float(cal.severity(f, np.array(lv)))) / 2
    np.savez(
        out / ".train.tmp.npz",
        images=np.stack([r["image"] for r in rows]),
        landmarks=np.stack([r["landmarks"] for r in rows]).astype(np.float32),
        family=fams,
        level=levels.astype(np.float32),
        cos=coss.astype(np.float32),
        measured=measured,
        label=labels.astype(np.float32),
        source=np.asarray([r["source"] for r in rows]),
        identity=np.asarray([r["identity"] for r in rows]),
        group=np.asarray([r["group"] for r in rows], np.int64),
    )
    (out / ".train.tmp.npz").replace(path)
    (out / "calibration.json").write_text(json.dumps(cal.to_dict(), indent=2) + "\n")
    return path


def impostor_cosine(clean_emb: dict[str, list[np.ndarray]], rng: np.random.Generator) -> float:
    """Median cosine between clean faces of *different* identities (up to 2000 pairs).

    t1.jpg holds six people under one identity label, so its faces are compared with each
    other as well (they are different people)."""
    names = sorted(clean_emb)
    sims = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ea, eb = np.asarray(clean_emb[a]), np.asarray(clean_emb[b])
            ia = rng.integers(len(ea), size=min(400, len(ea) * len(eb)))
            ib = rng.integers(len(eb), size=len(ia))
            sims += list(np.sum(ea[ia] * eb[ib], axis=1))
    group = clean_emb.get("t1-group", [])
    for i in range(len(group)):
        for j in range(i + 1, len(group)):
            sims.append(float(group[i] @ group[j]))
    if not sims:
        raise ValueError("need clean faces of at least two identities to calibrate labels")
    return float(np.median(sims))


def build_ladders(
    faces_dir: str | Path,
    out: str | Path,
    split: str,
    *,
    image_size: int,
    max_faces_per_source: int = 24,
    seed: int = 1,
) -> Path:
    """Every face of ``split`` (at most ``max_faces_per_source`` per source, evenly spread)
    at every family x :data:`LADDER_LEVELS`; for a pair source also its distorted twin.
    Writes ``<split>.npz``; no embeddings (evaluation is against the level)."""
    out = Path(out)
    path = out / f"{split}.npz"
    if path.is_file():
        return path
    out.mkdir(parents=True, exist_ok=True)
    manifest, arrays = load_faces(faces_dir)
    rng = np.random.default_rng(seed)
    images, marks, fams, levels, srcs, faces = [], [], [], [], [], []
    for name, meta in manifest["sources"].items():
        if meta["split"] != split:
            continue
        a = arrays[name]
        n = len(a["images"])
        pick = np.unique(np.linspace(0, n - 1, min(n, max_faces_per_source)).round().astype(int))
        for k in pick if n else []:
            img, lm = a["images"][k], a["landmarks"][k]
            small_lm = resize_square(img, lm, image_size)[1]
            cases = [(f, lv) for f in FAMILIES for lv in LADDER_LEVELS if lv > 0]
            cases.insert(0, ("clean", 0.0))
            for fam, lvl in cases:
                im = img if fam == "clean" else degrade(img, lm, fam, lvl, int(rng.integers(2**31)))
                images.append(resize_square(im, lm, image_size)[0])
                marks.append(small_lm)
                fams.append(fam)
                levels.append(lvl)
                srcs.append(name)
                faces.append(f"{name}:{int(a['frame'][k])}:{int(a['face'][k])}")
            if "distorted" in a:
                images.append(resize_square(a["distorted"][k], lm, image_size)[0])
                marks.append(small_lm)
                fams.append("real-h264")
                levels.append(1.0)
                srcs.append(name)
                faces.append(f"{name}:{int(a['frame'][k])}:{int(a['face'][k])}")
    np.savez(
        out / f".{split}.tmp.npz",
        images=np.stack(images),
        landmarks=np.stack(marks).astype(np.float32),
        family=np.asarray(fams),
        level=np.asarray(levels, np.float32),
        source=np.asarray(srcs),
        face=np.asarray(faces),
    )
    (out / f".{split}.tmp.npz").replace(path)
    return path


def build_still_samples(
    faces_dir: str | Path,
    out: str | Path,
    embedder_path: str | Path,
    *,
    image_size: int,
    levels_per_family: int = 4,
    seed: int = 2,
    log: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Dense variants of the training *photos* (sources of one image): every family at
    ``levels_per_family`` random levels, all embedded with dlib and labelled with the
    calibration of ``train.npz`` (run :func:`build_train_samples` first). Written to
    ``train_stills.npz`` in groups of the clean copy + 6 variants, like ``train.npz``.

    The photos are the training set's only sharp, high-resolution faces; without many
    variants of them the model learns the video's softness as "clean" and scores a sharp
    photo as damaged."""
    out = Path(out)
    path = out / "train_stills.npz"
    if path.is_file():
        return path
    manifest, arrays = load_faces(faces_dir)
    cal_dict = json.loads((out / "calibration.json").read_text())
    cal = Calibration(
        impostor_cos=cal_dict["impostor_cos"],
        bins=tuple(cal_dict["bins"]),
        loss={k: tuple(v) for k, v in cal_dict["loss"].items()},
        max_loss=cal_dict["max_loss"],
    )
    embedder = DlibEmbedder(embedder_path)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    group = 1_000_000  # apart from train.npz's groups
    for name, meta in manifest["sources"].items():
        if meta["split"] != "train" or Path(meta["asset"]).suffix.lower() in VIDEO_SUFFIXES:
            continue
        for img, lm in zip(arrays[name]["images"], arrays[name]["landmarks"], strict=True):
            cases = [
                (f, float(rng.uniform(0.02, 1.0)))
                for f in FAMILIES
                for _ in range(levels_per_family)
            ]
            order = rng.permutation(len(cases))
            degraded = [
                degrade(img, lm, cases[i][0], cases[i][1], int(rng.integers(2**31))) for i in order
            ]
            emb = embedder.embed([img, *degraded], lm)
            small_clean, small_lm = resize_square(img, lm, image_size)
            for start in range(0, len(order), 6):
                rows.append(_row(small_clean, small_lm, "clean", 0.0, 1.0, 1.0, name, meta, group))
                for j in range(start, min(start + 6, len(order))):
                    fam, lvl = cases[order[j]]
                    cos = float(emb[j + 1] @ emb[0])
                    q = float(cal.label(fam, np.array(lvl), np.array(cos)))
                    small = resize_square(degraded[j], lm, image_size)[0]
                    rows.append(_row(small, small_lm, fam, lvl, cos, q, name, meta, group))
                group += 1
            log(f"stills: {name} face embedded ({len(order)} variants)")
    np.savez(
        out / ".train_stills.tmp.npz",
        images=np.stack([r["image"] for r in rows]),
        landmarks=np.stack([r["landmarks"] for r in rows]).astype(np.float32),
        family=np.asarray([r["family"] for r in rows]),
        level=np.asarray([r["level"] for r in rows], np.float32),
        cos=np.asarray([r["cos"] for r in rows], np.float32),
        measured=np.ones(len(rows), bool),
        label=np.asarray([r["label"] for r in rows], np.float32),
        source=np.asarray([r["source"] for r in rows]),
        identity=np.asarray([r["identity"] for r in rows]),
        group=np.asarray([r["group"] for r in rows], np.int64),
    )
    (out / ".train_stills.tmp.npz").replace(path)
    return path


def _row(image, landmarks, family, level, cos, label, source, meta, group) -> dict:
    return {
        "image": image,
        "landmarks": landmarks,
        "family": family,
        "level": level,
        "cos": cos,
        "label": label,
        "source": source,
        "identity": meta["identity"],
        "group": group,
    }
