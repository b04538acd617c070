"""Kafka bootstrap strings: parsed once, checked before a client waits on them, never printed
with their credentials.

Accepted: ``HOST:PORT[,HOST:PORT...]``, each optionally prefixed by the security protocol as
the Java client allows (``SASL_SSL://broker:9093``), and, for SASL, PLAIN credentials in the
first entry (``SASL_SSL://user:password@broker:9093,broker2:9093``). ``str()`` of a
:class:`Bootstrap` masks the password, so it can be logged.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from urllib.parse import unquote

from pipelines.urls import MASK

PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class BootstrapError(ValueError):
    """A bootstrap string that cannot be used (its message never holds a password)."""


@dataclass(frozen=True)
class Bootstrap:
    servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = "" if self.security_protocol == "PLAINTEXT" else f"{self.security_protocol}://"
        user = "" if self.username is None else f"{self.username}:{MASK}@"
        return scheme + user + ",".join(self.servers)

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for kafka-python's clients (``bootstrap_servers`` included)."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": list(self.servers),
            "security_protocol": self.security_protocol,
        }
        if self.username is not None:
            kwargs |= {
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return kwargs


def _host_port(entry: str) -> tuple[str, int]:
    host, sep, port = entry.rpartition(":")
    if not sep or not host:
        raise BootstrapError(f"{entry!r} is not HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise BootstrapError(f"port {port!r} of {host}:{port} is not a number") from None
    if not 0 < number < 65536:
        raise BootstrapError(f"port {number} of {host} is outside 1-65535")
    return host.strip("[]"), number


def parse_bootstrap(text: str) -> Bootstrap:
    """Parse a bootstrap string (see the module docstring); raises :class:`BootstrapError`."""
    protocol = "PLAINTEXT"
    username = password = None
    servers: list[str] = []
    for i, raw in enumerate(e.strip() for e in text.split(",")):
        if not raw:
            raise BootstrapError(f"entry {i + 1} of the bootstrap list is empty (a stray comma?)")
        entry = raw
        if "://" in entry:
            scheme, entry = entry.split("://", 1)
            scheme = scheme.upper()
            if scheme not in PROTOCOLS:
                raise BootstrapError(
                    f"unknown security protocol {scheme!r}; use one of {', '.join(PROTOCOLS)}"
                )
            if i and scheme != protocol:
                raise BootstrapError("every bootstrap entry must use the same security protocol")
            protocol = scheme
        if "@" in entry:
            if i:
                raise BootstrapError("give SASL credentials once, in the first bootstrap entry")
            userinfo, entry = entry.rsplit("@", 1)
            user, _, secret = userinfo.partition(":")
            username, password = unquote(user), unquote(secret)
        host, port = _host_port(entry)
        servers.append(f"{host}:{port}")
    if username is not None and not protocol.startswith("SASL"):
        raise BootstrapError(
            f"credentials need a SASL protocol (SASL_SSL:// or SASL_PLAINTEXT://), not {protocol}"
        )
    return Bootstrap(tuple(servers), protocol, username, password)


def check_reachable(bootstrap: Bootstrap, timeout_s: float) -> None:
    """Raise ``ConnectionError`` at once when no bootstrap server accepts a TCP connection.

    kafka-python retries a refused bootstrap until its whole timeout runs out; a refused
    port is known in milliseconds, so say so then. A server that does not answer at all
    still gets ``timeout_s``.
    """
    reasons = []
    for server in bootstrap.servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except OSError as exc:
            reasons.append(f"{server}: {exc.strerror or type(exc).__name__}")
    raise ConnectionError(f"no Kafka broker reachable ({'; '.join(reasons)})")
