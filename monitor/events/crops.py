"""Best-face crops as JPEG, sized to fit one Kafka record, sent inline or by claim-check.

The crop is the aligned 512x512 face (``uint8`` RGB). :func:`encode_crop` encodes it with
Pillow (libjpeg-turbo) at :attr:`CropPolicy.quality`; if the JPEG is over
:attr:`CropPolicy.max_bytes` it lowers the quality step by step to ``min_quality``, then
subsamples chroma (4:2:0), then downscales by 3/4 steps to ``min_side``, and raises
:class:`CropTooLargeError` if it still does not fit. A real face at quality 100 is about
0.2 MB, so only pathological images (noise) ever take the fallbacks.

Where the JPEG goes is the producer's choice (``CropPolicy.delivery``):

* inline: its own binary record on the crops topic, keyed like the events (see
  ``codec.crop_record``), which the best-frame event names by ``crop_id``;
* claim-check: written to a :class:`CropStore` (:class:`LocalCropStore` for a directory)
  and the event carries the URI; consumers fetch it when they want it.

Example:
    >>> import numpy as np
    >>> crop = encode_crop(np.zeros((512, 512, 3), np.uint8))
    >>> ref = attach_crop(crop)  # inline; attach_crop(crop, LocalCropStore(dir)) to store
    >>> (ref.delivery, ref.width, ref.jpeg_quality)
    ('inline', 512, 90)
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from uuid import UUID, uuid4

import numpy as np
from PIL import Image

from monitor.events.limits import MAX_CROP_BYTES
from monitor.events.model import CropDelivery, CropRef

#: Default JPEG quality: ~90 KB for a real 512x512 face at 4:4:4, visually lossless.
JPEG_QUALITY = 90
Subsampling = Literal["4:4:4", "4:2:0"]
_PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:0": 2}
_CROP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CropTooLargeError(ValueError):
    """A crop that does not fit the size limit even at the policy's lowest settings."""


@dataclass(frozen=True)
class CropPolicy:
    """How crops are encoded and sent.

    Attributes:
        quality: JPEG quality (1-100) tried first.
        min_quality: the lowest quality tried before chroma subsampling and downscaling.
        quality_step: how much each retry lowers the quality.
        subsampling: chroma subsampling tried first; ``4:4:4`` keeps colour edges sharp.
        min_side: the smallest side a crop is downscaled to before giving up.
        max_bytes: the largest JPEG allowed (default: what fits one default Kafka record).
        delivery: ``inline`` (a record on the crops topic) or ``claim_check`` (a store).
    """

    quality: int = JPEG_QUALITY
    min_quality: int = 50
    quality_step: int = 10
    subsampling: Subsampling = "4:4:4"
    min_side: int = 256
    max_bytes: int = MAX_CROP_BYTES
    delivery: CropDelivery = "inline"

    def __post_init__(self) -> None:
        if not 1 <= self.min_quality <= self.quality <= 100:
            raise ValueError(
                f"CropPolicy: need 1 <= min_quality ({self.min_quality}) <= quality "
                f"({self.quality}) <= 100"
            )
        if self.quality_step < 1:
            raise ValueError(f"CropPolicy: quality_step={self.quality_step}; use 1 or more")
        if self.subsampling not in _PIL_SUBSAMPLING:
            raise ValueError(f"CropPolicy: subsampling={self.subsampling!r}; use 4:4:4 or 4:2:0")
        if self.min_side < 16:
            raise ValueError(f"CropPolicy: min_side={self.min_side}; use 16 or more")
        if not 1 <= self.max_bytes <= MAX_CROP_BYTES:
            raise ValueError(
                f"CropPolicy: max_bytes={self.max_bytes}; use 1 to {MAX_CROP_BYTES} (what fits "
                "one record under Kafka's default 1 MB limit)"
            )
        if self.delivery not in ("inline", "claim_check"):
            raise ValueError(f"CropPolicy: delivery={self.delivery!r}; use inline or claim_check")


@dataclass(frozen=True)
class EncodedCrop:
    """A JPEG and how it was made (``quality``/``size`` lower than asked when it had to fit)."""

    jpeg: bytes
    width: int
    height: int
    quality: int
    subsampling: Subsampling

    @property
    def size(self) -> int:
        return len(self.jpeg)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpeg).hexdigest()


