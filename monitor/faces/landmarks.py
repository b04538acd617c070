"""``FaceLandmarker``: MediaPipe's 468-point face mesh for each tracked face, from a crop.

The mesh model (``face_landmark.tflite``) runs on a 192x192 crop around each face, rotated so
the detector's eye keypoints are level and 1.5x the box (MediaPipe's own ROI rule), and the
points are mapped back to the image through the same affine. Running per tracked face keeps
the cost per face, not per frame, works on the full-range detector's small faces, and ties
each mesh to its track without re-matching.

A dark crop (``low_light=True``, the default) is brightened before the model sees it
(``monitor.faces.exposure``): in video darkened x0.05 the model's face flag rejected 35 % of
the faces the detector found (carphone); the crop is the face's own surroundings, so a dark
face in a bright frame is brightened too. Only the model's input changes: the points map back
to the original image.

The model runs in LiteRT's ``Interpreter`` (``ai-edge-litert``), not in MediaPipe's Tasks
``FaceLandmarker``: with the bundled model file that task returns scrambled points. The graph
expects 478 points, divides the model's 1404 outputs (468 x xyz) by 478, gets 2 values per
point, and so returns x/y interleaved with z (measured here: z is always 0).

Threads: a LiteRT interpreter is not thread-safe, so each ``FaceLandmarker`` owns one and must
be used from one thread at a time (one landmarker per stream worker). It runs single-threaded
by default (``num_threads=1``, ~2 ms per face): with several streams per machine, parallelism
belongs across streams, and intra-op threads on a shared machine only add jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.assets import asset_path
from monitor.faces.exposure import normalised
from monitor.faces.ibug68 import mesh_to_ibug68
from monitor.faces.warp import crop_matrix, crop_to_image, warp_crop
from monitor.native_logs import quiet_native_logs

MESH_POINTS = 468
MODEL_FILE = "face_landmark.tflite"
INPUT_SIZE = 192
#: Crop side as a multiple of the box side (MediaPipe's ROI for this model uses 1.5).
DEFAULT_CROP_SCALE = 1.5
#: Least face-presence probability (the model's own flag) for a mesh to be kept.
DEFAULT_MIN_PRESENCE = 0.5
#: LiteRT CPU threads per interpreter (see the module docstring).
DEFAULT_NUM_THREADS = 1


@dataclass(frozen=True, slots=True, eq=False)
class FaceLandmarks:
    """Dense landmarks for a set of faces, one row per input box.

    Attributes:
        points: ``float32 [N, 468, 3]``: x, y in image pixels, z (relative depth, smaller is
            nearer the camera) in the same pixel scale; all NaN where no face was found.
        presence: ``float32 [N]``, the model's probability that the crop holds a face.
    """

    points: np.ndarray
    presence: np.ndarray

    def __post_init__(self) -> None:
        pts = np.array(self.points, np.float32, copy=True)
        if pts.ndim != 3 or pts.shape[1:] != (MESH_POINTS, 3):
            raise ValueError(
                f"FaceLandmarks.points must have shape (N, {MESH_POINTS}, 3), got {pts.shape}"
            )
        pres = np.array(self.presence, np.float32, copy=True).reshape(-1)
        if pres.shape != (pts.shape[0],):
            raise ValueError(
                f"FaceLandmarks.presence must have shape ({pts.shape[0]},), got {pres.shape}"
            )
        pts.setflags(write=False)
        pres.setflags(write=False)
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "presence", pres)

    @classmethod
    def empty(cls) -> FaceLandmarks:
        return cls(np.zeros((0, MESH_POINTS, 3), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> FaceLandmarks:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return FaceLandmarks(self.points[index], self.presence[index])

    @property
    def found(self) -> np.ndarray:
        """``bool [N]``: whether a mesh was kept for each box."""
        return ~np.isnan(self.points[:, 0, 0])

    @property
    def ibug68(self) -> np.ndarray:
        """``float32 [N, 68, 2]``: the iBUG 68 points (x, y) in image pixels."""
        return mesh_to_ibug68(self.points)[..., :2]


def roi_matrix(xyxy: np.ndarray, keypoints: np.ndarray | None, scale: float) -> np.ndarray:
    """The crop affine for one face: centred on the box, rotated to level the eye keypoints."""
    box = np.asarray(xyxy, np.float64)
    center = (box[:2] + box[2:]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * scale
    angle = 0.0
    if keypoints is not None and np.all(np.isfinite(keypoints[:2])):
        eyes = np.asarray(keypoints[1], np.float64) - np.asarray(keypoints[0], np.float64)
        angle = float(np.arctan2(eyes[1], eyes[0]))
    return crop_matrix(center, side, angle, INPUT_SIZE)


class FaceLandmarker:
    """Runs the face mesh model on a crop around each given face.

    Args:
        crop_scale: crop side as a multiple of the box's longer side.
        min_presence: least face-presence probability for a mesh to be kept.
        model_path: override of the model file (default: the checked asset).
        num_threads: CPU threads of this landmarker's LiteRT interpreter.
        low_light: brighten dark crops before the model sees them (see the module docstring).

    Not thread-safe: it owns one LiteRT interpreter; use one landmarker per thread.

    Example:
        >>> landmarker = FaceLandmarker()  # doctest: +SKIP
        >>> marks = landmarker.landmarks(frame.image, faces.xyxy, faces.keypoints)
        >>> marks.ibug68.shape
        (1, 68, 2)
    """

    def __init__(
        self,
        *,
        crop_scale: float = DEFAULT_CROP_SCALE,
        min_presence: float = DEFAULT_MIN_PRESENCE,
        model_path: Path | None = None,
        num_threads: int = DEFAULT_NUM_THREADS,
        low_light: bool = True,
    ) -> None:
        if crop_scale < 1.0 or not 0.0 <= min_presence <= 1.0 or num_threads < 1:
            raise ValueError(
                "crop_scale must be >= 1, min_presence in [0, 1] and num_threads >= 1, got "
                f"{crop_scale}, {min_presence}, {num_threads}"
            )
        from ai_edge_litert.interpreter import Interpreter

        self.crop_scale = crop_scale
        self.min_presence = min_presence
        self.num_threads = num_threads
        self.low_light = low_light
        with quiet_native_logs():  # LiteRT's "INFO: Created ... XNNPACK delegate" line
            self._interpreter = Interpreter(
                model_path=str(model_path or asset_path(MODEL_FILE)), num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"unexpected face mesh input shape {tuple(inp['shape'])}")
        self._input = inp["index"]
        by_size = {
            int(np.prod(o["shape"])): o["index"] for o in self._interpreter.get_output_details()
        }
        self._mesh_out, self._flag_out = by_size[MESH_POINTS * 3], by_size[1]

    def _run(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """Mesh ``float64 [468, 3]`` in crop pixels and the face flag (a logit) of one crop."""
        it = self._interpreter
        # The model takes RGB in [0, 1].
        it.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        it.invoke()
        mesh = it.get_tensor(self._mesh_out).reshape(MESH_POINTS, 3).astype(np.float64)
        return mesh, float(it.get_tensor(self._flag_out).reshape(()))

    def landmarks(
        self, image: np.ndarray, xyxy: np.ndarray, keypoints: np.ndarray | None = None
    ) -> FaceLandmarks:
        """The mesh of the face in each ``[N, 4]`` box of an RGB ``uint8`` image.

        ``keypoints`` (``[N, 6, 2]``, the detector's) level the eyes in the crop; without
        them the crop is upright, which is fine for faces within about 30° of upright.
        """
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return FaceLandmarks.empty()
        mats = [
            roi_matrix(b, None if keypoints is None else keypoints[i], self.crop_scale)
            for i, b in enumerate(boxes)
        ]
        out = np.full((len(boxes), MESH_POINTS, 3), np.nan, np.float32)
        presence = np.zeros(len(boxes), np.float64)
        for i, m in enumerate(mats):
            crop = warp_crop(image, m, INPUT_SIZE)
            mesh, flag = self._run(normalised(crop) if self.low_light else crop)
            presence[i] = 0.5 * (1.0 + np.tanh(flag / 2))  # sigmoid, without overflow
            if presence[i] < self.min_presence:
                continue
            scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
            out[i, :, :2] = crop_to_image(mesh[:, :2], m)
            out[i, :, 2] = mesh[:, 2] * scale
        return FaceLandmarks(out, presence)
