"""Log formats: JSON lines that parse, text lines, and no password from a URL in either."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from monitor.logs import MaskingFilter, configure_logging, make_handler

SECRET = "hunter2-Secret"
URL = f"rtsp://admin:{SECRET}@10.0.0.5:554/stream1"
TOKEN_URL = f"https://cdn.example/live.m3u8?token={SECRET}"


@pytest.fixture
def root():
    """The root logger, restored (handlers and level) after the test."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for h in logger.handlers:
        if h not in handlers:
            logger.removeHandler(h)
            h.close()
    logger.setLevel(level)


def log_everything(logger: logging.Logger) -> None:
    """A message, args, an exception and a stack, each carrying a secret."""
    logger.info("opening %s", URL, extra={"stream_id": "lobby"})
    logger.warning(f"formatted in the message: {TOKEN_URL}")
    try:
        raise ConnectionError(f"cannot open {URL}: connection refused")
    except ConnectionError:
        logger.exception("stream %s failed", "lobby", extra={"stream_id": "lobby"})
    logger.error("with a stack, about %s", URL, stack_info=True)


def test_json_lines_parse_and_carry_the_fields(root) -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "json", stream=out, force=True)
    log_everything(logging.getLogger("fqm.test"))
    lines = out.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 4
    first, second, failure, stacked = entries
    for e in entries:
        assert e["logger"] == "fqm.test"
        ts = datetime.fromisoformat(e["ts"])
        assert e["ts"].endswith("Z")
        assert ts.tzinfo is not None
        assert ts.utcoffset().total_seconds() == 0
        assert abs((datetime.now(UTC) - ts).total_seconds()) < 3600
    assert (first["level"], first["stream_id"]) == ("INFO", "lobby")
    assert first["message"] == "opening rtsp://admin:***@10.0.0.5:554/stream1"
    assert "stream_id" not in second
    assert second["message"] == "formatted in the message: https://cdn.example/live.m3u8?token=***"
    assert (failure["level"], failure["message"]) == ("ERROR", "stream lobby failed")
    assert "ConnectionError: cannot open rtsp://admin:***@10.0.0.5" in failure["exc"]
    assert "Traceback" in failure["exc"]
    assert "Stack (most recent call last)" in stacked["stack"]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_reaches_the_output(root, fmt: str) -> None:
    out = io.StringIO()
    configure_logging(logging.DEBUG, fmt, stream=out, force=True)
    log_everything(logging.getLogger("fqm.test"))
    text = out.getvalue()
    assert text.count("***") == 4  # message, args, exception, the stack record's args
    assert SECRET not in text


def test_text_format_is_the_usual_line(root) -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, "text", stream=out, force=True)
    logging.getLogger("fqm.test").warning("%d frames from %s", 3, URL)
    line = out.getvalue().rstrip("\n")
    assert line.endswith(" WARNING fqm.test: 3 frames from rtsp://admin:***@10.0.0.5:554/stream1")


def test_the_filter_masks_for_any_formatter() -> None:
    """Another handler's plain formatter, given the filter, prints no secret either."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("fqm.test.plain")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        log_everything(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    assert "opening rtsp://admin:***@10.0.0.5" in out.getvalue()
    assert SECRET not in out.getvalue()


def test_level_is_applied_and_a_second_call_replaces_the_handler(root) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(logging.INFO, "text", stream=first, force=True)
    configure_logging(logging.WARNING, "json", stream=second, force=True)
    log = logging.getLogger("fqm.test")
    log.info("quiet")
    log.warning("loud")
    assert first.getvalue() == ""
    assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == ["loud"]
    assert sum(getattr(h, "_fqm", False) for h in root.handlers) == 1


def test_leaves_a_configured_root_alone_unless_forced(root) -> None:
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    level = root.level
    assert configure_logging(logging.DEBUG, "json", stream=io.StringIO()) is None
    assert root.level == level
    assert not any(getattr(h, "_fqm", False) for h in root.handlers)
    assert configure_logging(logging.DEBUG, "json", stream=io.StringIO(), force=True) is not None
    assert foreign in root.handlers


def test_default_stream_follows_sys_stderr(monkeypatch) -> None:
    handler = make_handler("json")
    logger = logging.getLogger("fqm.test.stderr")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(2):  # swapped between records, as click's test runner does
            swapped = io.StringIO()
            monkeypatch.setattr(sys, "stderr", swapped)
            logger.warning("record %d", n)
            assert json.loads(swapped.getvalue())["message"] == f"record {n}"
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        make_handler("xml")  # type: ignore[arg-type]


EMIT = """
import logging, sys
from monitor.cli.app import cli

@cli.command("emit-log")
def emit_log():
    logging.getLogger("fqm.emit").info("reading %s", sys.argv[1])
    logging.getLogger("fqm.emit").warning("cannot reach %s", sys.argv[1])

cli([*sys.argv[2:], "emit-log"], prog_name="fqm")
"""


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--log-format", "json"], {}, "json"),
        ([], {"FQM_LOG_FORMAT": "json"}, "json"),
        ([], {}, "text"),
        (["-v", "--log-format", "text"], {"FQM_LOG_FORMAT": "json"}, "text"),
    ],
)
def test_fqm_log_format_option(args: list[str], env: dict[str, str], expected: str) -> None:
    """The root group's option (or FQM_LOG_FORMAT) picks the format of a real fqm process."""
    environ = {k: v for k, v in os.environ.items() if k not in ("FQM_LOG_FORMAT", "FQM_DEBUG")}
    done = subprocess.run(
        [sys.executable, "-c", EMIT, URL, *args],
        env=environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert SECRET not in done.stderr
    verbose = "-v" in args
    assert len(lines) == (2 if verbose else 1), done.stderr  # INFO only with -v
    if expected == "json":
        entry = json.loads(lines[-1])
        assert (entry["level"], entry["logger"]) == ("WARNING", "fqm.emit")
        assert entry["message"] == "cannot reach rtsp://admin:***@10.0.0.5:554/stream1"
    else:
        assert lines[-1].endswith(
            " WARNING fqm.emit: cannot reach rtsp://admin:***@10.0.0.5:554/stream1"
        )
