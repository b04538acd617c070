"""The events' JSON Schemas (draft 2020-12), shipped inside the package.

``v1/defs.json`` holds the shared definitions; ``v1/<kind>.json`` one schema per kind, which
refers to them by relative ``$ref``. Every ``$id`` is under :data:`BASE_URI`, so a validator
given all the files as one registry resolves the references without network access.

Example (with the ``jsonschema`` package, a dev dependency)::

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    docs = load_all()
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
    )
    Draft202012Validator(docs["face_observation"], registry=registry).validate(event_json)
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

#: Where the schemas' ``$id`` s live (the repository path of these files).
BASE_URI = "https://github.com/fqm/fqm/blob/main/monitor/events/schemas/"
#: The schema major versions shipped.
VERSIONS: tuple[int, ...] = (1,)
KINDS: tuple[str, ...] = ("face_observation", "best_frame", "track_summary", "stream_status")


@cache
def _load(major: int, name: str) -> str:
    if major not in VERSIONS:
        raise ValueError(f"no schemas for version {major}; shipped: {VERSIONS}")
    return files(__package__).joinpath(f"v{major}", f"{name}.json").read_text("utf-8")


def load(name: str, major: int = 1) -> dict[str, Any]:
    """One schema document (a fresh copy): a kind, or ``defs``."""
    if name not in (*KINDS, "defs"):
        raise ValueError(f"no schema {name!r}; use one of {', '.join(KINDS)} or defs")
    return json.loads(_load(major, name))


def load_all(major: int = 1) -> dict[str, dict[str, Any]]:
    """``{name: schema}`` for ``defs`` and every kind of one major version."""
    return {name: load(name, major) for name in ("defs", *KINDS)}
