"""One HTTP port for operators: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

A small ``ThreadingHTTPServer`` on its own daemon thread, so that a slow scrape never holds
up a probe. Each request takes one fresh snapshot; nothing here touches the pipeline.

Example:
    >>> server = ObservabilityServer(metrics, service.snapshot, port=0)  # doctest: +SKIP
    >>> server.start(); server.url  # doctest: +SKIP
    'http://127.0.0.1:40123'
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import choose_encoder, gzip_accepted

from monitor.service.health import Check, HealthReport, HealthSettings, liveness, readiness
from monitor.service.metrics import ServiceMetrics
from monitor.service.snapshots import ServiceSnapshot
from pipelines.urls import mask_url

log = logging.getLogger(__name__)

#: The port ``fqm run`` serves on unless told otherwise.
DEFAULT_PORT = 9470


class ObservabilityServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port``.

    Args:
        metrics: the service's metrics (its registry is what ``/metrics`` exposes).
        snapshot: the service's state now (for the probes).
        host: the address to bind; ``0.0.0.0`` in a container, so Prometheus can reach it.
        port: the port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        settings: the probes' thresholds.

    Raises (from :meth:`start`):
        OSError: the port is taken or the address cannot be bound.
    """

    def __init__(
        self,
        metrics: ServiceMetrics,
        snapshot: Callable[[], ServiceSnapshot],
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        settings: HealthSettings | None = None,
    ) -> None:
        self.metrics = metrics
        self.snapshot = snapshot
        self.host = host
        self.settings = settings or HealthSettings()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the one picked when 0 was asked, once started)."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve on a daemon thread; returns once the port is bound."""
        if self._server is not None:
            raise RuntimeError("the observability server is already started")
        handler = type("Handler", (_Handler,), {"owner": self})
        server_cls = ThreadingHTTPServer
        if ":" in self.host:
            server_cls = type(
                "Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}
            )
        self._server = server_cls((self.host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fqm-observability", daemon=True
        )
        self._thread.start()
        log.info("metrics and health on %s (/metrics, /healthz, /readyz)", self.url)

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> ObservabilityServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe(self, kind: str) -> HealthReport:
        """The ``live`` or ``ready`` report now; a failing snapshot fails the probe."""
        try:
            snap = self.snapshot()
        except Exception as exc:
            log.exception("health: the service snapshot failed")
            reason = mask_url(f"snapshot failed: {type(exc).__name__}: {exc}")
            return HealthReport(kind, (Check("snapshot", False, reason),))
        return liveness(snap, self.settings) if kind == "live" else readiness(snap)


class _Handler(BaseHTTPRequestHandler):
    owner: ObservabilityServer
    server_version = "fqm"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path in ("/healthz", "/livez"):
            self._report(self.owner.probe("live"))
        elif path == "/readyz":
            self._report(self.owner.probe("ready"))
        else:
            body = json.dumps({"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})
            self._send(404, "application/json", body.encode() + b"\n")

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(self.owner.metrics.registry)
        headers = {}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body, headers = gzip.compress(body), {"Content-Encoding": "gzip"}
        self._send(200, content_type, body, headers)

    def _report(self, report: HealthReport) -> None:
        self._send(report.http_status, "application/json", report.to_json())

    def _send(self, code: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)
