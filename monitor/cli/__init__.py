"""The ``fqm`` command line (``monitor.cli:main``); see :mod:`monitor.cli.app`."""

from monitor.cli.app import cli, main

__all__ = ["cli", "main"]
