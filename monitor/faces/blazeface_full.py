"""``FullRangeDetector``: BlazeFace full-range (the non-sparse file) run directly in LiteRT.

MediaPipe's Tasks ``FaceDetector`` refuses ``face_detection_full_range.tflite`` (it lacks the
input-normalisation metadata), and the sparse file it does load misses small faces (3 of 6
in t1.jpg against 5 of 6 here) and scores a logo 0.50 (0.22 here). So this module does what
MediaPipe's ``face_detection_full_range`` graph does (``modules/face_detection/
face_detection.pbtxt`` with the full-range options), in numpy:

* the frame is letterboxed into 192x192 (aspect ratio kept, centred, black border), with
  values in [-1, 1] (``ImageToTensorCalculator``: ``keep_aspect_ratio``,
  ``output_tensor_float_range {-1, 1}``, ``BORDER_ZERO``);
* 2304 anchors: one per cell of a 48x48 grid (one layer, stride 4), at cell centres, size 1
  (``SsdAnchorsCalculator``: ``fixed_anchor_size``, ``interpolated_scale_aspect_ratio: 0``);
* each anchor's 16 regressors are (x, y, w, h) of the box then 6 keypoints (x, y), in
  192-pixel units relative to the anchor centre; its score is the sigmoid of the clipped
  logit (``TensorsToDetectionsCalculator``: scales 192, ``reverse_output_order``,
  ``sigmoid_score``, ``score_clipping_thresh: 100``);
* weighted non-maximum suppression at IoU 0.3 (``NonMaxSuppressionCalculator``:
  ``algorithm: WEIGHTED``). Weighted, not greedy: with one anchor every 4 pixels a face fires
  a dozen neighbouring anchors, and averaging them (by score) gives a box and keypoints that
  are steadier from frame to frame than the single best anchor (less jitter for the tracker
  and for the landmark crop), and it is what MediaPipe's thresholds were tuned with.

The shrink to 192 pixels must be antialiased and cheap. Measured on 720p, one core:
torch's antialiased bilinear on ``uint8`` ~0.4 ms, the same then a 2x2 mean from twice the
size ~1.7 ms, an exact area resize (``adaptive_avg_pool2d`` on float) ~5 ms, swscale's area
filter (PyAV ``reformat``) ~15 ms, the generic crop warp ~45 ms. Scores on t1.jpg's two
smallest faces: area 0.62 / 0.58, two-step 0.61 / 0.55, one-step bilinear 0.597 / 0.53 (just
under the 0.6 threshold: it blurs more), and MediaPipe's own bilinear without antialiasing
0.64 / 0.23 (a 6x shrink aliases; it also scored a logo 0.35 against 0.23-0.27). Hence the
two-step resize for frames at least 4x the input, one step below that.

Threads: one LiteRT interpreter per detector, which is not thread-safe: use one
``FullRangeDetector`` per thread (per stream worker). ``num_threads=1`` by default, as for
the landmarker: the model takes ~4 ms single-threaded and parallelism belongs across streams.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.assets import asset_path
from monitor.faces.boxes import weighted_nms
from monitor.faces.detections import NUM_KEYPOINTS, FaceDetections
from monitor.native_logs import quiet_native_logs

MODEL_FILE = "face_detection_full_range.tflite"
INPUT_SIZE = 192
GRID = INPUT_SIZE // 4  # one layer, stride 4: 48 x 48 anchors
NUM_ANCHORS = GRID * GRID
NUM_COORDS = 4 + 2 * NUM_KEYPOINTS
#: MediaPipe's ``min_score_thresh`` for this model.
DEFAULT_MIN_SCORE = 0.6
#: Least score returned at all (candidates for the tracker's low-score pass).
DEFAULT_LOW_SCORE = 0.2
#: MediaPipe's ``min_suppression_threshold`` for face detection.
DEFAULT_NMS_IOU = 0.3
#: LiteRT CPU threads per interpreter (see the module docstring).
DEFAULT_NUM_THREADS = 1
#: Logits are clipped to +-this before the sigmoid (MediaPipe's ``score_clipping_thresh``).
SCORE_CLIP = 100.0


def anchors() -> np.ndarray:
    """``float64 [2304, 2]``: anchor centres (x, y) in input pixels, row by row."""
    centres = (np.arange(GRID) + 0.5) * (INPUT_SIZE / GRID)
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1)


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The model input for an RGB ``uint8 [H, W, 3]`` image and the map back to the image.

    Returns ``float32 [size, size, 3]`` in [-1, 1] (border -1, i.e. black) and ``(scale_x,
    scale_y, pad_x, pad_y)``: image ``x = (input_x - pad_x) * scale_x``, likewise for y, in
    continuous coordinates (pixel edges at integers).
    """
    import torch
    import torch.nn.functional as F

    h, w = image.shape[:2]
    factor = size / max(h, w)
    nw, nh = max(round(w * factor), 1), max(round(h * factor), 1)
    px, py = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, 3), -1.0, np.float32)
    src = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        if max(h, w) >= 4 * size:
            # Antialiased bilinear to twice the size on uint8 (a fast native kernel), then 2x2
            # means: within 0.01 of an exact area resize in score, at a third of its cost.
            big = F.interpolate(src, size=(2 * nh, 2 * nw), mode="bilinear", antialias=True)
            small = F.avg_pool2d(big.float(), 2)
        else:  # a mild shrink (or an enlargement): one antialiased bilinear step
            small = F.interpolate(src, size=(nh, nw), mode="bilinear", antialias=True).float()
        small = small[0].permute(1, 2, 0).numpy()
    out[py : py + nh, px : px + nw] = small * (2.0 / 255.0) - 1.0
    return out, np.array([w / nw, h / nh, px, py], np.float64)


