"""Message-size limits: by design, no record fqm makes is refused by a default Kafka.

Kafka's defaults: the producer's ``max.request.size`` is 1,048,576 bytes and the broker's
``message.max.bytes`` 1,048,588 (a record batch, with its framing). fqm keeps every record
(key + value + headers) under :data:`MAX_RECORD_BYTES`, leaving room for the batch and
record framing, so a stock broker and producer accept each one on its own.
"""

from __future__ import annotations

#: Kafka's default producer ``max.request.size`` (and, near enough, the broker's limit).
KAFKA_DEFAULT_MAX_BYTES = 1_048_576
#: The most bytes (key + value + headers) an fqm record may have.
MAX_RECORD_BYTES = 1_000_000
#: What a crop record spends besides its JPEG: the key (a stream id, at most 256 characters,
#: so at most 1 KiB of UTF-8) and the headers (about 150 bytes), rounded up.
CROP_RECORD_OVERHEAD = 4096
#: The largest JPEG a crop may be.
MAX_CROP_BYTES = MAX_RECORD_BYTES - CROP_RECORD_OVERHEAD


class RecordTooLargeError(ValueError):
    """A record over the size limit: it would be refused by a default Kafka."""
