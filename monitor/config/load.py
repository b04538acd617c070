"""Read a fleet file: YAML with lines, ``${VAR}`` expansion, then validation, all problems at once.

``load_fleet(path)`` is what ``fqm run --config`` and ``fqm validate-config`` call (and what
SIGHUP will call again); every failure is one :class:`ConfigError` listing each problem as
``FILE:LINE: field: message``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from monitor.config.env import expand_env
from monitor.config.errors import ConfigError, Problem
from monitor.config.model import (
    BatchConfig,
    CameraConfig,
    EngineConfig,
    FleetConfig,
    JsonlSinkConfig,
    KafkaSinkConfig,
    MetricsConfig,
)
from monitor.config.yaml_doc import YamlDocument, read_yaml

#: Largest config file read (a fleet of 1,000 cameras is ~200 KB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024

Path_ = tuple[str, ...]


def load_fleet(path: str | Path, env: Mapping[str, str] | None = None) -> FleetConfig:
    """Read and validate the fleet file at ``path``.

    Args:
        path: a YAML file; relative paths inside it are relative to its folder.
        env: variables for ``${VAR}``; default ``os.environ``.

    Raises:
        ConfigError: the file is missing, unreadable, empty, not YAML, or invalid; the
            message lists every problem with its line.
    """
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                name, [Problem((), f"{size} bytes; a config file is at most {MAX_CONFIG_BYTES}")]
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(name, [Problem((), "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError(name, [Problem((), "is a folder, not a config file")]) from None
    except OSError as exc:
        raise ConfigError(name, [Problem((), exc.strerror or type(exc).__name__)]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(name, [Problem((), "not UTF-8 text", line)]) from None
    return parse_fleet(text, name, env=env, base_dir=path.absolute().parent)


def parse_fleet(
    text: str,
    source: str = "<config>",
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> FleetConfig:
    """Validate fleet YAML ``text``; ``source`` names it in messages (see :func:`load_fleet`)."""
    doc = read_yaml(text)
    problems = list(doc.problems)
    if doc.data is None:
        if not problems:
            empty = "the file is empty; a fleet needs at least cameras: {ID: {source: ...}}"
            problems.append(Problem((), empty))
        raise ConfigError(source, problems)
    if not isinstance(doc.data, dict):
        top = Problem((), "the top level must be a mapping (version:, cameras:, ...)", 1)
        raise ConfigError(source, [*problems, top])
    expanded = expand_env(doc.data, os.environ if env is None else env)
    problems += [Problem(p.path, p.message, doc.line_of(p.path)) for p in expanded.problems]
    reported = {p.path for p in problems}
    try:
        fleet = FleetConfig.model_validate(expanded.data, context={"base_dir": base_dir})
    except ValidationError as exc:
        fleet = None
        for p in validation_problems(exc, expanded.data, doc):
            if p.path not in reported:  # e.g. a missing variable is reported once, as such
                problems.append(p)
    if problems or fleet is None:
        raise ConfigError(source, _ordered(problems), expanded.secrets)
    return fleet


def camera_from_json(camera_id: str, text: str | bytes) -> CameraConfig:
    """One camera from its JSON (``CameraConfig.model_dump_json``), e.g. a Kafka record value.

    Raises:
        ConfigError: named ``camera <id>``, its problems without lines.
    """
    try:
        return CameraConfig.model_validate_json(text)
    except ValidationError as exc:
        paths = [("cameras", camera_id, *_loc_path(err["loc"])) for err in exc.errors()]
        problems = [
            Problem(path, _message(err, path, None))
            for path, err in zip(paths, exc.errors(), strict=True)
        ]
        raise ConfigError(f"camera {camera_id}", problems) from None


def validation_problems(
    exc: ValidationError, data: object, doc: YamlDocument | None = None
) -> list[Problem]:
    """Pydantic's errors as problems: the field path as written in the file, and its line."""
    seen: set[tuple[Path_, str]] = set()
    problems = []
    for err in exc.errors():
        path = _data_path(data, err["loc"], missing=err["type"] == "missing")
        message = _message(err, path, data)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        problems.append(Problem(path, message, None if doc is None else doc.line_of(path)))
    return problems


def _loc_path(loc: tuple[int | str, ...]) -> Path_:
    return tuple(str(part) for part in loc if part != "[key]")


def _data_path(data: object, loc: tuple[int | str, ...], *, missing: bool) -> Path_:
    """``loc`` as keys of ``data``: drops pydantic's union tags (``kafka``, ``bool``) and
    ``[key]``, and spells keys as the file does (``123``, ``False``)."""
    path: list[str] = []
    current = data
    for i, part in enumerate(loc):
        if part == "[key]":
            break
        if isinstance(current, dict):
            key = next((k for k in current if k == part or str(k) == str(part)), _ABSENT)
            if key is not _ABSENT:
                path.append(str(key))
                current = current[key]
            elif missing and i == len(loc) - 1:
                path.append(str(part))
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(str(part))
            current = current[part]
    return tuple(path)


_ABSENT = object()


def _model_at(path: Path_, data: object) -> type[BaseModel] | None:
    """The model of the mapping at ``path`` (the sink's by its type)."""
    if not path:
        return FleetConfig
    if len(path) == 2 and path[0] == "cameras":
        return CameraConfig
    if path == ("sink",):
        value = data.get("sink") if isinstance(data, dict) else None
        kafka = isinstance(value, dict) and value.get("type") == "kafka"
        return KafkaSinkConfig if kafka else JsonlSinkConfig
    found = {"model": EngineConfig, "batch": BatchConfig, "metrics": MetricsConfig}
    return found.get(path[0]) if len(path) == 1 else None


def _message(err: Mapping, path: Path_, data: object) -> str:
    kind = err["type"]
    text = str(err["msg"])
    if kind == "missing":
        if path == ("cameras",):
            return "required: at least one camera (cameras: {ID: {source: ...}})"
        return "required field missing"
    if kind == "extra_forbidden":
        model = _model_at(path[:-1], data)
        names = [] if model is None else list(model.model_fields)
        close = difflib.get_close_matches(path[-1] if path else "", names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"fields here: {', '.join(names)}"
        return f"extra field not permitted ({hint})" if names else "extra field not permitted"
    if kind == "union_tag_not_found":
        return "needs a type: jsonl or kafka"
    if kind == "union_tag_invalid":
        return "type must be jsonl or kafka"
    if kind == "too_short" and path == ("cameras",):
        return "at least one camera is needed"
    if kind == "model_type":
        return "should be a mapping of fields"
    if kind == "value_error":
        text = text.removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


def _ordered(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0, p.path))
