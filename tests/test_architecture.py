"""The layering the README promises, read from the imports of every module.

pipelines knows nothing of faces, models or Kafka; engines knows nothing of video or Kafka;
monitor composes them, and its faces library never reaches up into the commands. Product
code never imports the tests (an installed package has none), and nothing reads the
contributors' shared folder beside the checkout (a user's clone has none).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("pipelines", "engines", "monitor")


def imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every absolute import under ``package``."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), node.lineno, name) for name in names]
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("pipelines", ("engines", "monitor", "tests", "kafka", "mediapipe", "torch")),
        ("engines", ("pipelines", "monitor", "tests", "kafka", "mediapipe")),
        ("monitor", ("tests",)),
        ("monitor/faces", ("monitor.cli", "monitor.benchmarks", "engines", "kafka")),
        ("monitor/benchmarks", ("monitor.cli", "click")),
    ],
)
def test_package_does_not_import(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = [
        f"{file}:{line} imports {name}"
        for file, line, name in imports(package)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert offenders == []


def test_nothing_reads_the_shared_folder() -> None:
    # Spelled in pieces so that this file does not match itself.
    parent, env = "../" + "shared", "FQM_" + "SHARED"
    pattern = re.compile("|".join([re.escape(parent), env, r"parent / [\"']shared[\"']"]))
    offenders = []
    for top in (*PRODUCT, "tests", "scripts"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix in (".py", ".sh", ".toml"):
                text = path.read_text(errors="replace")
                offenders += [f"{path.relative_to(ROOT)}" for _ in pattern.finditer(text)]
    assert offenders == []


def test_commands_live_in_monitor_cli() -> None:
    """Only monitor/cli defines click commands; the libraries under it stay importable."""
    offenders = [
        f"{file}:{line}"
        for package in PRODUCT
        for file, line, name in imports(package)
        if name == "click" and not file.startswith("monitor/cli/")
    ]
    assert offenders == []
