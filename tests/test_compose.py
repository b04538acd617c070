"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from monitor.cli import cli
from monitor.config import load_fleet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def parse_with_cli(argv: list[str]) -> click.Command:
    """Parse argv with the real ``fqm`` CLI, as the container's entrypoint would."""
    ctx = click.Context(cli, info_name="fqm")
    cmd = cli.get_command(ctx, argv[0])
    if cmd is None:
        raise click.UsageError(f"compose command {argv} names no fqm subcommand")
    cmd.make_context(argv[0], list(argv[1:]), parent=ctx)  # UsageError on unknown options
    return cmd


def test_services_and_healthchecks(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "fqm", "fqm-gpu"}
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert svc["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")


def test_kafka_is_single_node_kraft(compose: dict) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = dict(x.split("://") for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    # The internal listener is what the fqm service is pointed at; the external one is published.
    fqm_env = compose["services"]["fqm"]["environment"]
    assert advertised["INTERNAL"] == fqm_env["FQM_KAFKA_BOOTSTRAP"]
    published = [p.split(":")[-1] for p in compose["services"]["kafka"]["ports"]]
    assert advertised["EXTERNAL"].split(":")[-1] in published


def test_fqm_service_shape(compose: dict) -> None:
    svc = compose["services"]["fqm"]
    mounts = {v.split(":")[1] for v in svc["volumes"]}
    assert {"/var/lib/fqm/output/spool", "/var/lib/fqm/output", "/etc/fqm/cameras.yaml"} <= mounts
    for volume in (v.split(":")[0] for v in svc["volumes"]):
        if volume.startswith("./"):  # a file of the repository, mounted
            assert (ROOT / volume).is_file(), f"{volume} is mounted but not in the repository"
        else:
            assert volume in compose["volumes"], f"named volume {volume} is not declared"
    assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["fqm", "fqm-gpu"])
def test_commands_match_the_cli_and_the_health_check_asks_healthz(
    compose: dict, service: str
) -> None:
    svc = compose["services"][service]
    parse_with_cli(svc["command"])
    config_path = svc["command"][svc["command"].index("--config") + 1]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
    fleet = load_fleet(ROOT / mounted[config_path], env={})  # valid with no variables set
    check = svc["healthcheck"]["test"]
    assert check[0] == "CMD"
    url = f"http://127.0.0.1:{fleet.metrics.port}/healthz"
    assert url in " ".join(check), (url, check)
    published = [p.split(":")[-1] for p in svc["ports"]]
    assert str(fleet.metrics.port) in published
    assert fleet.metrics.host == "0.0.0.0"  # reachable from outside the container


def test_unknown_command_is_rejected() -> None:
    """The check above can fail: a command the CLI does not have is refused."""
    with pytest.raises(click.UsageError):
        parse_with_cli(["no-such-command"])
    with pytest.raises(click.UsageError):
        parse_with_cli(["doctor", "--no-such-option"])


def test_gpu_profile_uses_tensorrt_base_and_a_gpu(compose: dict) -> None:
    svc = compose["services"]["fqm-gpu"]
    assert svc["profiles"] == ["gpu"]
    assert svc["build"]["args"]["BASE"].startswith("nvcr.io/nvidia/tensorrt:")
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]


def test_dockerfile_copies_files_that_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=", dockerfile, re.M), "the gpu profile overrides BASE"
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, _dest = shlex.split(line)
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repo"
    entry = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M)
    assert entry
    assert entry.group(1).strip() == '["fqm"]'
    cmd = re.search(r"^CMD (.+)$", dockerfile, re.M)
    assert cmd is not None
    parse_with_cli(yaml.safe_load(cmd.group(1)))