def _jpeg(image: Image.Image, quality: int, subsampling: Subsampling) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=_PIL_SUBSAMPLING[subsampling])
    return buffer.getvalue()


def encode_crop(image: np.ndarray, policy: CropPolicy | None = None) -> EncodedCrop:
    """Encode an RGB face crop as JPEG within ``policy.max_bytes``.

    Args:
        image: ``uint8 [H, W, 3]`` RGB (the aligned 512x512 face); not modified.
        policy: quality and size settings; ``CropPolicy()`` by default.

    Returns:
        The smallest-loss JPEG that fits: first the policy's quality, then lower qualities,
        then 4:2:0 chroma, then smaller sizes.

    Raises:
        ValueError: the image is not ``uint8 [H, W, 3]``.
        CropTooLargeError: it does not fit even at ``min_quality``, 4:2:0 and ``min_side``.
    """
    policy = policy or CropPolicy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"a crop must be uint8 [H, W, 3] RGB; got {array.dtype} {list(array.shape)}"
        )
    picture = Image.fromarray(np.ascontiguousarray(array), "RGB")
    attempts: list[tuple[int, Subsampling]] = [
        (q, policy.subsampling)
        for q in range(policy.quality, policy.min_quality, -policy.quality_step)
    ]
    attempts.append((policy.min_quality, policy.subsampling))
    if policy.subsampling != "4:2:0":
        attempts.append((policy.min_quality, "4:2:0"))
    tried = []
    while True:
        for quality, subsampling in attempts:
            jpeg = _jpeg(picture, quality, subsampling)
            if len(jpeg) <= policy.max_bytes:
                return EncodedCrop(jpeg, picture.width, picture.height, quality, subsampling)
            tried.append(f"{picture.width}x{picture.height} q{quality} {subsampling}")
        side = min(picture.size)
        if side <= policy.min_side:
            break
        # Smaller sizes only at the lowest settings: past them, detail is gone anyway.
        attempts = attempts[-1:]
        scale = max(0.75, policy.min_side / side)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    raise CropTooLargeError(
        f"the crop does not fit {policy.max_bytes} bytes even at {tried[-1]} ({len(tried)} "
        "tries); lower CropPolicy.min_quality or min_side, or send crops by claim-check"
    )


class CropStore(Protocol):
    """Keeps claim-checked crops: ``put`` stores the JPEG and returns a URI to fetch it by.

    ``put`` must be durable when it returns (the event naming the URI may be delivered at
    once) and idempotent (a retried put of the same id stores the same bytes).
    """

    def put(self, crop_id: str, jpeg: bytes) -> str: ...


class LocalCropStore:
    """A directory of ``<crop_id>.jpg`` files; URIs are ``file://`` URIs.

    Writes go to a temporary file that is fsynced and renamed, so a reader (or a crash)
    never sees half a JPEG.

    Example:
        >>> store = LocalCropStore(tmp_path)  # doctest: +SKIP
        >>> store.put("9f0c...", jpeg)  # doctest: +SKIP
        'file:///.../9f0c....jpg'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, crop_id: str) -> Path:
        if not _CROP_ID.match(crop_id):
            raise ValueError(f"crop id {crop_id!r} is not a file-name-safe id (use a UUID)")
        return self.root / f"{crop_id}.jpg"

    def put(self, crop_id: str, jpeg: bytes) -> str:
        target = self.path(crop_id)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(jpeg)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.as_uri()


def attach_crop(
    crop: EncodedCrop, store: CropStore | None = None, crop_id: UUID | None = None
) -> CropRef:
    """The :class:`CropRef` a best-frame event carries for ``crop``.

    Args:
        crop: the encoded JPEG.
        store: where to put it for a claim-check; ``None`` sends it inline (publish
            ``codec.crop_record`` too, or use ``codec.to_records(event, crop=crop)``).
        crop_id: its id; a new UUID by default.
    """
    crop_id = crop_id or uuid4()
    uri = None if store is None else store.put(str(crop_id), crop.jpeg)
    return CropRef(
        crop_id=crop_id,
        delivery="inline" if store is None else "claim_check",
        uri=uri,
        width=crop.width,
        height=crop.height,
        size_bytes=crop.size,
        jpeg_quality=crop.quality,
        sha256=crop.sha256,
    )
