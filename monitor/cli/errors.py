"""The CLI's error boundary: expected failures become one masked line and a non-zero exit.

An expected failure is one the user can act on: a file that is missing or not a video, a
checkpoint that does not load, a bad device, an unreachable camera. Those print
``Error: <message>`` and exit 1; ``--debug`` re-raises them with the traceback instead.
Anything else is a bug in fqm: it prints one line saying so (and how to get the traceback)
and exits 70 (``EX_SOFTWARE``). Every message passes through :func:`mask_url`, so a camera
password or a token in a URL never reaches the terminal, whoever raised the error.

The expected exception types live in engines/, pipelines/ and monitor/; they are looked up
in ``sys.modules`` rather than imported, so that ``fqm --help`` does not import torch (an
exception of a module that was never imported cannot have been raised).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from pipelines.urls import mask_url

#: (module, class) of every exception that reports a user-fixable problem.
EXPECTED: tuple[tuple[str, str], ...] = (
    ("pipelines.errors", "SourceError"),
    ("engines.dslfiqa.checkpoint", "CheckpointError"),
    ("engines.dataset", "DatasetError"),
    ("engines.weights", "DeviceError"),
    ("engines.export", "ExportError"),
    ("engines.backends", "BackendUnavailableError"),
    ("engines.backends", "BackendConfigError"),
    ("engines.trt.errors", "TensorRTError"),
    ("monitor.assets", "AssetError"),
    ("monitor.delivery.consumer", "ConsumeError"),
    ("monitor.config.errors", "ConfigError"),
    ("monitor.fleet.topic", "FleetTopicError"),
)
#: Exit status of an unexpected exception (sysexits.h EX_SOFTWARE).
EXIT_INTERNAL = 70


def _expected_types() -> Iterator[type[BaseException]]:
    for module, name in EXPECTED:
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            yield getattr(loaded, name)


def is_expected(exc: BaseException) -> bool:
    """A user-fixable failure: one of :data:`EXPECTED`, or an OS error naming a file."""
    if isinstance(exc, tuple(_expected_types())):
        return True
    return isinstance(exc, OSError) and exc.filename is not None


def first_line(exc: BaseException) -> str:
    """The message's first non-empty line (the rest is often a library's advice)."""
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text.splitlines()[0] if text else type(exc).__name__


class FqmError(click.ClickException):
    """An expected failure, already masked, shown as ``Error: <message>``."""

    def __init__(self, message: str) -> None:
        super().__init__(mask_url(message))


class InternalError(click.ClickException):
    """A bug: one line, the way to get the traceback, exit 70."""

    exit_code = EXIT_INTERNAL

    def __init__(self, exc: BaseException) -> None:
        super().__init__(
            f"internal error: {type(exc).__name__}: {mask_url(first_line(exc))} "
            "(this is a bug in fqm: rerun with --debug for the traceback and report it)"
        )


def translate(exc: Exception) -> click.ClickException:
    """The ClickException to show for ``exc``, with every URL secret masked."""
    if isinstance(exc, click.ClickException):
        exc.message = mask_url(exc.message)
        return exc
    if is_expected(exc):
        message = str(exc).strip() if isinstance(exc, tuple(_expected_types())) else ""
        return FqmError(message or first_line(exc))
    return InternalError(exc)
