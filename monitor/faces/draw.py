"""Drawing landmarks on an image in numpy, to check the 68-point mapping by eye.

``python -m monitor.faces.draw docs/faces/landmarks68.png`` writes the picture kept in the
docs: the 468-point mesh in grey, the 68 iBUG points coloured by group, the detector's six
keypoints as white squares, on the two public-domain stills (the test clips state no licence,
so no frame of them is committed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from monitor.faces.ibug68 import IBUG68_GROUPS

#: One colour per iBUG group, in ``IBUG68_GROUPS`` order.
GROUP_COLOURS = (
    (255, 200, 0),
    (0, 200, 255),
    (0, 120, 255),
    (255, 0, 200),
    (255, 0, 120),
    (0, 255, 0),
    (0, 255, 150),
    (255, 40, 40),
    (255, 140, 140),
)


def draw_points(
    image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: int = 1
) -> np.ndarray:
    """A copy of ``image`` with a filled square of ``2 * radius + 1`` pixels at each point."""
    out = image.copy()
    h, w = out.shape[:2]
    for x, y in np.asarray(points, np.float64).reshape(-1, 2):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        xi, yi = round(x), round(y)
        out[
            max(yi - radius, 0) : min(yi + radius + 1, h),
            max(xi - radius, 0) : min(xi + radius + 1, w),
        ] = colour
    return out


def draw_ibug68(image: np.ndarray, ibug68: np.ndarray, radius: int = 2) -> np.ndarray:
    """A copy of ``image`` with the 68 points coloured by group."""
    out = image
    for colour, idx in zip(GROUP_COLOURS, IBUG68_GROUPS.values(), strict=True):
        out = draw_points(out, ibug68[list(idx)], colour, radius)
    return out


def _panel(image: np.ndarray, size: int = 400) -> np.ndarray:
    from monitor.faces.detector import FaceDetector
    from monitor.faces.landmarks import FaceLandmarker

    with FaceDetector() as detector:
        faces = detector.faces(detector.detect(image))
    marks = FaceLandmarker().landmarks(image, faces.xyxy, faces.keypoints)
    out = image
    for i in range(len(faces)):
        out = draw_points(out, marks.points[i, :, :2], (150, 150, 150), 0)
        out = draw_ibug68(out, marks.ibug68[i], radius=max(1, round(faces.widths[i] / 60)))
        out = draw_points(out, faces.keypoints[i], (255, 255, 255), 1)
    # Crop around the first face so the points are visible, then resize by nearest neighbour.
    if len(faces):
        x1, y1, x2, y2 = faces.xyxy[0]
        side = max(x2 - x1, y2 - y1) * 1.6
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        h, w = out.shape[:2]
        a, b = int(max(cy - side / 2, 0)), int(min(cy + side / 2, h))
        c, d = int(max(cx - side / 2, 0)), int(min(cx + side / 2, w))
        out = out[a:b, c:d]
    ys = (np.arange(size) * out.shape[0] / size).astype(int)
    xs = (np.arange(size) * out.shape[1] / size).astype(int)
    return out[ys][:, xs]


def main(argv: list[str]) -> int:
    import av

    from monitor.assets import asset_path

    out_path = Path(argv[0] if argv else "docs/faces/landmarks68.png")
    images = []
    for name in ("astronaut.png", "grace_hopper_512x512.jpg"):
        with av.open(str(asset_path(name))) as container:
            images.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    picture = np.concatenate([_panel(img) for img in images], axis=1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out_path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height = picture.shape[1], picture.shape[0]
        stream.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    print(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
