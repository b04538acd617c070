"""``fqm bench sink``: the report's structure and invariants (never its timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.app import cli

SINK_KEYS = {
    "sink",
    "events",
    "records",
    "bytes",
    "seconds",
    "cpu_seconds",
    "events_per_s",
    "records_per_s",
    "mb_per_s",
    "cpu_ms_per_1000_events",
    "core_percent_at_720p30",
    "meets_goals",
    "stats",
}


def _report(args: list[str]) -> dict:
    result = CliRunner().invoke(cli, ["bench", "sink", "--events", "2000", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{") :])


@pytest.mark.kafka
def test_report_for_both_sinks(kafka_bootstrap: str, tmp_path: Path) -> None:
    doc = _report(["--bootstrap", kafka_bootstrap, "--out", str(tmp_path / "out")])
    assert doc["mix"]["events"] == 2000
    assert doc["records"] > 2000  # crops ride along as records of their own
    assert doc["goals"]["kafka_events_per_s_min"] == 5000
    assert [s["sink"] for s in doc["sinks"]] == ["jsonl", "kafka"]
    for s in doc["sinks"]:
        assert set(s) == SINK_KEYS
        assert (s["events"], s["records"], s["bytes"]) == (2000, doc["records"], doc["bytes"])
        assert s["events_per_s"] > 0
        assert s["cpu_ms_per_1000_events"] >= 0
        assert set(s["meets_goals"]) == {"events_per_s", "core_percent_at_720p30"}
    jsonl, kafka = doc["sinks"]
    crops = doc["records"] - 2000
    assert jsonl["stats"]["written"] == 2000
    assert jsonl["stats"]["crops"] == crops
    assert jsonl["stats"]["failed"] == {}
    assert jsonl["meets_goals"]["events_per_s"] is None
    assert kafka["stats"]["delivered"] == doc["records"]
    assert (kafka["stats"]["spooled"], kafka["stats"]["failed"]) == (0, {})
    assert len(list((tmp_path / "out").rglob("*.jpg"))) == crops


def test_table_without_a_broker() -> None:
    result = CliRunner().invoke(cli, ["bench", "sink", "--events", "500"])
    assert result.exit_code == 0, result.output
    assert "jsonl" in result.output
    assert "kafka: not measured" in result.output
