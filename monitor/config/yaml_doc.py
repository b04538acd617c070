"""YAML text to plain data plus the line of every field, and the duplicate keys PyYAML hides.

``yaml.safe_load`` forgets where each value was and silently keeps the last of two equal
keys (a camera pasted twice under one id would vanish). This reader composes the node graph
(safe tags only), builds the same data as ``safe_load`` (merge keys ``<<`` included) and
records, for each field path, the line of its key, so that a validation error can name the
line. Aliases are expanded with a cap on nodes, so a "billion laughs" file fails instead of
eating the memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from monitor.config.errors import Problem

#: Most nodes built, aliases expanded (a fleet of 1,000 cameras is ~20,000).
MAX_NODES = 200_000
#: Deepest nesting (a fleet file needs 4 levels).
MAX_DEPTH = 32

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map")

Path = tuple[str, ...]


@dataclass(frozen=True)
class YamlDocument:
    """A parsed file: its data (what ``yaml.safe_load`` gives) and the line of each field.

    Attributes:
        data: dicts, lists and scalars; ``None`` for an empty document or a syntax error.
        lines: 1-based line of each field path's key (of the item for list items).
        problems: syntax errors, duplicate keys, unsafe tags, each with its line.
    """

    data: object
    lines: dict[Path, int] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, else of its nearest ancestor that has one."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


class _TooBig(Exception):
    pass


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _yaml_message(exc: yaml.YAMLError) -> str:
    # Only the parser's own words: str(exc) quotes the offending source line, which may
    # hold a password.
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p) or type(exc).__name__
    if isinstance(exc, yaml.constructor.ConstructorError):
        return f"YAML: {text} (only plain YAML values are read)"
    return f"YAML syntax error: {text}"


def read_yaml(text: str) -> YamlDocument:
    """Parse one YAML document (safe tags only) keeping lines and reporting duplicate keys."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        return YamlDocument(None, problems=(Problem((), _yaml_message(exc), line),))
    except yaml.YAMLError as exc:
        return YamlDocument(None, problems=(Problem((), _yaml_message(exc)),))
    try:
        if root is None:
            return YamlDocument(None)
        builder = _Builder(loader)
        try:
            data = builder.build(root, (), 0)
        except _TooBig as exc:
            return YamlDocument(None, problems=(Problem((), str(exc), _line(root)),))
        return YamlDocument(data, builder.lines, tuple(builder.problems))
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.nodes = 0
        self.checked: set[int] = set()
        self.active: set[int] = set()

    def build(self, node: Node, path: Path, depth: int) -> object:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES} values once aliases are expanded")
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problems.append(Problem(path, "an alias refers to itself", _line(node)))
            return None
        if node.tag not in _PLAIN:
            message = f"YAML tag {node.tag!r} is not supported: write plain mappings and lists"
            self.problems.append(Problem(path, message, _line(node)))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for i, child in enumerate(node.value):
                    self.lines[(*path, str(i))] = _line(child)
                    items.append(self.build(child, (*path, str(i)), depth + 1))
                return items
            return self.mapping(node, path, depth)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode, path: Path) -> object:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problems.append(Problem(path, _yaml_message(exc), _line(node)))
            return None

    def key(self, node: Node, path: Path) -> object:
        if not isinstance(node, ScalarNode):
            self.problems.append(Problem(path, "a key must be a plain value", _line(node)))
            return None
        return self.scalar(node, path)

    def mapping(self, node: MappingNode, path: Path, depth: int) -> dict[object, object]:
        if id(node) not in self.checked:  # an aliased mapping is checked once
            self.checked.add(id(node))
            first: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue
                key = self.scalar(key_node, path)
                if key in first:
                    self.problems.append(
                        Problem(
                            (*path, str(key)),
                            f"duplicate key (first on line {first[key]}); YAML would keep only "
                            "this one: rename or remove one of them",
                            _line(key_node),
                        )
                    )
                else:
                    first[key] = _line(key_node)
        try:
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.problems.append(Problem(path, _yaml_message(exc), _line(node)))
            return {}
        result: dict[object, object] = {}
        for key_node, value_node in node.value:  # merged keys first: explicit ones win
            key = self.key(key_node, path)
            try:
                hash(key)
            except TypeError:
                continue
            sub = (*path, str(key))
            self.lines[sub] = _line(key_node)
            result[key] = self.build(value_node, sub, depth + 1)
        return result
