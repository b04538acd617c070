"""Best-face crops as ``data:`` URIs, so the page is one self-contained file.

The crops are already JPEG (512x512, ~40-90 KB). Shown at thumbnail size, they are shrunk
with Pillow to ``size_px`` and re-encoded only when that is smaller than the original, so
the page never grows past the sum of the crops and is usually far below it.
"""

from __future__ import annotations

import base64
import hashlib
import io

from PIL import Image, UnidentifiedImageError

from monitor.report.model import BestShot

#: JPEG quality of the shrunk thumbnails.
THUMB_QUALITY = 85


def crop_data_uri(shot: BestShot, size_px: int | None) -> tuple[str | None, str]:
    """``(data URI, note)`` for a shot's crop; ``(None, why)`` when there is none to show.

    ``size_px``: the longest side wanted (``None``: the original JPEG as it is). A crop whose
    bytes differ from its event's checksum is shown with a note saying so.
    """
    if shot.crop is None:
        return None, shot.crop_note or "no crop"
    try:
        jpeg = shot.crop.read_bytes()
    except OSError as exc:
        return None, f"cannot read the crop: {exc.strerror or exc}"
    note = ""
    if shot.sha256 is not None and hashlib.sha256(jpeg).hexdigest() != shot.sha256:
        note = "the crop file differs from the one its event describes (checksum)"
    if size_px is not None:
        try:
            jpeg = _shrunk(jpeg, size_px)
        except (UnidentifiedImageError, OSError, ValueError):
            return None, "the crop file is not a readable JPEG"
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"), note


def _shrunk(jpeg: bytes, size_px: int) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as image:
        image.load()
        if max(image.size) <= size_px:
            return jpeg
        thumb = image.convert("RGB")
        thumb.thumbnail((size_px, size_px), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        thumb.save(out, format="JPEG", quality=THUMB_QUALITY, optimize=True)
    small = out.getvalue()
    return small if len(small) < len(jpeg) else jpeg
