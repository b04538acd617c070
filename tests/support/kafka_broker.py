"""A real single-node Apache Kafka broker (KRaft) for the test suite.

Why a real broker: fqm publishes its events to Kafka, and the tests must show that they
arrive, exactly once and in order, at a broker that behaves like the production one. No
registry we can reach ships a Kafka broker as a Python, npm or Debian package, and the
stand-ins that exist (the Tansu binary on PyPI) acknowledge writes to missing topics and
hang consumer-group rejoins, so a test against them can pass while the product is wrong.

Apache Kafka itself is on Maven Central: ``scripts/kafka/fetch-jars.sh`` copies its jars to
``$FQM_CACHE/kafka/$FQM_KAFKA_VERSION/libs`` (outside the clone, so CI and fresh clones
reuse them) and :class:`KafkaBroker` runs them with the system Java (17+) as one combined
broker+controller node on loopback, with all its state in a temporary directory.

By hand::

    scripts/kafka/fetch-jars.sh
    .venv/bin/python -m tests.support.kafka_broker      # prints the bootstrap address
    FQM_KAFKA_BOOTSTRAP=127.0.0.1:PORT .venv/bin/python -m pytest -m kafka
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from xml.sax.saxutils import quoteattr

from kafka import KafkaAdminClient

from monitor.assets import cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMON_SH = REPO_ROOT / "scripts" / "common.sh"
FETCH_SCRIPT = "scripts/kafka/fetch-jars.sh"

#: How long :meth:`KafkaBroker.start` waits for the first answered admin request. A cold JVM
#: on two busy cores takes 10-20 s; the margin covers a loaded CI machine.
DEFAULT_START_TIMEOUT_S = 120.0
#: How long :meth:`KafkaBroker.stop` lets the broker shut down cleanly before SIGKILL.
STOP_GRACE_S = 30.0
#: Attempts at start-up, each with fresh ports: a free port we picked can be taken by
#: another process before the broker binds it.
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40


class KafkaBrokerError(RuntimeError):
    """The broker could not be found, started, or reached; the message says why."""


class _PortTaken(KafkaBrokerError):
    """The broker lost the race for a port we picked; start again with new ports."""


def default_kafka_version() -> str:
    """``$FQM_KAFKA_VERSION``, else the default that scripts/common.sh gives it.

    Read from common.sh rather than repeated here, so the tests always look for the
    version that fetch-jars.sh fetched.
    """
    version = os.environ.get("FQM_KAFKA_VERSION")
    if version:
        return version
    try:
        text = COMMON_SH.read_text(encoding="utf-8")
    except OSError as exc:
        raise KafkaBrokerError(f"cannot read {COMMON_SH} for FQM_KAFKA_VERSION: {exc}") from exc
    match = re.search(r'^FQM_KAFKA_VERSION="\$\{FQM_KAFKA_VERSION:-([^}"]+)\}"', text, re.M)
    if match is None:
        raise KafkaBrokerError(f"no FQM_KAFKA_VERSION default found in {COMMON_SH}")
    return match.group(1)


def find_kafka_libs() -> Path:
    """The folder of Kafka jars: ``$FQM_KAFKA_LIBS``, else the one fetch-jars.sh fills."""
    env_libs = os.environ.get("FQM_KAFKA_LIBS")
    if env_libs:
        libs, origin = Path(env_libs), "FQM_KAFKA_LIBS"
    else:
        version = default_kafka_version()
        libs, origin = cache_dir() / "kafka" / version / "libs", "the fqm cache"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaBrokerError(
            f"no Kafka jars in {libs} ({origin}): run {FETCH_SCRIPT} to fetch them "
            "(or point FQM_KAFKA_LIBS at a folder of Kafka jars)"
        )
    return libs


def find_java() -> str:
    """The java executable: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError("java not found: the Kafka broker needs a Java 17+ runtime")
    return java


