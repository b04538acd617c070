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

# Official architecture numbers the torch-free model config needs (engines.dslfiqa.config);
# the network modules import them from here.
# (in, out, stride) of the degradation encoder's six conv-BN-LeakyReLU units.
DE_CONVS: tuple[tuple[int, int, int], ...] = (
    (3, 64, 1),
    (64, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
)
DE_POOL: tuple[int, int] = (8, 12)
# ViT blocks whose outputs DSL-FIQA concatenates (0-based); later blocks cannot change the score.
FEATURE_BLOCKS: tuple[int, ...] = (6, 7, 8, 9)
