"""``${VAR}`` and ``${VAR:-default}`` in a config's string values, expanded before validation.

Secrets (camera passwords, SASL passwords) stay out of the file: ``rtsp://admin:${CAM_PW}@..``.
Only the braced form is expanded, so a literal ``$`` in a password needs no escaping;
``$${`` writes a literal ``${``. ``${VAR:-default}`` takes the default when ``VAR`` is unset
or empty. Expanded text is never expanded again. A missing variable is a problem naming the
field and the variable, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.config.errors import Problem

_REF = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)
#: Names whose values are masked in any message, whatever field they end up in.
SECRET_NAME = re.compile(r"pass|pw|secret|token|key|cred|auth", re.IGNORECASE)

Path = tuple[str, ...]


@dataclass
class Expansion:
    """The expanded data, what went wrong, and the values to keep out of messages."""

    data: object
    problems: list[Problem] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)


def expand_env(data: object, env: Mapping[str, str]) -> Expansion:
    """Expand references in every string value of ``data`` (keys are left alone).

    Args:
        data: plain data (dicts, lists, scalars), e.g. from :func:`read_yaml`.
        env: the variables, usually ``os.environ``.

    Returns:
        An :class:`Expansion`; ``problems`` hold paths but no lines (the caller adds them).

    Example:
        >>> expand_env({"source": "rtsp://u:${PW}@cam"}, {"PW": "s3"}).data
        {'source': 'rtsp://u:s3@cam'}
    """
    out = Expansion(None)
    out.data = _expand(data, (), env, out)
    return out


def _expand(value: object, path: Path, env: Mapping[str, str], out: Expansion) -> object:
    if isinstance(value, dict):
        return {k: _expand(v, (*path, str(k)), env, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*path, str(i)), env, out) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _REF.sub(lambda m: _replace(m, path, env, out), value)
    return value


def _replace(match: re.Match[str], path: Path, env: Mapping[str, str], out: Expansion) -> str:
    if match.group(0) == "$${":
        return "${"
    body = match.group("body")
    parsed = None if body is None else _BODY.match(body)
    if parsed is None:
        out.problems.append(
            Problem(
                path,
                "a '${' that is not ${NAME} or ${NAME:-default}; write $${ for a literal ${",
            )
        )
        return ""
    name, default = parsed["name"], parsed["default"]
    out.used.add(name)
    value = env.get(name)
    if value and SECRET_NAME.search(name):
        out.secrets.add(value)
    if default is not None and not value:
        return default
    if value is None:
        out.problems.append(
            Problem(
                path,
                f"environment variable {name} is not set (export it, or write "
                f"${{{name}:-default}} for a default)",
            )
        )
        return ""
    return value
