"""Shared fixtures, and the skips for hardware a machine may lack.

Hardware: tests marked ``gpu``, ``tensorrt`` or ``gstreamer`` skip, with the reason, where
the machine has no CUDA device, no TensorRT or no GStreamer.

Kafka: tests that need a broker use ``kafka_bootstrap`` and get a real Apache Kafka broker
(tests/support/kafka_broker.py). They never skip for want of one: a suite that silently
skipped its Kafka tests would report green while the event path was untested.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping

import pytest
from kafka import KafkaAdminClient

from tests.support.kafka_broker import KafkaBroker, KafkaBrokerError, wait_for_kafka


@functools.cache
def _missing_hardware() -> dict[str, str | None]:
    """For each hardware marker, why its tests cannot run here (``None`` when they can)."""

    def cuda() -> str | None:
        import torch

        return None if torch.cuda.is_available() else "no CUDA device visible to torch"

    def gstreamer() -> str | None:
        try:
            from pipelines.gstreamer import load_gst

            load_gst()
        except ImportError as exc:
            return str(exc)
        return None

    trt = importlib.util.find_spec("tensorrt") is not None
    return {
        "gpu": cuda(),
        "tensorrt": None if trt else "TensorRT is not installed (NVIDIA's index only)",
        "gstreamer": gstreamer(),
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [
        (item, m) for item in items for m in ("gpu", "tensorrt", "gstreamer") if m in item.keywords
    ]
    if not marked:
        return
    missing = _missing_hardware()
    for item, marker in marked:
        if missing[marker]:
            item.add_marker(pytest.mark.skip(reason=f"{marker}: {missing[marker]}"))


#: How long an external broker (FQM_KAFKA_BOOTSTRAP) gets to answer before the tests fail.
EXTERNAL_BROKER_TIMEOUT_S = 15.0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a real Kafka broker, shared by the whole session.

    With ``FQM_KAFKA_BOOTSTRAP`` set, that broker is used (say, one left running with
    ``python -m tests.support.kafka_broker`` to save the start-up on every run); otherwise
    a throwaway broker is started here and stopped when the session ends. If there is no
    broker, every test that asks for one fails with the reason.
    """
    external = os.environ.get("FQM_KAFKA_BOOTSTRAP", "").strip()
    # pytest.fail is called outside the except blocks so that the report shows the reason
    # alone, not chained under the KafkaBrokerError's traceback.
    failure: str | None = None
    if external:
        try:
            wait_for_kafka(external, EXTERNAL_BROKER_TIMEOUT_S)
        except KafkaBrokerError as exc:
            failure = f"FQM_KAFKA_BOOTSTRAP={external} does not answer as a Kafka broker: {exc}"
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        yield external
        return

    broker = KafkaBroker()
    try:
        broker.start()
    except KafkaBrokerError as exc:
        failure = f"could not start the test Kafka broker: {exc}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    """A kafka-python admin client connected to ``kafka_bootstrap``."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="fqm-tests-admin")
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def kafka_topic_factory(
    kafka_admin: KafkaAdminClient, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Makes topics with unique names, ready to use (every partition has a leader).

    Call it as ``make(partitions=3, configs={"retention.ms": "60000"})``. Unique names keep
    tests apart on a shared or external broker; the topics are deleted afterwards.
    """
    created: list[str] = []
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:100].strip("-")

    def make(partitions: int = 1, *, configs: Mapping[str, str] | None = None) -> str:
        name = f"fqm-test-{slug}-{uuid.uuid4().hex[:8]}"
        spec = {"num_partitions": partitions, "replication_factor": 1}
        if configs:
            spec["configs"] = dict(configs)
        kafka_admin.create_topics({name: spec}, wait_for_metadata=True)
        created.append(name)
        return name

    yield make
    if created:
        try:
            kafka_admin.delete_topics(created, raise_errors=False)
        except Exception as exc:  # cleanup only: a leftover topic must not fail the test
            print(f"could not delete test topics {created}: {exc}")


@pytest.fixture
def kafka_topic(kafka_topic_factory: Callable[..., str]) -> str:
    """A fresh single-partition topic, deleted after the test."""
    return kafka_topic_factory()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test: small models are dominated by per-op overhead, and
    more threads on a shared 2-core machine only add contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
