"""The monitoring service: sources -> faces -> scoring policy -> engine -> book -> events -> sink.

Composes the libraries (``pipelines``, ``monitor.faces``, ``monitor.tracks``, ``engines``,
``monitor.events``, ``monitor.delivery``); no click here (the command is ``monitor.cli.run``).
See docs/service.md.
"""

from monitor.service.emit import EventEmitter, ModelLabel
from monitor.service.run import RunSummary, Service, ServiceConfig, StreamSummary
from monitor.service.sink import LockedSink

__all__ = [
    "EventEmitter",
    "LockedSink",
    "ModelLabel",
    "RunSummary",
    "Service",
    "ServiceConfig",
    "StreamSummary",
]
