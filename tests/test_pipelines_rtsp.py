"""Live sources against a real RTSP server on 127.0.0.1: reading, outages, stalls, secrets.

The server (tests/support/rtsp_server.py) runs in a subprocess: killing it is an outage,
SIGSTOP is a stall (the TCP connection stays open and silent, as with a hung camera). It is
GStreamer's GstRtspServer, so the tests that use it are marked ``gstreamer`` (whatever the
backend they read with); PyAV tests that need no server (a refused connection) are not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from monitor.assets import asset_path
from pipelines.av_source import AvSource
from pipelines.backoff import BackoffPolicy
from pipelines.errors import SourceGaveUpError, SourceOpenError
from pipelines.events import Connecting, Down, Reconnecting, Stalled, StatusEvent, Up
from pipelines.gst_source import GstSource
from pipelines.source import Source
from pipelines.supervisor import SupervisedSource, SupervisorSettings
from tests.support.rtsp_server import RtspServer, free_port, unavailable

pytestmark = [pytest.mark.timeout(120)]
#: For tests that need the RTSP server (GstRtspServer) or the GStreamer backend.
needs_gst = pytest.mark.gstreamer

#: Generous upper bound for anything to happen on a loaded 2-core machine (never a speed check).
EVENT_WAIT_S = 30.0
FAST_BACKOFF = BackoffPolicy(initial_s=0.2, max_s=1.0, jitter=0.2)


@pytest.fixture
def server() -> Iterator[RtspServer]:
    if reason := unavailable():
        pytest.skip(reason)
    srv = RtspServer(asset_path("franck.mp4"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Watcher:
    """Consumes a supervised source in a thread; collects frames and events."""

    def __init__(self, source_factory: Callable[[], Source], settings: SupervisorSettings) -> None:
        self.events: queue.Queue[StatusEvent] = queue.Queue()
        self.seen: list[StatusEvent] = []
        self.indices: list[int] = []
        self.error: BaseException | None = None
        self.source = SupervisedSource(
            source_factory, "cam", settings=settings, events=self.events, seed=0
        )
        self._thread = threading.Thread(target=self._consume, daemon=True)

    def _consume(self) -> None:
        try:
            for frame in self.source:
                self.indices.append(frame.index)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Watcher:
        self.source.open()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.close()
        self._thread.join(10)

    def wait_for(self, kind: type[StatusEvent], timeout: float = EVENT_WAIT_S) -> StatusEvent:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(event)
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__} within {timeout} s; saw {self.seen}")

    def wait_frames(self, count: int, timeout: float = EVENT_WAIT_S) -> None:
        target = len(self.indices) + count
        deadline = time.monotonic() + timeout
        while len(self.indices) < target:
            assert time.monotonic() < deadline, f"frames stopped at {len(self.indices)}"
            time.sleep(0.05)


@needs_gst
@pytest.mark.parametrize("transport", ["tcp", "udp"])
@pytest.mark.parametrize("backend", [AvSource, GstSource])
def test_reads_rtsp(server: RtspServer, backend: type[Source], transport: str) -> None:
    with backend(server.url, rtsp_transport=transport, read_timeout_s=10) as source:
        frames = [f for _, f in zip(range(10), source, strict=False)]
    assert len(frames) == 10
    assert frames[0].image.shape == (288, 360, 3)
    assert frames[0].stream_id == f"127.0.0.1:{server.port}/live"


def _settings(**kw: object) -> SupervisorSettings:
    base: dict[str, object] = {"backoff": FAST_BACKOFF, "max_failures": None}
    return SupervisorSettings(**(base | kw))


@needs_gst
@pytest.mark.parametrize("backend", [AvSource, pytest.param(GstSource, marks=pytest.mark.slow)])
def test_outage_is_reported_and_the_stream_resumes(
    server: RtspServer, backend: type[Source]
) -> None:
    def factory() -> Source:
        return backend(server.url, "cam", read_timeout_s=3, open_timeout_s=5)

    with Watcher(factory, _settings(stall_timeout_s=4)) as w:
        w.wait_for(Up)
        w.wait_frames(10)
        server.stop()
        down = w.wait_for(Down)
        w.wait_for(Reconnecting)
        w.wait_for(Down)  # the server is gone: the next attempt fails too
        server.start()
        up = w.wait_for(Up)
        before = len(w.indices)
        w.wait_frames(10)
    kinds = [type(e) for e in w.seen]
    assert kinds[0] is Connecting
    assert kinds.index(Down) < kinds.index(Reconnecting)
    assert isinstance(down, Down)
    assert not down.final
    assert down.reason
    assert isinstance(up, Up)
    assert up.attempt >= 3
    assert (up.width, up.height) == (360, 288)
    assert w.source.stats.reconnects >= 2
    assert w.indices == sorted(set(w.indices)), "indices keep increasing across reconnects"
    assert len(w.indices) >= before + 10
    assert w.error is None


@needs_gst
def test_stall_triggers_the_watchdog(server: RtspServer) -> None:
    """SIGSTOP: no EOS, no error, no data. The watchdog (1.5 s) fires before the read timeout."""

    def factory() -> Source:
        return AvSource(server.url, "cam", read_timeout_s=6, open_timeout_s=6)

    with Watcher(factory, _settings(stall_timeout_s=1.5, open_timeout_s=8)) as w:
        w.wait_for(Up)
        w.wait_frames(5)
        server.pause()
        try:
            stalled = w.wait_for(Stalled)
        finally:
            server.resume()
        w.wait_for(Up)
        w.wait_frames(5)
    assert isinstance(stalled, Stalled)
    assert stalled.seconds >= 1.5
    assert "no frame" in stalled.reason
    assert w.error is None


SECRET = "s3cr3t-pw"


@pytest.mark.parametrize("backend", [AvSource, pytest.param(GstSource, marks=needs_gst)])
def test_credentials_never_leak(backend: type[Source], caplog: pytest.LogCaptureFixture) -> None:
    """A camera that refuses: events, logs and the final error show the URL, never the password."""
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/live"
    with pytest.raises(SourceOpenError) as info:
        backend(url, open_timeout_s=5).open()
    assert SECRET not in str(info.value)
    assert "admin:***@" in str(info.value)

    caplog.set_level(logging.DEBUG, logger="pipelines")
    settings = _settings(max_failures=2, backoff=BackoffPolicy(initial_s=0.05, max_s=0.1))
    with Watcher(lambda: backend(url, "cam", open_timeout_s=5), settings) as w:
        final = w.wait_for(Down)
        while not (isinstance(final, Down) and final.final):
            final = w.wait_for(Down)
        w._thread.join(10)
    assert isinstance(w.error, SourceGaveUpError)
    assert "2 failed attempts" in str(w.error)
    texts = [repr(e) for e in w.seen] + [str(w.error), caplog.text]
    assert all(SECRET not in t for t in texts)
    connecting = next(e for e in w.seen if isinstance(e, Connecting))
    assert connecting.location == f"rtsp://admin:***@127.0.0.1:{url.split(':')[-1]}"


def test_a_raising_callback_reaches_the_consumer() -> None:
    """Exceptions in the event callback are never swallowed."""

    def boom(event: StatusEvent) -> None:
        raise RuntimeError(f"callback failed on {type(event).__name__}")

    url = f"rtsp://127.0.0.1:{free_port()}/live"
    source = SupervisedSource(lambda: AvSource(url), "cam", on_event=boom)
    with source, pytest.raises(RuntimeError, match="callback failed on Connecting"):
        next(iter(source))
