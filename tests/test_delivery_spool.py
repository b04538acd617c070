"""The spool on its own: order by sequence, persistence across instances, the full policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.delivery.record import Record
from monitor.delivery.spool import Spool, SpoolLimits, decode_headers, encode_headers


def _record(i: int, size: int = 10) -> Record:
    return Record("t", f"k{i % 3}".encode(), bytes(size), (("id", str(i).encode()), ("ct", b"")))


def test_headers_round_trip() -> None:
    headers = (("id", b"\x00\xff"), ("", b""), ("é", b"x" * 300))
    assert decode_headers(encode_headers(headers)) == headers


def test_peek_is_in_sequence_order_and_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for seq in (5, 1, 3):
        assert spool.append(seq, _record(seq))
    assert [seq for seq, _ in spool.peek(10)] == [1, 3, 5]
    spool.remove([1])
    spool.close()

    again = Spool(tmp_path)
    assert len(again) == 2
    assert again.max_seq == 5
    assert again.size_bytes == 2 * _record(0).size
    assert [(seq, rec) for seq, rec in again.peek(10)] == [(3, _record(3)), (5, _record(5))]


def test_full_spool_refuses_new_records_and_keeps_old_ones(tmp_path: Path) -> None:
    one = _record(0, size=100).size
    spool = Spool(tmp_path, SpoolLimits(max_bytes=3 * one))
    assert spool.append_many([(i, _record(i, size=100)) for i in range(5)]) == 3
    assert not spool.append(9, _record(9, size=100))
    assert [seq for seq, _ in spool.peek(10)] == [0, 1, 2]
    spool.remove([0])
    assert spool.append(9, _record(9, size=100))

    counted = Spool(tmp_path / "n", SpoolLimits(max_records=2))
    assert counted.append_many([(i, _record(i)) for i in range(3)]) == 2


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        SpoolLimits(max_bytes=0)
    with pytest.raises(ValueError, match="max_records"):
        SpoolLimits(max_records=0)
