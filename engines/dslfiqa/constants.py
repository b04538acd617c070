"""The official test-time protocol's numbers (DSL_FIQA.md §2), free of torch and numpy.

Light enough for CLI option lists (``fqm --help``) to import; ``preprocess`` re-exports them.
"""

from __future__ import annotations

from typing import Literal

IMAGE_SIZE = 512
CROP_SIZE = 384
# Official offsets come from randint(0, 512 - 384): the bottom/right crop (128) never occurs.
MAX_OFFSET = IMAGE_SIZE - CROP_SIZE
NUM_CROPS_OFFICIAL = 20
# The official scripts seed numpy with 20 once at start-up.
OFFICIAL_SEED = 20
NUM_LANDMARK = 500
NUM_FACE_LANDMARKS = 68
NORM_MEAN = 0.5
NORM_STD = 0.5
MINMAX_EPS = 1e-6

CropMode = Literal["official", "fixed5", "center"]
CROP_MODES: tuple[str, ...] = ("official", "fixed5", "center")
