"""A camera as a record of the fleet topic: the key is its id, the value its config as JSON.

The value is the camera's config **as written**: ``${VAR}`` references stay in it, so the
secrets they name never reach Kafka; each ``fqm run --fleet`` process expands them from its
own environment when it starts the camera (:func:`camera_from_record`). A record whose
value is ``None`` (a tombstone) removes the camera.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from monitor.config import CameraConfig, ConfigError, Problem, camera_from_json, check_camera_id
from monitor.config.env import expand_env
from monitor.config.load import validation_problems


class _AnyValue(Mapping[str, str]):
    """An environment in which every variable is set (to a placeholder): checks the form of
    ``${...}`` references without needing their values."""

    def __getitem__(self, key: str) -> str:
        return "x"

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def check_camera(camera_id: str, data: Mapping[str, object], base_dir: Path | None) -> CameraConfig:
    """Validate a camera as it will be published (``${VAR}`` unexpanded).

    ``base_dir`` resolves a relative file source (``fqm cameras add`` passes the working
    directory; a file source with ``${`` in it is left as written).

    Raises:
        ConfigError: every problem, named ``cameras.<id>.<field>``.
    """
    where = f"camera {camera_id}"
    try:
        check_camera_id(camera_id)
    except ValueError as exc:
        raise ConfigError(where, [Problem(("cameras", camera_id), str(exc))]) from None
    refs = expand_env(dict(data), _AnyValue())
    problems = [Problem(("cameras", camera_id, *p.path), p.message) for p in refs.problems]
    if problems:
        raise ConfigError(where, problems)
    source = data.get("source")
    context = {"base_dir": None if isinstance(source, str) and "${" in source else base_dir}
    try:
        return CameraConfig.model_validate(dict(data), context=context)
    except ValidationError as exc:
        problems = [
            Problem(("cameras", camera_id, *p.path), p.message)
            for p in validation_problems(exc, dict(data))
        ]
        raise ConfigError(where, problems) from None


def encode_camera(camera: CameraConfig) -> bytes:
    """The record value: the fields that differ from their defaults, as JSON."""
    return camera.model_dump_json(exclude_defaults=True).encode()


def camera_from_record(camera_id: str, value: bytes | str, env: Mapping[str, str]) -> CameraConfig:
    """The camera a record describes, its ``${VAR}`` expanded from ``env``.

    Raises:
        ConfigError: not JSON, a variable not set here, or an invalid field; the message
            names the camera and the variable, never a value.
    """
    where = f"camera {camera_id}"
    try:
        data = json.loads(value)
    except ValueError:
        problem = Problem(("cameras", camera_id), "the value is not JSON")
        raise ConfigError(where, [problem]) from None
    if not isinstance(data, dict):
        problem = Problem(("cameras", camera_id), "the value is not a JSON object")
        raise ConfigError(where, [problem])
    expanded = expand_env(data, env)
    if expanded.problems:
        problems = [Problem(("cameras", camera_id, *p.path), p.message) for p in expanded.problems]
        raise ConfigError(where, problems, expanded.secrets)
    return camera_from_json(camera_id, json.dumps(expanded.data))