def random_cluster_id() -> str:
    """A cluster id as Kafka writes one: 16 random bytes, URL-safe base64, unpadded.

    Made here rather than with ``StorageTool random-uuid`` to save a JVM start. Like Kafka,
    it avoids ids starting with '-', which command-line parsers take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    servers = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise KafkaBrokerError(f"bad bootstrap server {server!r}: expected HOST:PORT")
        servers.append((host.strip("[]"), int(port)))
    return servers


def _accepts_connections(bootstrap: str) -> bool:
    for host, port in _split_bootstrap(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            continue
    return False


def list_topics(bootstrap: str, timeout_s: float = 10.0) -> list[str]:
    """One real admin request (Metadata) to the cluster, bounded by ``timeout_s``.

    kafka-python's admin client bootstraps in its constructor and would wait 30 s for a
    broker that is not up yet; the short bootstrap timeout keeps each try short.
    """
    timeout_ms = max(1000, int(timeout_s * 1000))
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="fqm-tests-readiness",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
    )
    try:
        return admin.list_topics()
    finally:
        admin.close()


def wait_for_kafka(
    bootstrap: str,
    timeout_s: float,
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Wait until the cluster at ``bootstrap`` answers an admin request.

    Polls an admin request rather than the port: a KRaft broker accepts connections a
    while before it can serve metadata. ``abort`` is asked before every try and stops the
    wait with its reason (say, the broker process died). Raises KafkaBrokerError.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "nothing accepted a connection"
    while True:
        reason = abort() if abort is not None else None
        if reason is not None:
            raise KafkaBrokerError(f"gave up waiting for Kafka at {bootstrap}: {reason}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaBrokerError(
                f"Kafka at {bootstrap} did not answer an admin request within "
                f"{timeout_s:.0f} s (last error: {last_error})"
            )
        # A cheap TCP probe first: each failed admin-client construction leaves an I/O
        # thread behind in kafka-python 3.0, so only build one when something listens.
        if _accepts_connections(bootstrap):
            try:
                list_topics(bootstrap, timeout_s=min(5.0, max(1.0, remaining)))
                return
            except Exception as exc:  # any failure here just means "not ready yet"
                last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path.name} missing)"
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) if kept else f"({path.name} empty)"


def _properties_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


# Resolved once in the parent: after fork() the child may only call into what is ready.
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the forked child: have Linux SIGKILL the broker when its parent dies.

    So a test run killed hard (SIGKILL, OOM, CI timeout) leaves no broker behind. Linux ties
    this to the *thread* that started the broker: start it from a long-lived thread.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


class KafkaBroker:
    """One Kafka node (KRaft, broker and controller in one JVM) on 127.0.0.1.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. All its state (data,
    config, logs) lives in a temporary directory that :meth:`stop` removes.

    The settings suit one node: internal topics with one replica and one partition (so the
    first consumer group is served at once, not after 50 partitions are created), and no
    initial rebalance delay (so a consumer joins its group in milliseconds, not 3 s).
    """

    def __init__(
        self,
        libs: Path | None = None,
        *,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        heap: str = "512m",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare a broker; nothing runs until :meth:`start`.

        ``libs`` defaults to :func:`find_kafka_libs`; ``extra_config`` adds to or overrides
        server.properties (say, ``{"auto.create.topics.enable": "false"}``).
        """
        self._libs = libs
        self._start_timeout_s = start_timeout_s
        self._heap = heap
        self._extra_config = dict(extra_config or {})
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._jvm: list[str] | None = None
        self.startup_seconds: float | None = None
        """Seconds from :meth:`start` until the broker answered its first admin request."""

    # -- public API -------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap_servers=`` of any Kafka client."""
        if self._port is None:
            raise KafkaBrokerError("the broker is not started")
        return f"127.0.0.1:{self._port}"

    @property
    def log_file(self) -> Path:
        """The broker's log4j log (deleted by :meth:`stop`)."""
        if self._dir is None:
            raise KafkaBrokerError("the broker is not started")
        return self._dir / "broker.log"

    def poll(self) -> int | None:
        """The broker JVM's exit code, or None while it runs (or was never started)."""
        return None if self._process is None else self._process.poll()

    def start(self) -> KafkaBroker:
        """Format storage, launch the JVM and wait until it answers an admin request.

        Raises KafkaBrokerError (with the exit code and the tail of the broker's log) if it
        does not answer within the start timeout; nothing is left running then.
        """
        if self._process is not None:
            raise KafkaBrokerError("the broker is already started")
        libs = self._libs or find_kafka_libs()
        java = find_java()
        started = time.monotonic()
        deadline = started + self._start_timeout_s
        for _attempt in range(PORT_ATTEMPTS):
            try:
                self._launch(java, libs, deadline)
                self._wait_ready(deadline)
            except _PortTaken:
                self._terminate()
                continue
            except BaseException:
                self._terminate()
                raise
            self.startup_seconds = time.monotonic() - started
            atexit.register(self.stop)
            return self
        raise KafkaBrokerError(f"the broker lost its port to another process {PORT_ATTEMPTS} times")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; remove the temporary directory. Idempotent."""
        atexit.unregister(self.stop)
        self._terminate()

    def kill(self) -> None:
        """SIGKILL the broker JVM, as a crash would, keeping its data, config and port.

        :meth:`restart` brings it back on the same address with the same data, so a test can
        show what clients do while the broker is gone. Nothing happens if it is not running.
        """
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Start the JVM again on the same port and data directory after :meth:`kill` (or
        after it exited) and wait until it answers an admin request.

        Raises KafkaBrokerError (with the tail of the broker's log) if it does not answer
        within the start timeout; the port can have been taken by another process meanwhile.
        """
        if self._dir is None or self._jvm is None:
            raise KafkaBrokerError("the broker was never started: call start() first")
        if self.poll() is None:
            raise KafkaBrokerError("the broker is still running: kill() it before restart()")
        started = time.monotonic()
        self._spawn()
        self._wait_ready(started + self._start_timeout_s)
        self.startup_seconds = time.monotonic() - started

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _launch(self, java: str, libs: Path, deadline: float) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="fqm-kafka-"))
        self._dir = workdir
        port, controller_port = free_ports(2)
        self._port = port

        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(workdir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Two cores: Kafka's defaults (3 network, 8 I/O threads) only add contention.
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        config.update(self._extra_config)
        properties = workdir / "server.properties"
        properties.write_text(
            "".join(f"{key}={_properties_value(value)}\n" for key, value in config.items()),
            encoding="utf-8",
        )
        log4j = workdir / "log4j2.xml"
        log4j.write_text(_log4j2_config(workdir / "broker.log"), encoding="utf-8")

        jvm = [
            java,
            f"-Dlog4j2.configurationFile={log4j}",
            "-Djava.awt.headless=true",
            "-cp",
            f"{libs}/*",  # the JVM expands the wildcard; no shell is involved
        ]
        console = workdir / "console.log"
        with console.open("wb") as out:
            try:
                formatted = subprocess.run(
                    [
                        *jvm,
                        "-Xmx256m",
                        "kafka.tools.StorageTool",
                        "format",
                        "--cluster-id",
                        random_cluster_id(),
                        "--config",
                        str(properties),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise KafkaBrokerError(
                    "formatting the broker's storage timed out\n" + self._diagnostics()
                ) from None
        if formatted.returncode != 0:
            raise KafkaBrokerError(
                f"formatting the broker's storage failed (StorageTool exit code "
                f"{formatted.returncode})\n" + self._diagnostics()
            )

        self._jvm = jvm
        self._spawn()

    def _spawn(self) -> None:
        """Start the broker JVM on the prepared (formatted) directory and ports."""
        assert self._dir is not None
        assert self._jvm is not None
        with (self._dir / "console.log").open("ab") as out:
            self._process = subprocess.Popen(
                [
                    *self._jvm,
                    f"-Xms{self._heap}",
                    f"-Xmx{self._heap}",
                    "-XX:+ExitOnOutOfMemoryError",
                    "kafka.Kafka",
                    str(self._dir / "server.properties"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                # Its own session: a Ctrl-C in the terminal reaches Python, which then stops
                # the broker in order, instead of killing the JVM under a running test.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _wait_ready(self, deadline: float) -> None:
        process = self._process
        assert process is not None

        def exited() -> str | None:
            code = process.poll()
            return None if code is None else f"the broker JVM exited with code {code}"

        try:
            wait_for_kafka(self.bootstrap_servers, deadline - time.monotonic(), abort=exited)
        except KafkaBrokerError as exc:
            if process.poll() is not None and "Address already in use" in self._all_logs():
                raise _PortTaken(str(exc)) from None
            raise KafkaBrokerError(f"{exc}\n{self._diagnostics()}") from None

    def _all_logs(self) -> str:
        assert self._dir is not None
        texts = []
        for name in ("broker.log", "console.log"):
            with contextlib.suppress(OSError):
                texts.append((self._dir / name).read_text(encoding="utf-8", errors="replace"))
        return "\n".join(texts)

    def _diagnostics(self) -> str:
        assert self._dir is not None
        code = self.poll()
        state = (
            "not launched"
            if self._process is None
            else ("still running (now stopped)" if code is None else f"exited with code {code}")
        )
        return (
            f"Kafka broker JVM: {state}\n"
            f"--- last lines of broker.log ---\n{_tail(self._dir / 'broker.log')}\n"
            f"--- last lines of the JVM's console output ---\n{_tail(self._dir / 'console.log')}"
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._jvm = None
        self._port = None


def _log4j2_config(log_file: Path) -> str:
    """log4j2 XML: INFO into ``log_file``, but config dumps and per-request chatter at WARN."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName={quoteattr(str(log_file))} append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <!-- Each component dumps its whole config at INFO: thousands of lines that would
         bury the lines that explain a failed start. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
  </Loggers>
</Configuration>
"""


def main(argv: list[str] | None = None) -> int:
    """Run a broker until Ctrl-C (or SIGTERM), printing its bootstrap address on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.kafka_broker",
        description="Run a throwaway single-node Kafka broker on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--libs", type=Path, help="folder of Kafka jars (default: the cache)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S)
    args = parser.parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with KafkaBroker(args.libs, start_timeout_s=args.timeout) as broker:
            print(broker.bootstrap_servers, flush=True)
            print(
                f"Kafka broker up in {broker.startup_seconds:.1f} s; log: {broker.log_file}\n"
                f"tests can use it: FQM_KAFKA_BOOTSTRAP={broker.bootstrap_servers} "
                ".venv/bin/python -m pytest -m kafka\nCtrl-C stops it.",
                file=sys.stderr,
                flush=True,
            )
            while (code := broker.poll()) is None:
                time.sleep(0.5)
            print(f"the broker exited by itself with code {code}", file=sys.stderr)
            print(_tail(broker.log_file), file=sys.stderr)
            return 1
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
