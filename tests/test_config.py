"""Fleet files (monitor.config): the example validates, every error names its field and
YAML line, secrets from the environment never show, reload diffs, and a camera's JSON.

The CLI cases run the real ``fqm validate-config`` (click's runner through the root group's
error boundary, and once the installed script).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from monitor.cli.app import cli
from monitor.config import (
    CameraConfig,
    ConfigError,
    FleetConfig,
    KafkaSinkConfig,
    camera_from_json,
    changed_settings,
    diff_cameras,
    fleet_plan,
    load_fleet,
    parse_fleet,
)
from monitor.config.model import BatchConfig, EngineConfig, JsonlSinkConfig, MetricsConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "cameras.example.yaml"
DOCS = ROOT / "docs" / "config.md"
FQM = str(Path(sys.executable).with_name("fqm"))

CAM_PW = "Cam-pw-7731"
DOOR_PW = "Door-pw-5519"
KAFKA_PW = "Kafka,pw@9052"  # a ',' and an '@': only the password field can carry these
VMS_TOKEN = "vms-token-4418"
EXAMPLE_ENV = {
    "LOBBY_CAM_PASSWORD": CAM_PW,
    "DOOR_CAM_PASSWORD": DOOR_PW,
    "FQM_KAFKA_PASSWORD": KAFKA_PW,
    "VMS_TOKEN": VMS_TOKEN,
}
SECRETS = (CAM_PW, DOOR_PW, KAFKA_PW, VMS_TOKEN)


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line of ``text`` containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def problems_of(text: str, env: dict[str, str] | None = None) -> dict[str, tuple[int | None, str]]:
    """field -> (line, message) of the ConfigError that ``text`` must raise."""
    with pytest.raises(ConfigError) as info:
        parse_fleet(text, "c.yaml", env=env or {})
    return {p.field: (p.line, p.message) for p in info.value.problems}


def assert_no_secret(text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in text


# --- the example -----------------------------------------------------------------------------


def test_example_file_validates_and_plans_the_enabled_cameras() -> None:
    fleet = load_fleet(EXAMPLE, env=EXAMPLE_ENV)
    assert list(fleet.cameras) == [
        "lobby",
        "entrance-north",
        "entrance-south",
        "parking",
        "reception-desk",
        "lobby-replay",
    ]
    assert not fleet.cameras["lobby-replay"].enabled
    # the x-door-camera template merged in, and overridden where the camera says so
    assert fleet.cameras["entrance-north"].rescore_interval_s == 0.5
    assert fleet.cameras["entrance-south"].rescore_interval_s == 1.0
    assert fleet.cameras["entrance-south"].min_face_size == 40
    # a relative file source is relative to the file's folder
    assert fleet.cameras["lobby-replay"].source == str(
        EXAMPLE.parent.absolute() / "recordings/lobby-2026-11-30.mp4"
    )
    assert CAM_PW in fleet.cameras["lobby"].source  # the service gets the real URL

    plan = fleet_plan(fleet)
    assert [s.stream_id for s in plan.streams] == list(fleet.cameras)[:5]
    assert all(s.live for s in plan.streams)
    north = plan.streams[1]
    policy = north.policy_config()
    assert (policy.min_face_size, policy.rescore_interval, policy.interval_unit) == (
        40,
        0.5,
        "seconds",
    )
    assert plan.streams[0].policy_config().min_face_size == type(policy)().min_face_size
    assert_no_secret(repr(plan.streams))

    kafka = plan.process.kafka
    assert kafka is not None
    assert kafka.password == KAFKA_PW
    assert kafka.username == "fqm-site-a"
    assert kafka.security_protocol == "SASL_SSL"
    assert len(kafka.servers) == 2
    assert plan.process.topics.faces == "site-a.faces"
    assert (plan.process.batch.max_batch, plan.process.batch.max_queue) == (16, 128)


def test_process_settings_build_the_real_service_config() -> None:
    from monitor.service import ServiceConfig

    plan = fleet_plan(load_fleet(EXAMPLE, env=EXAMPLE_ENV))
    kwargs = plan.process.service_config_kwargs()
    config = ServiceConfig(sources=tuple(s.location for s in plan.streams), **kwargs)
    assert config.kafka is plan.process.kafka
    assert config.replication == 3
    assert config.batch.max_wait_ms == 20.0
    assert config.device == "cuda:0"
    assert config.torch_threads == 1
    # the per-stream fields are StreamPlan's
    per_stream = {"sources": "location", "max_frames": "max_frames", "analyse_fps": "analyse_fps"}
    assert set(per_stream.values()) <= {f.name for f in fields(plan.streams[0])}
    # the plan's streams go in whole; the producer name is the command's (--producer wins)
    given_apart = {"streams", "producer"}
    missing = {f.name for f in fields(ServiceConfig)} - set(kwargs) - set(per_stream) - given_apart
    assert missing == set()
    assert ServiceConfig(streams=plan.streams, producer=plan.process.producer, **kwargs)


def test_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras: {lobby: {source: 'rtsp://10.0.0.5/stream1'}}\n")
    fleet = load_fleet(path, env={})
    assert fleet.version == 1
    assert fleet.out == Path("fqm-out")
    assert isinstance(fleet.sink, JsonlSinkConfig)
    assert (fleet.model.backend, fleet.model.mode, fleet.model.device) == ("torch", "center", "cpu")
    assert fleet.cameras["lobby"].is_live
    assert fleet.cameras["lobby"].live == "auto"
    assert fleet_plan(fleet).process.kafka is None


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site" / "cameras.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml_text("""
        out: events
        model: {weights: models/dslfiqa}
        cameras:
          a: {source: clips/a.mp4}
          b: {source: /abs/b.mp4}
          c: {source: "file:///abs/c.mp4"}
        """)
    )
    fleet = load_fleet(path, env={})
    base = path.parent.absolute()
    assert fleet.out == base / "events"
    assert fleet.model.weights == base / "models/dslfiqa"
    assert fleet.cameras["a"].source == str(base / "clips/a.mp4")
    assert fleet.cameras["b"].source == "/abs/b.mp4"
    assert fleet.cameras["c"].source == "file:///abs/c.mp4"
    assert not fleet.cameras["a"].is_live


# --- errors: field and line ------------------------------------------------------------------


def test_every_problem_is_listed_with_its_field_and_line() -> None:
    text = yaml_text("""
        version: 1
        model:
          backend: tensorflow
          devise: cpu
        batch: {max_batch: 16, max_queue: 8}
        cameras:
          lobby:
            sourc: rtsp://10.0.0.5/stream1
          door:
            source: door.mp4
            max_frames: ten
            live: maybe
          Front Door:
            source: front.mp4
        """)
    found = problems_of(text)
    assert found["model.backend"][0] == line_of(text, "tensorflow")
    assert "'torch'" in found["model.backend"][1]
    assert found["model.devise"] == (
        line_of(text, "devise"),
        "extra field not permitted (did you mean 'device'?)",
    )
    assert found["batch"][0] == line_of(text, "batch:")
    assert "max_queue (8) must be >= max_batch (16)" in found["batch"][1]
    assert found["cameras.lobby.sourc"][0] == line_of(text, "sourc:")
    assert "did you mean 'source'" in found["cameras.lobby.sourc"][1]
    # a missing field points at its mapping's line
    assert found["cameras.lobby.source"] == (line_of(text, "lobby:"), "required field missing")
    assert found["cameras.door.max_frames"][0] == line_of(text, "max_frames")
    assert found["cameras.door.live"] == (
        line_of(text, "maybe"),
        "live must be auto, true or false",
    )
    assert found["cameras.Front Door"][0] == line_of(text, "Front Door")
    assert "a-z 0-9 . _ -" in found["cameras.Front Door"][1]
    assert len(found) == 8


def test_error_message_is_file_line_field_message_sorted_by_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    text = yaml_text("""
        cameras:
          lobby:
            source: rtsp://10.0.0.5/stream1
            sourc: rtsp://10.0.0.6/stream1
        shutdown_deadline_s: -1
        """)
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_fleet(path, env={})
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 2 problems in the config"
    assert lines[1].startswith(f"{path}:{line_of(text, 'sourc:')}: cameras.lobby.sourc: extra")
    assert lines[2].startswith(f"{path}:{line_of(text, 'shutdown')}: shutdown_deadline_s: ")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("123", "is a number in YAML: quote it"),
        ("1.5", "is a number in YAML: quote it"),
        ("no", "is a boolean in YAML: quote it"),
    ],
)
def test_camera_ids_that_yaml_reads_as_numbers_or_booleans(key: str, message: str) -> None:
    text = f"cameras:\n  {key}:\n    source: a.mp4\n"
    ((_field, (line, text_)),) = problems_of(text).items()
    assert line == 2
    assert message in text_


def test_duplicate_camera_id_is_an_error_not_a_silent_overwrite() -> None:
    text = yaml_text("""
        cameras:
          lobby:
            source: rtsp://10.0.0.5/stream1
          door:
            source: door.mp4
          lobby:
            source: rtsp://10.0.0.9/stream1
        """)
    found = problems_of(text)
    line, message = found["cameras.lobby"]
    assert line == line_of(text, "lobby:", nth=2)
    assert f"first on line {line_of(text, 'lobby:')}" in message


def test_duplicate_field_inside_a_camera() -> None:
    text = "cameras:\n  lobby:\n    source: a.mp4\n    max_frames: 5\n    source: b.mp4\n"
    assert problems_of(text)["cameras.lobby.source"][0] == 5


def test_merge_keys_override_without_counting_as_duplicates() -> None:
    text = yaml_text("""
        x-cam: &cam {source: base.mp4, max_frames: 10}
        cameras:
          a: {<<: *cam, max_frames: 20}
          b: {<<: *cam}
        """)
    fleet = parse_fleet(text, env={})
    assert (fleet.cameras["a"].max_frames, fleet.cameras["b"].max_frames) == (20, 10)


@pytest.mark.parametrize(
    ("text", "needle", "words"),
    [
        ("cameras:\n  lobby:\n    source: 'rtsp://x\n", None, "YAML syntax error"),
        ("version: 1\ncameras:\n  lobby: {source: a.mp4\n  door: b\n", None, "YAML syntax error"),
        ("cameras:\n\tlobby: {source: a.mp4}\n", "\t", "YAML syntax error"),
        ("cameras:\n  x: !!python/object/apply:os.system ['true']\n", "os.system", "not supported"),
        ("cameras:\n  x: {source: !!python/name:os.system ''}\n", "os.system", "constructor"),
        ("- a\n- b\n", "- a", "top level must be a mapping"),
        ("---\ncameras: {}\n---\ncameras: {}\n", "---", "single document"),
    ],
)
def test_yaml_problems_have_a_line(text: str, needle: str | None, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_fleet(text, "c.yaml", env={})
    (problem,) = info.value.problems
    assert words in problem.message
    assert problem.line is not None
    assert 1 <= problem.line <= text.count("\n") + 1
    if needle is not None:
        assert problem.line == line_of(text, needle, nth=2 if needle == "---" else 1)


def test_alias_bombs_and_self_references_are_refused() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    bomb = "x-bomb:\n" + "".join(f"  {line}\n" for line in levels) + "cameras: {a: {source: a}}\n"
    with pytest.raises(ConfigError, match="once aliases are expanded"):
        parse_fleet(bomb, env={})
    loop = "x-loop: &l [*l]\ncameras: {a: {source: a.mp4}}\n"
    assert problems_of(loop)["x-loop.0"] == (1, "an alias refers to itself")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("# only a comment\n\n", "the file is empty"),
        (b"cameras:\n  a: {source: \xff.mp4}\n", "not UTF-8"),
        ("cameras: {}\n", "at least one camera"),
        ("version: 1\n", "required: at least one camera"),
        ("version: 2\ncameras: {a: {source: a.mp4}}\n", "version 2 is not supported"),
    ],
)
def test_file_level_problems(tmp_path: Path, content: str | bytes | None, words: str) -> None:
    path = tmp_path / "fleet.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_fleet(path, env={})
    assert words in str(info.value)
    assert str(info.value).startswith(f"{path}: 1 problem in the config\n{path}")


def test_kafka_sink_problems() -> None:
    text = yaml_text("""
        sink:
          type: kafka
          bootstrap: broker-without-port
        cameras: {a: {source: a.mp4}}
        """)
    assert problems_of(text)["sink.bootstrap"][0] == line_of(text, "bootstrap")
    assert "HOST:PORT" in problems_of(text)["sink.bootstrap"][1]
    # a password with a ',' splits the list: no fragment of it is quoted
    comma = "sink: {type: kafka, bootstrap: 'SASL_SSL://u:Hunter,Two@b:9093'}\n"
    line, message = problems_of(comma + "cameras: {a: {source: a.mp4}}\n")["sink.bootstrap"]
    assert line == 1
    assert "as username and password" in message
    assert "Hunter" not in message
    assert "Two" not in message
    no_type = "sink: {bootstrap: 'b:9092'}\ncameras: {a: {source: a.mp4}}\n"
    assert problems_of(no_type)["sink"] == (1, "needs a type: jsonl or kafka")
    plaintext = "sink: {type: kafka, bootstrap: 'b:9092', username: u, password: p}\n"
    found = problems_of(plaintext + "cameras: {a: {source: a.mp4}}\n")
    assert "need a SASL protocol" in found["sink"][1]
    twice = "sink: {type: kafka, bootstrap: 'SASL_SSL://u:p@b:9093', password: q, username: u}\n"
    assert "given twice" in problems_of(twice + "cameras: {a: {source: a.mp4}}\n")["sink"][1]
    extra = "sink: {type: jsonl, bootstrap: 'b:9092'}\ncameras: {a: {source: a.mp4}}\n"
    assert (
        problems_of(extra)["sink.bootstrap"][1] == "extra field not permitted (fields here: type)"
    )


# --- environment variables and secrets -------------------------------------------------------


def test_env_expansion_forms() -> None:
    text = yaml_text("""
        producer: ${NAME:-fallback}
        out: ${EMPTY:-/data/fqm}
        metrics: {port: "${PORT}", enabled: "${ON:-false}"}
        cameras:
          a:
            source: rtsp://u:${PW}@cam/$${not_a_var}/pa$word
        """)
    env = {"PW": "s3cret", "PORT": "9200", "EMPTY": ""}
    fleet = parse_fleet(text, env=env)
    assert fleet.producer == "fallback"
    assert fleet.out == Path("/data/fqm")
    assert fleet.metrics.port == 9200
    assert fleet.metrics.enabled is False
    assert fleet.cameras["a"].source == "rtsp://u:s3cret@cam/${not_a_var}/pa$word"
    # expanded text is not expanded again
    nested = parse_fleet("cameras: {a: {source: '${X}'}}\n", env={"X": "${Y}.mp4"})
    assert nested.cameras["a"].source.endswith("${Y}.mp4")


def test_missing_variable_names_field_line_and_variable() -> None:
    text = yaml_text("""
        cameras:
          lobby:
            source: rtsp://admin:${LOBBY_PW}@10.0.0.5/stream1
            max_frames: ${FRAMES:-oops}
          door:
            source: ${DOOR
        """)
    found = problems_of(text)
    line, message = found["cameras.lobby.source"]
    assert line == line_of(text, "LOBBY_PW")
    assert "LOBBY_PW is not set" in message
    assert found["cameras.lobby.max_frames"][0] == line_of(text, "FRAMES")
    assert "$${ for a literal" in found["cameras.door.source"][1]
    assert len(found) == 3  # the empty source left by the missing variable is not reported again


def test_secrets_never_appear_in_errors_or_reprs() -> None:
    text = yaml_text("""
        model:
          device: ${GPU_TOKEN}
        sink:
          type: kafka
          bootstrap: SASL_SSL://fqm:${KAFKA_PASSWORD}@b1:9093,b2:9093
          replication: 0
        cameras:
          lobby:
            source: rtsp://admin:${CAM_PW}@10.0.0.5/stream1
            sourc: rtsp://admin:${CAM_PW}@10.0.0.6/stream1
          bad:
            source: rtsp://admin:${CAM_PW}@10.0.0.7/stream1
            live: sometimes
        """)
    env = {"CAM_PW": CAM_PW, "KAFKA_PASSWORD": KAFKA_PW.replace(",", "").replace("@", ""),
           "GPU_TOKEN": "tok-cuda-secret"}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_fleet(text, "c.yaml", env=env)
    message = str(info.value)
    assert "device '***': use cpu, cuda or cuda:N" in message  # a secret-named variable
    assert len(info.value.problems) == 4
    assert_no_secret(message, (*env.values(),))
    assert_no_secret(json.dumps(info.value.records()), (*env.values(),))

    good = text.replace("${GPU_TOKEN}", "cpu").replace("replication: 0", "replication: 1")
    good = good.replace("sourc:", "max_frames: 5 #").replace("live: sometimes", "live: true")
    fleet = parse_fleet(good, env=env)
    for shown in (repr(fleet), str(fleet), repr(fleet.cameras), repr(fleet.sink)):
        assert_no_secret(shown, (*env.values(),))
    assert fleet.sink.to_bootstrap().password == env["KAFKA_PASSWORD"]
    assert "***" in str(fleet.sink.to_bootstrap())
    # pydantic's own errors hide their input too
    with pytest.raises(ValidationError) as raw:
        CameraConfig.model_validate({"source": f"rtsp://a:{CAM_PW}@h/", "live": "sometimes"})
    assert CAM_PW not in str(raw.value)


def test_sasl_password_field_carries_any_character() -> None:
    text = yaml_text("""
        sink:
          type: kafka
          bootstrap: SASL_SSL://b1:9093
          username: fqm
          password: ${KAFKA_PW}
        cameras: {a: {source: a.mp4}}
        """)
    fleet = parse_fleet(text, env={"KAFKA_PW": KAFKA_PW})
    assert isinstance(fleet.sink, KafkaSinkConfig)
    assert fleet.sink.to_bootstrap().password == KAFKA_PW
    assert KAFKA_PW not in repr(fleet)
    assert KAFKA_PW not in fleet.model_dump_json()


def _invoke(*args: str, env: dict[str, str]):
    clean = {k: None for k in ("FQM_DEBUG", *EXAMPLE_ENV)}
    return CliRunner().invoke(cli, ["validate-config", *args], env={**clean, **env})


def test_validate_config_cli_prints_a_masked_summary() -> None:
    result = _invoke(str(EXAMPLE), env=EXAMPLE_ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{EXAMPLE}: valid; 6 cameras (5 enabled)")
    assert "rtsp://viewer:***@10.20.0.11:554" in result.stdout
    assert "token=***" in result.stdout
    assert "SASL_SSL://fqm-site-a:***@kafka-1" in result.stdout
    assert_no_secret(result.output)

    result = _invoke("--json", str(EXAMPLE), env=EXAMPLE_ENV)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"]
    assert len(report["cameras"]) == 6
    assert report["sink"]["topics"][0] == "site-a.faces"
    assert_no_secret(result.output)


def test_validate_config_cli_lists_the_problems_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    text = EXAMPLE.read_text().replace("    source: /dev/video0\n", "    sorce: /dev/video0\n")
    path.write_text(text)
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "VMS_TOKEN"}
    result = _invoke(str(path), env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: 3 problems in the config\n")
    assert f"{path}:{line_of(text, 'sorce:')}: cameras.reception-desk.sorce: extra field" in (
        result.stderr
    )
    assert "VMS_TOKEN is not set" in result.stderr
    assert_no_secret(result.output)

    result = _invoke("--json", str(path), env=env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["valid"]
    assert {p["field"] for p in report["problems"]} == {
        "cameras.parking.source",
        "cameras.reception-desk.sorce",
        "cameras.reception-desk.source",
    }
    assert_no_secret(result.output)


def test_installed_fqm_validate_config_masks_secrets_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(
        "cameras:\n  lobby:\n    source: rtsp://admin:${CAM_PW}@10.0.0.5/s1\n    enabled: maybe\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FQM_DEBUG"} | {"CAM_PW": CAM_PW}
    proc = subprocess.run(
        [FQM, "validate-config", str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{path}:4: cameras.lobby.enabled: input should be a valid boolean" in proc.stderr
    assert CAM_PW not in proc.stdout + proc.stderr


# --- reload diff -----------------------------------------------------------------------------


def fleet_of(cameras: str, sink: str = "") -> FleetConfig:
    return parse_fleet(f"{sink}cameras:\n{textwrap.indent(yaml_text(cameras), '  ')}", env={})


def test_diff_cameras_for_a_reload() -> None:
    old = fleet_of("""
        a: {source: a.mp4}
        b: {source: rtsp://10.0.0.2/s}
        c: {source: rtsp://10.0.0.3/s, rescore_interval_s: 1}
        d: {source: d.mp4, enabled: false}
        e: {source: e.mp4}
        """)
    new = fleet_of("""
        c: {source: rtsp://10.0.0.3/s, rescore_interval_s: 2}
        b: {source: rtsp://10.0.0.2/s}
        d: {source: d.mp4}
        e: {source: e.mp4, enabled: false}
        f: {source: f.mp4}
        """)
    diff = diff_cameras(old, new)
    assert diff.added == ("d", "f")  # enabling a camera starts it
    assert diff.removed == ("a", "e")  # disabling a camera stops it
    assert diff.changed == ("c",)
    assert diff.unchanged == ("b",)  # a moved entry is the same camera
    assert diff.to_stop == ("a", "e", "c")
    assert diff.to_start == ("c", "d", "f")
    assert changed_settings(old, new) == ()


def test_diff_of_equal_fleets_is_empty_and_settings_changes_are_named() -> None:
    cams = "a: {source: a.mp4}\nb: {source: 'rtsp://u:pw@h/s'}\n"
    old, same = fleet_of(cams), fleet_of(cams)
    diff = diff_cameras(old, same)
    assert diff.empty
    assert diff.unchanged == ("a", "b")
    kafka = fleet_of(cams, sink="sink: {type: kafka, bootstrap: 'b:9092'}\nproducer: p\n")
    assert changed_settings(old, kafka) == ("producer", "sink")
    assert diff_cameras(old, kafka).empty
    live = fleet_of("a: {source: a.mp4, live: true}\nb: {source: 'rtsp://u:pw@h/s'}\n")
    assert diff_cameras(old, live).changed == ("a",)


# --- one camera as JSON ----------------------------------------------------------------------


def test_each_camera_round_trips_through_json_alone() -> None:
    fleet = load_fleet(EXAMPLE, env=EXAMPLE_ENV)
    for camera_id, camera in fleet.cameras.items():
        text = camera.model_dump_json()
        back = CameraConfig.model_validate_json(text)
        assert back == camera
        assert back.is_live == camera.is_live
        assert camera_from_json(camera_id, text.encode()) == camera
    live = CameraConfig(source="a.mp4", live=True, max_frames=3)
    assert CameraConfig.model_validate_json(live.model_dump_json()).live is True


def test_camera_from_json_reports_fields_without_secrets() -> None:
    text = json.dumps({"source": f"rtsp://a:{CAM_PW}@h/s", "max_frame": 3, "live": "x"})
    with pytest.raises(ConfigError) as info:
        camera_from_json("lobby", text)
    found = {p.field: p.message for p in info.value.problems}
    assert set(found) == {"cameras.lobby.max_frame", "cameras.lobby.live"}
    assert found["cameras.lobby.max_frame"].endswith("(did you mean 'max_frames'?)")
    assert CAM_PW not in str(info.value)
    with pytest.raises(ConfigError, match=r"cameras\.lobby: "):
        camera_from_json("lobby", "{not json")


# --- the docs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        (FleetConfig, ""),
        (EngineConfig, "model."),
        (KafkaSinkConfig, "sink."),
        (BatchConfig, "batch."),
        (MetricsConfig, "metrics."),
        (CameraConfig, "cameras.ID."),
    ],
)
def test_docs_table_lists_every_field(model: type, prefix: str) -> None:
    docs = DOCS.read_text()
    missing = [name for name in model.model_fields if f"| `{prefix}{name}` |" not in docs]
    assert missing == []
