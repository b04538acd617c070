"""Liveness and readiness from snapshots, and the HTTP server that serves them with /metrics.

The server is the real one on an ephemeral loopback port, asked with urllib; the snapshot it
serves is swapped between requests to show each request reads the service's state afresh.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.service.endpoints import ObservabilityServer
from monitor.service.health import HealthSettings, liveness, readiness
from monitor.service.metrics import ServiceMetrics
from monitor.service.snapshots import (
    EngineSnapshot,
    ServiceSnapshot,
    SinkSnapshot,
    StreamSnapshot,
)

LOBBY = StreamSnapshot("lobby", "up", "up: 640x480", frames=100)
GATE = StreamSnapshot("gate", "up", "up: 1920x1080", frames=80)
ENGINE = EngineSnapshot(alive=True, queue_depth=2, queue_limit=64)
KAFKA = SinkSnapshot("kafka", events=10, published=10, delivered=10)
HEALTHY = ServiceSnapshot((LOBBY, GATE), ENGINE, KAFKA, heartbeat_age_s=0.2)

GATE_DOWN = replace(
    GATE, state="reconnecting", reason="reconnecting (attempt 3): connection refused"
)
SPOOLING = replace(KAFKA, spooling=True, spool_records=120, connected=False, delivery_lag_s=42)
TROUBLED = replace(HEALTHY, streams=(LOBBY, GATE_DOWN), sink=SPOOLING)


def checks(report) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.ok, c.reason) for c in report.checks}


def test_healthy_service_is_live_and_ready() -> None:
    for report, status in ((liveness(HEALTHY), "ok"), (readiness(HEALTHY), "ready")):
        assert report.ok
        assert report.status == status
        assert report.http_status == 200
    assert set(checks(readiness(HEALTHY))) == {"stream lobby", "stream gate", "engine", "sink"}


def test_down_stream_and_spooling_sink_make_it_unready_but_live() -> None:
    ready = readiness(TROUBLED)
    assert (ready.ok, ready.status, ready.http_status) == (False, "unready", 503)
    c = checks(ready)
    assert c["stream lobby"][0]
    assert c["stream gate"] == (False, "reconnecting (attempt 3): connection refused")
    assert c["sink"][0] is False
    assert "spooling 120 records" in c["sink"][1]
    assert "broker unreachable" in c["sink"][1]
    # a camera or broker outage is not fixed by a restart: liveness stays ok
    assert liveness(TROUBLED).ok


def test_what_fails_liveness() -> None:
    settings = HealthSettings(heartbeat_timeout_s=10)
    stuck = replace(HEALTHY, heartbeat_age_s=11.5)
    assert checks(liveness(stuck, settings))["service loop"] == (
        False,
        "no heartbeat for 11.5 s (limit 10 s)",
    )
    dead_engine = replace(HEALTHY, engine=replace(ENGINE, alive=False))
    assert checks(liveness(dead_engine))["engine"] == (False, "the batcher thread died")
    failed_sink = replace(HEALTHY, sink=replace(KAFKA, failure="a delivery callback raised"))
    assert not checks(liveness(failed_sink))["sink"][0]
    closed_sink = replace(HEALTHY, sink=replace(KAFKA, closed=True))
    assert not checks(liveness(closed_sink))["sink"][0]
    crashed = replace(HEALTHY, streams=(LOBBY, replace(GATE, worker="crashed")))
    assert checks(liveness(crashed))["stream gate"] == (
        False,
        "worker thread died without reporting",
    )
    for snap in (stuck, dead_engine, failed_sink, closed_sink, crashed):
        assert liveness(snap, settings).http_status == 503


def test_a_failed_stream_is_unready_not_unlive() -> None:
    failed = replace(GATE, state="down", reason="down: gave up after 10 attempts", worker="failed")
    snap = replace(HEALTHY, streams=(LOBBY, failed))
    assert checks(readiness(snap))["stream gate"] == (False, "down: gave up after 10 attempts")
    assert liveness(snap).ok


def test_a_file_read_to_its_end_stays_ready() -> None:
    ended = replace(LOBBY, state="down", reason="end of stream", live=False, worker="ended")
    assert checks(readiness(replace(HEALTHY, streams=(ended,))))["stream lobby"] == (
        True,
        "ended: end of stream",
    )


def test_shutdown_is_unready_and_still_live() -> None:
    closing = replace(
        HEALTHY,
        stopping=True,
        heartbeat_age_s=120.0,
        engine=replace(ENGINE, alive=False, closing=True),
        sink=replace(KAFKA, closed=True),
    )
    assert liveness(closing).ok
    assert checks(readiness(closing))["service"] == (False, "shutting down")


def test_not_started_yet_is_live_but_unready() -> None:
    starting = ServiceSnapshot((replace(LOBBY, state="connecting", reason="connecting"),))
    assert liveness(starting).ok
    c = checks(readiness(starting))
    assert c["engine"] == (False, "not opened yet")
    assert c["sink"] == (False, "not opened yet")
    assert not readiness(ServiceSnapshot()).ok  # no streams at all


# -- the server ----------------------------------------------------------------------------


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def served():
    current = [HEALTHY]
    metrics = ServiceMetrics(lambda: current[0])
    server = ObservabilityServer(metrics, lambda: current[0], port=0)
    server.start()
    try:
        yield server, current, metrics
    finally:
        server.close()


def test_server_answers_probes_over_http(served) -> None:
    server, current, _ = served
    assert server.port != 0
    code, headers, body = get(server.url + "/healthz")
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["status"] == "ok"
    assert get(server.url + "/readyz")[0] == 200

    current[0] = TROUBLED
    code, _, body = get(server.url + "/readyz")
    assert code == 503
    report = json.loads(body)
    assert report["status"] == "unready"
    failing = {c["name"]: c["reason"] for c in report["checks"] if not c["ok"]}
    assert set(failing) == {"stream gate", "sink"}
    assert "connection refused" in failing["stream gate"]
    assert "spooling 120 records" in failing["sink"]
    assert get(server.url + "/healthz")[0] == 200  # live all along

    current[0] = HEALTHY
    assert get(server.url + "/readyz")[0] == 200
    assert get(server.url + "/nope")[0] == 404


def test_server_exposes_metrics_on_the_same_port(served) -> None:
    server, current, metrics = served
    metrics.stage("lobby", "faces", 0.25)
    current[0] = TROUBLED
    code, headers, body = get(server.url + "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("fqm_stream_up", (("stream", "gate"),))] == 0
    assert samples[("fqm_stream_frames_total", (("stream", "lobby"),))] == LOBBY.frames
    assert samples[("fqm_sink_spool_records", (("sink", "kafka"),))] == 120
    assert samples[("fqm_stage_seconds_count", (("stage", "faces"),))] == 1

    code, headers, body = get(server.url + "/metrics", {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert b"fqm_sink_spool_records" in gzip.decompress(body)
    code, headers, body = get(
        server.url + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_a_failing_snapshot_fails_the_probe_with_a_masked_reason() -> None:
    def broken() -> ServiceSnapshot:
        raise RuntimeError("lost rtsp://admin:hunter2@cam/1")

    with ObservabilityServer(ServiceMetrics(broken), broken, port=0) as server:
        code, _, body = get(server.url + "/healthz")
    assert code == 503
    report = json.loads(body)
    assert report["checks"][0]["name"] == "snapshot"
    assert "lost rtsp://admin:***@cam/1" in report["checks"][0]["reason"]
    assert b"hunter2" not in body


def test_a_taken_port_is_an_error_and_close_releases_it(served) -> None:
    server, _, metrics = served
    clash = ObservabilityServer(metrics, ServiceSnapshot, port=server.port)
    with pytest.raises(OSError, match="in use"):
        clash.start()
    port = server.port
    server.close()
    server.close()  # twice is fine
    again = ObservabilityServer(metrics, ServiceSnapshot, port=port)
    again.start()
    again.close()
