"""A real RTSP server on 127.0.0.1 for tests, in a subprocess so it can die and come back.

GstRtspServer serves an H.264 MP4 without re-encoding; every client gets the file from its
start (``franck.mp4`` lasts 160 s, longer than any test). ``stop`` kills the process (an
outage), ``start`` brings it back on the same port, ``pause`` / ``resume`` send SIGSTOP /
SIGCONT: the TCP connection stays open but nothing flows, the stall cameras are known for.

Run by hand: ``python -m tests.support.rtsp_server FILE --port 8554``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: Seconds the server process gets to print that it listens.
READY_TIMEOUT_S = 20.0
MOUNT = "/live"
_READY = "ready"


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies (a pytest-timeout kill, say)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable() -> str | None:
    """Why this server cannot run here (``None`` when it can): it needs GStreamer,
    PyGObject and the GstRtspServer introspection data (gir1.2-gst-rtsp-server-1.0)."""
    try:
        from pipelines.gstreamer import load_gst

        load_gst()
        import gi

        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer  # noqa: F401
    except (ImportError, ValueError) as exc:
        return f"the test RTSP server needs GstRtspServer (GStreamer, PyGObject): {exc}"
    return None


class RtspServer:
    """Controls one server subprocess serving ``path`` at ``rtsp://127.0.0.1:<port>/live``."""

    def __init__(self, path: str | Path, port: int | None = None) -> None:
        self.path = Path(path)
        self.port = port or free_port()
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self._proc is not None:
            raise RuntimeError("server already running")
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.rtsp_server",
                str(self.path),
                "--port",
                str(self.port),
            ],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self._proc.stdout is not None
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line.strip() == _READY:
                return
            if not line and self._proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"RTSP server on port {self.port} did not start")

    def stop(self) -> None:
        """Kill the server (SIGKILL after SIGCONT, so a paused one dies too)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):  # it may have died already
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, no data flows."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(path: Path, port: int) -> None:
    """Serve ``path`` until killed (runs in the subprocess)."""
    from pipelines.gstreamer import load_gst

    load_gst()
    import gi

    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, GstRtspServer

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{path}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)  # each client gets its own pipeline, from the file's start
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print(_READY, flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="an MP4 with H.264 video")
    parser.add_argument("--port", type=int, default=8554)
    args = parser.parse_args()
    serve(args.file, args.port)
