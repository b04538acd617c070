"""``ConfigError``: every problem of a config file at once, each with its field and YAML line.

An operator fixing a fleet file wants the whole list, not one error per run, and each
problem where an editor can jump to it: ``cameras.yaml:7: cameras.lobby.sourc: extra field
not permitted``. Messages never carry a value read from the environment (a secret).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.urls import MASK, mask_url


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config.

    Attributes:
        path: the field, as keys from the document's root (``("cameras", "lobby", "source")``);
            empty for a problem of the whole file (YAML syntax, an empty file).
        message: what is wrong and how to fix it; holds no secret.
        line: 1-based line in the file, ``None`` when unknown (a JSON record, a missing file).
    """

    path: tuple[str, ...]
    message: str
    line: int | None = None

    @property
    def field(self) -> str:
        """The dotted field path (``cameras.lobby.source``), empty for the whole file."""
        return ".".join(self.path)

    def format(self, source: str, secrets: Iterable[str] = ()) -> str:
        """``FILE:LINE: field: message`` (the parts that are known), secrets masked."""
        where = source if self.line is None else f"{source}:{self.line}"
        field = f"{self.field}: " if self.path else ""
        return redact(f"{where}: {field}{self.message}", secrets)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords and each of ``secrets`` replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return mask_url(text)


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists all that was found.

    ``str()`` is a header line and one ``FILE:LINE: field: message`` line per problem,
    masked with :func:`pipelines.urls.mask_url`.
    """

    def __init__(
        self, source: str, problems: Iterable[Problem], secrets: Iterable[str] = ()
    ) -> None:
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem((), "invalid config"),)
        self._secrets = frozenset(secrets)
        super().__init__("\n".join([self.header(), *self.lines()]))

    def header(self) -> str:
        """``FILE: N problems in the config``."""
        n = len(self.problems)
        return redact(f"{self.source}: {n} problem{'s' if n != 1 else ''} in the config")

    def records(self) -> list[dict[str, object]]:
        """Each problem as ``{"line", "field", "message"}`` (for JSON), secrets masked."""
        return [
            {"line": p.line, "field": p.field, "message": redact(p.message, self._secrets)}
            for p in self.problems
        ]

    def lines(self) -> list[str]:
        """One ``FILE:LINE: field: message`` line per problem, secrets masked."""
        return [p.format(self.source, self._secrets) for p in self.problems]
