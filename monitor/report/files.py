"""A run folder's files: each stream's topic files in write order, read line by line.

The JSONL sink (``monitor.delivery.jsonl_sink``) writes ``<stream>/<topic>.jsonl`` and rotates
it to ``<topic>.1.jsonl`` (newest) ... ``<topic>.N.jsonl`` (oldest). Topics are found by
file name, not assumed, so a run with ``--topics-prefix`` reads the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.delivery.jsonl_sink import SUFFIX

#: The longest line read; a longer one is skipped as corrupt (events are under 20 KB).
MAX_LINE_BYTES = 4 * 1024 * 1024

_FILE = re.compile(r"^(?P<topic>.+?)(?:\.(?P<n>[0-9]+))?" + re.escape(SUFFIX) + "$")


def stream_folders(root: Path) -> list[Path]:
    """The stream folders of a run folder (not hidden: the sink's lock file is), by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def topic_files(stream: Path) -> list[list[Path]]:
    """Per topic, its files oldest first: ``.N`` ... ``.1``, then the current file."""
    topics: dict[str, list[tuple[int, Path]]] = {}
    for path in stream.glob(f"*{SUFFIX}"):
        match = _FILE.match(path.name)
        if match and path.is_file() and not path.name.startswith("."):
            n = int(match["n"]) if match["n"] else 0
            topics.setdefault(match["topic"], []).append((n, path))
    return [
        [p for _, p in sorted(files, key=lambda f: -f[0])] for _, files in sorted(topics.items())
    ]


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a JSONL file: ``problem`` is ``""``, ``"torn"`` (the last line, without
    its newline) or ``"too_long"`` (over :data:`MAX_LINE_BYTES`, content dropped)."""

    number: int
    data: bytes
    problem: str = ""


def read_lines(path: Path) -> Iterator[Line]:
    """The non-empty lines of ``path``, streamed (at most one line in memory)."""
    with open(path, "rb") as f:
        number = 0
        while True:
            data = f.readline(MAX_LINE_BYTES + 1)
            if not data:
                return
            number += 1
            if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
                while data and not data.endswith(b"\n"):
                    data = f.readline(1024 * 1024)
                yield Line(number, b"", "too_long")
            elif not data.endswith(b"\n"):
                yield Line(number, data, "torn")
                return
            elif data.strip():
                yield Line(number, data)