class FullRangeDetector:
    """BlazeFace full-range face detection on RGB images, in LiteRT.

    Args:
        min_score: score at or above which a detection is a face (MediaPipe: 0.6).
        low_score: least score returned at all; lower-scoring anchors are dropped before
            suppression.
        nms_iou: IoU above which anchors are merged into one detection.
        num_threads: CPU threads of this detector's LiteRT interpreter.
        model_path: override of the model file (default: the checked asset).

    Not thread-safe: it owns one LiteRT interpreter; use one detector per thread.

    Example:
        >>> with FullRangeDetector() as detector:  # doctest: +SKIP
        ...     found = detector.detect(image)
        ...     faces = found[found.scores >= detector.min_score]
    """

    def __init__(
        self,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        low_score: float = DEFAULT_LOW_SCORE,
        nms_iou: float = DEFAULT_NMS_IOU,
        num_threads: int = DEFAULT_NUM_THREADS,
        model_path: Path | None = None,
    ) -> None:
        if not 0.0 < low_score <= min_score <= 1.0:
            raise ValueError(
                "scores must satisfy 0 < low_score <= min_score <= 1, got "
                f"low_score={low_score}, min_score={min_score}"
            )
        if not 0.0 < nms_iou <= 1.0 or num_threads < 1:
            raise ValueError(
                f"nms_iou must be in (0, 1] and num_threads >= 1, got {nms_iou}, {num_threads}"
            )
        from ai_edge_litert.interpreter import Interpreter

        self.min_score = min_score
        self.low_score = low_score
        self.nms_iou = nms_iou
        self.num_threads = num_threads
        with quiet_native_logs():  # LiteRT's "INFO: Created ... XNNPACK delegate" line
            self._interpreter: Interpreter | None = Interpreter(
                model_path=str(model_path or asset_path(MODEL_FILE)), num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"unexpected full-range detector input shape {tuple(inp['shape'])}")
        self._input = inp["index"]
        outs = {tuple(o["shape"]): o["index"] for o in self._interpreter.get_output_details()}
        try:
            self._boxes_out = outs[(1, NUM_ANCHORS, NUM_COORDS)]
            self._scores_out = outs[(1, NUM_ANCHORS, 1)]
        except KeyError:
            raise ValueError(f"unexpected full-range detector outputs {sorted(outs)}") from None
        self._anchors = anchors()

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every anchor's decoded box ``[2304, 4]``, score ``[2304]`` and keypoints
        ``[2304, 6, 2]``, in image pixels, before thresholds and suppression."""
        reg, scores, transform = self._infer(image)
        xyxy, kps = self._decode(reg, self._anchors, transform)
        return xyxy, scores, kps

    def detect(self, image: np.ndarray) -> FaceDetections:
        """Faces and low-score candidates (score >= ``low_score``) in an RGB ``uint8 [H, W,
        3]`` image, best first; boxes are clipped to the image, keypoints are not."""
        reg, scores, transform = self._infer(image)
        keep = np.flatnonzero(scores >= self.low_score)
        if len(keep) == 0:
            return FaceDetections.empty()
        xyxy, kps = self._decode(reg[keep], self._anchors[keep], transform)
        xyxy, scores, kps = weighted_nms(xyxy, scores[keep], kps, self.nms_iou)
        h, w = image.shape[:2]
        return FaceDetections(xyxy=xyxy, scores=scores, keypoints=kps).clipped(w, h)

    def _infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's regressors ``[2304, 16]``, scores ``[2304]`` and the letterbox map."""
        it = self._interpreter
        if it is None:
            raise RuntimeError("FullRangeDetector is closed")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
            )
        tensor, transform = letterbox(image)
        it.set_tensor(self._input, tensor[None])
        it.invoke()
        reg = it.get_tensor(self._boxes_out)[0].astype(np.float64)
        logits = np.clip(it.get_tensor(self._scores_out)[0, :, 0], -SCORE_CLIP, SCORE_CLIP)
        scores = 0.5 * (1.0 + np.tanh(logits.astype(np.float64) / 2))  # sigmoid
        return reg, scores, transform

    @staticmethod
    def _decode(
        reg: np.ndarray, anchor: np.ndarray, transform: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``[N, 4]`` and keypoints ``[N, 6, 2]`` in image pixels for these anchors."""
        centre = anchor + reg[:, :2]
        half = reg[:, 2:4] / 2
        xyxy = np.concatenate([centre - half, centre + half], axis=1)
        kps = anchor[:, None, :] + reg[:, 4:].reshape(-1, NUM_KEYPOINTS, 2)
        scale, pad = transform[:2], transform[2:]
        return ((xyxy.reshape(-1, 2, 2) - pad) * scale).reshape(-1, 4), (kps - pad) * scale

    def faces(self, detections: FaceDetections) -> FaceDetections:
        """Only the detections scoring at least ``min_score``."""
        return detections[detections.scores >= self.min_score]

    def close(self) -> None:
        self._interpreter = None

    def __enter__(self) -> FullRangeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
