"""The camera fleet on Kafka (issue 13): records, ``fqm cameras``, and ``FleetMember`` in
a real consumer group on the session's real broker (tests/conftest.py).

The multi-process test (three ``fqm run --fleet`` processes, kill -9) is in
tests/test_fleet_processes.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from monitor.cli.app import cli
from monitor.config import ConfigError
from monitor.fleet import (
    FleetChanges,
    FleetMember,
    camera_from_record,
    check_camera,
    encode_camera,
    partition_of,
    put_camera,
    read_fleet,
)
from monitor.fleet.member import REASON_CHANGED, REASON_DISABLED, REASON_REMOVED
from monitor.kafka_bootstrap import parse_bootstrap

SECRET = "s3cr3t-Pa55"

# ---- records ------------------------------------------------------------------------------


def test_record_keeps_references_and_expands_on_the_consuming_side(tmp_path) -> None:
    """The published value holds ``${VAR}`` as written; the consumer expands it from its
    own environment; a variable missing there is named, and no value is ever shown."""
    source = "rtsp://viewer:${CAM_PW}@10.0.0.7:${CAM_PORT:-554}/s1"
    camera = check_camera("door-1", {"source": source, "analyse_fps": 5}, tmp_path)
    value = encode_camera(camera)
    assert b"${CAM_PW}" in value
    assert SECRET.encode() not in value
    assert json.loads(value) == {"source": source, "analyse_fps": 5.0}  # defaults left out

    here = camera_from_record("door-1", value, {"CAM_PW": SECRET})
    assert here.source == f"rtsp://viewer:{SECRET}@10.0.0.7:554/s1"
    assert here.analyse_fps == 5.0
    assert SECRET not in repr(here)

    with pytest.raises(ConfigError) as missing:
        camera_from_record("door-1", value, {})
    assert "CAM_PW is not set" in str(missing.value)
    assert "cameras.door-1.source" in str(missing.value)


def test_check_camera_refuses_bad_ids_fields_and_references(tmp_path) -> None:
    for cid, data, words in [
        ("Door", {"source": "a.mp4"}, "camera id"),
        ("door", {"source": "rtsp://h/${"}, "write $${"),
        ("door", {"source": "a.mp4", "analyse_fps": -1}, "cameras.door.analyse_fps"),
        ("door", {"source": "a.mp4", "sorce": "x"}, "cameras.door.sorce"),
    ]:
        with pytest.raises(ConfigError) as err:
            check_camera(cid, data, tmp_path)
        assert words in str(err.value), err.value
    # A relative file is made absolute where it is added; a ${VAR} path is left alone.
    assert check_camera("f", {"source": "a.mp4"}, tmp_path).source == str(tmp_path / "a.mp4")
    assert check_camera("f", {"source": "${D}/a.mp4"}, tmp_path).source == "${D}/a.mp4"


def test_bad_records_are_config_errors() -> None:
    for value in (b"{", b"[1]", b'{"source": 3}'):
        with pytest.raises(ConfigError):
            camera_from_record("cam", value, {})


# ---- fqm cameras --------------------------------------------------------------------------


def _fqm(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result


@pytest.mark.kafka
def test_cameras_add_list_remove(kafka_bootstrap: str, kafka_admin: KafkaAdminClient) -> None:
    """``add`` creates a compacted topic and writes the unexpanded config at the partition
    its key hashes to; ``list`` reads the latest values back (masked); ``remove`` writes a
    tombstone and the camera is gone from the list."""
    topic = f"fqm-test-fleet-{uuid.uuid4().hex[:8]}"
    base = ["--topic", topic, "--kafka-bootstrap", kafka_bootstrap]
    add = _fqm(
        "cameras", "add", "lobby", "rtsp://viewer:${LOBBY_PW}@10.0.0.5/s1", *base,
        "--analyse-fps", "4", "--partitions", "5",
    )  # fmt: skip
    assert add.exit_code == 0, add.output
    assert f"created {topic} with 5 partitions" in add.output
    assert _fqm("cameras", "add", "door", "/srv/door.mp4", *base, "--disabled").exit_code == 0
    again = _fqm("cameras", "add", "lobby", "rtsp://viewer:${LOBBY_PW}@10.0.0.6/s1", *base)
    assert again.exit_code == 0
    assert "created" not in again.output

    configs = kafka_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    assert configs["topic"][topic]["cleanup.policy"]["value"] == "compact", configs

    bootstrap = parse_bootstrap(kafka_bootstrap)
    partitions, records = read_fleet(bootstrap, topic)
    assert partitions == 5
    assert sorted(records) == ["door", "lobby"]
    assert records["lobby"].partition == partition_of("lobby", 5)
    assert json.loads(records["lobby"].value) == {"source": "rtsp://viewer:${LOBBY_PW}@10.0.0.6/s1"}

    listed = _fqm("cameras", "list", *base, "--json")
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.output)
    rows = {row["id"]: row for row in doc["cameras"]}
    assert rows["lobby"]["source"] == "rtsp://viewer:***@10.0.0.6/s1"
    assert rows["door"]["enabled"] is False

    removed = _fqm("cameras", "remove", "door", *base)
    assert removed.exit_code == 0
    assert "not in the fleet" not in removed.output
    assert sorted(read_fleet(bootstrap, topic)[1]) == ["lobby"]
    table = _fqm("cameras", "list", *base)
    assert "1 cameras on 5 partitions" in table.output
    assert "lobby" in table.output

    missing = _fqm(
        "cameras", "list", "--topic", f"{topic}-nope", "--kafka-bootstrap", kafka_bootstrap
    )
    assert missing.exit_code == 1
    assert "no fleet topic" in missing.output
    kafka_admin.delete_topics([topic])


# ---- FleetMember in a real group ----------------------------------------------------------


class Tracker:
    """What the members' changes say each member runs, checked for double runs at every
    step (one thread polls both members, as each process's loop polls its own)."""

    def __init__(self, members: dict[str, FleetMember]) -> None:
        self.members = members
        self.running: dict[str, dict[str, str]] = {name: {} for name in members}
        self.stops: list[tuple[str, str, str]] = []

    def step(self) -> None:
        for name, member in self.members.items():
            changes: FleetChanges = member.poll(0.1)
            for cid, reason in changes.stop:
                assert cid in self.running[name], (name, cid)
                del self.running[name][cid]
                self.stops.append((name, cid, reason))
            for cid, camera in changes.start:
                assert cid not in self.running[name]
                self.running[name][cid] = camera.source
            owners: dict[str, list[str]] = {}
            for n, cams in self.running.items():
                for cid in cams:
                    owners.setdefault(cid, []).append(n)
            twice = {cid: ns for cid, ns in owners.items() if len(ns) > 1}
            assert not twice, f"cameras running twice: {twice}"

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s: {self.running}"
            self.step()

    def all(self) -> dict[str, str]:
        return {cid: n for n, cams in self.running.items() for cid in cams}


@pytest.mark.kafka
@pytest.mark.timeout(300)
def test_members_share_the_fleet_by_partition(kafka_bootstrap: str, kafka_admin) -> None:
    """Two members of one group: the first runs every camera; when the second joins, the
    cameras of the partitions that move are stopped on the first ("handed over") and then
    started on the second, never on both; each runs exactly the cameras of its partitions.
    An update restarts the camera where it runs, ``enabled: false`` and a tombstone stop it,
    and a closed member's cameras go to the other."""
    topic = f"fqm-test-fleet-{uuid.uuid4().hex[:8]}"
    group = f"fqm-test-{uuid.uuid4().hex[:8]}"
    bootstrap = parse_bootstrap(kafka_bootstrap)
    runner = CliRunner()
    ids = [f"cam-{i}" for i in range(8)]
    for cid in ids:
        result = runner.invoke(
            cli,
            ["cameras", "add", cid, f"rtsp://10.0.0.1/{cid}", "--topic", topic,
             "--kafka-bootstrap", kafka_bootstrap, "--partitions", "4"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    a = FleetMember(bootstrap, topic, group, client_id="member-a", session_timeout_s=6)
    b = None
    try:
        t = Tracker({"a": a})
        t.wait("cameras on a", lambda: sorted(t.all()) == ids)
        assert a.partitions == (0, 1, 2, 3)

        b = FleetMember(bootstrap, topic, group, client_id="member-b", session_timeout_s=6)
        t.members["b"] = b
        t.running["b"] = {}
        t.wait("a split", lambda: sorted(t.all()) == ids and bool(t.running["b"]))
        assert set(a.partitions).isdisjoint(b.partitions)
        assert sorted(a.partitions + b.partitions) == [0, 1, 2, 3]
        for name, member in (("a", a), ("b", b)):
            expected = sorted(c for c in ids if partition_of(c, 4) in member.partitions)
            assert sorted(t.running[name]) == expected
            assert member.cameras == tuple(expected)
        moved = {cid for n, cid, _ in t.stops if n == "a"}
        assert moved == set(t.running["b"])
        assert all(r.startswith("handed over: partition") for _, _, r in t.stops)

        # Update, disable, remove: the owner restarts or stops the camera.
        owner = t.all()["cam-1"]
        put_camera(bootstrap, topic, "cam-1", b'{"source": "rtsp://10.0.0.2/new"}')
        t.wait("the update", lambda: t.running[owner].get("cam-1") == "rtsp://10.0.0.2/new")
        assert (owner, "cam-1", REASON_CHANGED) in t.stops
        put_camera(bootstrap, topic, "cam-2", b'{"source": "rtsp://h/x", "enabled": false}')
        t.wait("the disable", lambda: "cam-2" not in t.all())
        assert any(s[1:] == ("cam-2", REASON_DISABLED) for s in t.stops)
        put_camera(bootstrap, topic, "cam-3", None)
        t.wait("the removal", lambda: "cam-3" not in t.all())
        assert any(s[1:] == ("cam-3", REASON_REMOVED) for s in t.stops)

        # b leaves: a takes everything back (no session timeout: b left the group).
        b.close()
        del t.members["b"]
        t.running["b"] = {}
        b = None
        left = sorted(set(ids) - {"cam-2", "cam-3"})
        t.wait("a alone", lambda: sorted(t.running["a"]) == left)
    finally:
        a.close()
        if b is not None:
            b.close()
        kafka_admin.delete_topics([topic])
