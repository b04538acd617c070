"""Native log lines of MediaPipe Tasks and LiteRT: hidden by default, shown when verbose.

MediaPipe Tasks (``libmediapipe.so``, which bundles its own LiteRT) and ``ai-edge-litert``
write INFO and absl warning lines straight to file descriptor 2 from C++, e.g.::

    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
    INFO: [environment.cc:36] Creating LiteRT environment with options
    WARNING: Logging before InitGoogle() is written to STDERR
    W0000 00:00:1796200906.276973   13493 inference_runner_litert.cc:1433] Input tensor ...

Measured with mediapipe 1.2.3 and ai-edge-litert 2.3.0: none of ``GLOG_minloglevel``,
``TF_CPP_MIN_LOG_LEVEL``, ``ABSL_MIN_LOG_LEVEL`` or ``GOOGLE_STDERRTHRESHOLD`` (set before
the process started) removes a single one of these lines, and neither library offers a
Python switch (MediaPipe's C ``MpSetLoggingCallback`` adds an absl sink but does not stop
the printing). The lines come from loading a model (the INFO lines, once per model), from
closing MediaPipe's detector (``DestroyAccelerator``), and from MediaPipe's detector the
first time in the process that a tensor it allocates is not 64-byte aligned (the ``W0000``
line, with absl's ``Logging before InitGoogle()`` banner): that is usually the first
inference and sometimes a later one, whatever the alignment of the image we pass.

So ``quiet_native_logs`` points fd 2 at a temporary file around exactly those calls in
:mod:`monitor.faces`, then writes back every captured line that is not one of these known
kinds of noise, so a native error, or anything another thread wrote meanwhile, still reaches
the terminal; ``OnceNoise`` limits the per-inference quieting to the calls before the
one-time warning. The environment variables are set as well, for builds that read them.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

#: Environment variables some builds of glog, absl and TensorFlow Lite read when they load;
#: the quiet values hide INFO and WARNING and keep ERROR.
QUIET_ENVIRONMENT = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}

#: Captured lines that are dropped; everything else captured is written back to stderr.
NOISE = re.compile(
    rb"^(INFO: .*"  # TFLite / LiteRT minimal logging
    rb"|[IW]\d{4} [\d:.]+ +\d+ [^\]]*\] .*"  # absl/glog INFO and WARNING
    rb"|WARNING: Logging before InitGoogle\(\) is written to STDERR)$"
)

_verbose = False
_lock = threading.Lock()
_depth = 0  # blocks running now, in any thread; the first swaps fd 2, the last restores it
_saved_fd = -1
_capture: BinaryIO | None = None
_set_by_us: dict[str, str] = {}
_watched: list[OnceNoise] = []


def configure_native_logs(verbose: bool) -> None:
    """Chooses, once at start-up, whether native MediaPipe/LiteRT log lines reach stderr.

    Call it before the first model is built (``FaceDetector``, ``FaceLandmarker``,
    ``FullRangeDetector``, ``FaceAligner``, ``FaceStage``); the CLI calls it with its
    ``--verbose`` flag. Without any call the default is quiet.

    Args:
        verbose: ``False`` (the default behaviour): model loading, the warm-up inference and
            closing in ``monitor.faces`` (and MediaPipe's detector calls until its one-time
            warning has gone by) run inside ``quiet_native_logs``, which drops the native
            INFO/WARNING noise (``NOISE``) and lets every other line through; and
            ``QUIET_ENVIRONMENT`` is set in ``os.environ`` where the variable is not already
            set (a value the user exported wins). ``True``: nothing is redirected or
            filtered, and variables this function set earlier are removed again, so the
            libraries print as they would on their own.

    Example:
        >>> configure_native_logs(verbose=False)
    """
    global _verbose
    with _lock:
        _verbose = verbose
        if verbose:
            for name, value in list(_set_by_us.items()):
                if os.environ.get(name) == value:
                    del os.environ[name]
                del _set_by_us[name]
            return
        for name, value in QUIET_ENVIRONMENT.items():
            if name not in os.environ:
                os.environ[name] = value
                _set_by_us[name] = value


def native_logs_verbose() -> bool:
    """Whether native log lines are shown (``configure_native_logs(True)`` was called)."""
    return _verbose


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Runs the block with fd 2 captured, then writes back the captured lines but ``NOISE``.

    Does nothing when ``configure_native_logs(True)`` was called, or when no temporary file
    can be made. Blocks may nest and may run in several threads at once: the first to start
    points fd 2 at one shared capture file, the last to end restores it and writes back what
    was kept, so no thread waits for another's block. Keep blocks short: while any runs,
    what every thread writes to stderr is held back (not lost) until the last one ends.
    """
    if _verbose or not _enter():
        yield
        return
    try:
        yield
    finally:
        _leave()


def _enter() -> bool:
    global _depth, _saved_fd, _capture
    with _lock:
        if _depth == 0:
            try:
                capture = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _leave)
            except OSError:
                return False  # no capture file: better noisy than failing to load a model
            sys.stderr.flush()  # Python's buffered text goes out before the swap
            _saved_fd = os.dup(2)
            os.dup2(capture.fileno(), 2)
            _capture = capture
        _depth += 1
        return True


def _leave() -> None:
    global _depth, _saved_fd, _capture
    with _lock:
        _depth -= 1
        if _depth or _capture is None:
            return
        sys.stderr.flush()  # Python text written in the block goes into the capture
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
        capture, _capture, _saved_fd = _capture, None, -1
        with capture:
            capture.seek(0)
            lines = capture.read().splitlines(keepends=True)
        kept = []
        for line in lines:
            if not NOISE.match(line.rstrip(b"\r\n")):
                kept.append(line)
                continue
            for once in _watched:
                if once.fragment in line:
                    once.seen = True
        data = b"".join(kept)
        while data:
            data = data[os.write(2, data) :]


class OnceNoise:
    """A native noise line printed once per process, at a call that cannot be predicted.

    ``around()`` quiets each call until the line has been dropped once (after that the
    calls run bare, at no cost), or until ``max_calls`` calls have gone by without it (so a
    library version that no longer prints it does not keep stderr captured for good).

    Args:
        fragment: bytes that only that line contains.
        max_calls: calls to quiet at most, process-wide.
    """

    def __init__(self, fragment: bytes, max_calls: int) -> None:
        self.fragment = fragment
        self.max_calls = max_calls
        self.calls = 0
        self.seen = False
        with _lock:
            _watched.append(self)

    @contextmanager
    def around(self) -> Iterator[None]:
        """Quiets the block while the line may still come (see the class docstring)."""
        if self.seen or self.calls >= self.max_calls:
            yield
            return
        self.calls += 1
        with quiet_native_logs():
            yield
