"""fqm's service: composes video sources, face tracking and quality engines into events."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fqm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
