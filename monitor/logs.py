"""fqm's log output: human text or JSON lines, with URL secrets masked on every handler.

``configure_logging`` installs one handler on the root logger, writing to stderr. Both
formats pass the message, its arguments, the exception text and the stack through
``pipelines.urls.mask_url``, twice over: a :class:`MaskingFilter` on the handler rewrites
the record, and each formatter masks what it writes, so a password in a camera URL never
reaches a log file, however it got into the record.

JSON lines (``--log-format json``, for log shippers) hold ``ts`` (RFC 3339, UTC, ms),
``level``, ``logger``, ``message``, ``thread``, ``stream_id`` when the call passed
``extra={"stream_id": ...}``, and ``exc`` / ``stack`` when there is one.

Example:
    >>> configure_logging(logging.INFO, "json")  # doctest: +SKIP
    >>> logging.getLogger("fqm").warning("%s down", url, extra={"stream_id": "lobby"})
    ... # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

from pipelines.urls import mask_url

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")

#: The text format (what ``fqm`` printed before JSON lines existed).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MaskingFilter(logging.Filter):
    """Masks URL secrets in a record's message (with its args) and exception text.

    The message is rendered (``getMessage``) and masked, and ``args`` dropped, so a secret
    split across the format and an argument is masked as a whole; the exception is
    formatted here and kept masked in ``exc_text``, which formatters use as is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, masked
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = mask_url(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_url(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_url(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines, with the whole output masked (exception text included)."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        return mask_url(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the keys)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, object] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_url(record.getMessage()),
            "thread": record.threadName,
        }
        stream_id = getattr(record, "stream_id", None)
        if stream_id is not None:
            entry["stream_id"] = mask_url(str(stream_id))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = mask_url(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask_url(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record (tests and click swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def make_handler(fmt: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler in format ``fmt`` with the masking filter, to ``stream`` (else stderr)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MaskingFilter())
    handler._fqm = True  # type: ignore[attr-defined]  (ours: replaced on the next call)
    return handler


def configure_logging(
    level: int,
    fmt: LogFormat = "text",
    *,
    stream: TextIO | None = None,
    force: bool = False,
) -> logging.Handler | None:
    """Log ``level`` and above from every logger, as ``fmt``, to ``stream`` (else stderr).

    Like ``logging.basicConfig``, it leaves the root logger alone when someone else (an
    embedding application, pytest's capture) already put handlers on it, unless ``force``;
    those handlers are kept either way. A handler from an earlier call is replaced, so
    calling it twice never doubles the lines.

    Returns:
        The handler installed, or ``None`` when the root logger was left alone.

    Raises:
        ValueError: an unknown ``fmt``.
    """
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_fqm", False)]
    if not force and len(ours) < len(root.handlers):
        return None
    for old in ours:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
