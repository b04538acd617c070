"""The 68-point iBUG (300-W / Multi-PIE) layout DSL-FIQA uses, taken from MediaPipe's mesh.

DSL-FIQA's landmark branch and its alignment expect the 68 iBUG points that FaceXFormer
predicts (docs: DSL_FIQA.md §2.1): 0-16 jaw line from the subject's right ear to the left,
17-21 right brow and 22-26 left brow (outer→inner, inner→outer), 27-30 nose bridge to tip,
31-35 nose base, 36-41 right eye and 42-47 left eye (clockwise from the outer/inner corner),
48-59 outer lips and 60-67 inner lips. "Right" is the subject's right: the image's left in
an unmirrored picture.

MediaPipe's 468-point canonical mesh has no iBUG points, so each iBUG point takes the mesh
vertex that lies on the same anatomical spot (eye corners, lid midpoints, brow ridge, alar
base, lip corners and midlines, the face-oval silhouette). Two choices worth knowing:

* The jaw points take silhouette vertices of the mesh's face oval. iBUG's contour is where the
  cheek meets the background in 2-D, which moves with yaw; the mesh vertex is fixed on the
  skin, so on turned faces the far-side jaw points sit inside the visible outline. For
  FIQA's use (which landmarks fall in a crop, and eye/nose points for the roll alignment)
  that difference is a few pixels and does not matter.
* The table is left/right symmetric: ``MIRROR_PAIRS`` lists, for each point, its iBUG mirror,
  and the mesh indices of mirrored iBUG points are mirrored mesh vertices. A test checks this
  symmetry on a real frontal face.

Only indices < 468 are used, so the table works for both the 468-point mesh and the
478-point FaceLandmarker output (whose last 10 points are the irises).
"""

from __future__ import annotations

import numpy as np

#: ``MESH_FOR_IBUG68[i]`` is the MediaPipe mesh vertex used as iBUG point ``i``.
MESH_FOR_IBUG68: tuple[int, ...] = (
    # 0-16 jaw, subject's right ear -> chin (8) -> left ear
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # 17-21 right brow (outer -> inner), 22-26 left brow (inner -> outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge (between the eyes) -> tip
    168, 197, 5, 4,
    # 31-35 nose base, right ala -> subnasale (33) -> left ala
    98, 97, 2, 326, 327,
    # 36-41 right eye: outer corner, upper outer, upper inner, inner corner, lower inner,
    # lower outer
    33, 160, 158, 133, 153, 144,
    # 42-47 left eye: inner corner, upper inner, upper outer, outer corner, lower outer,
    # lower inner
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lips from the right corner, clockwise in the image (upper lip first)
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lips from the right corner, clockwise
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip

#: iBUG point pairs that swap under a left/right mirror (points 8, 27-30, 33, 51, 57, 62, 66
#: are on the midline and have none).
MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),
    *((17 + i, 26 - i) for i in range(5)),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56),
    (60, 64), (61, 63), (67, 65),
)  # fmt: skip

#: Named groups, for drawing and for quality signals.
IBUG68_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_base": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}

_INDEX = np.asarray(MESH_FOR_IBUG68, np.int64)
if len(set(MESH_FOR_IBUG68)) != 68:  # a typo in the table must fail at import
    raise AssertionError("MESH_FOR_IBUG68 must list 68 distinct mesh vertices")


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """The 68 iBUG points of ``[..., 468 or 478, C]`` mesh points: ``[..., 68, C]`` (a copy)."""
    mesh = np.asarray(mesh)
    if mesh.ndim < 2 or mesh.shape[-2] < 468:
        raise ValueError(f"expected mesh points [..., 468 or 478, C], got {mesh.shape}")
    return mesh[..., _INDEX, :].copy()
