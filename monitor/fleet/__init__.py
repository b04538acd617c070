"""Scale-out on Kafka (docs/scale-out.md): the camera fleet as a compacted topic, and
``fqm run --fleet`` processes that share it through a consumer group.

* :mod:`monitor.fleet.records`: a camera as a record (key: its id; value: its config as
  written, ``${VAR}`` unexpanded) and back, expanded from the local environment;
* :mod:`monitor.fleet.topic`: the compacted topic: create, write, read whole;
* :mod:`monitor.fleet.member`: :class:`FleetMember`, one process in the group: partition
  ownership is camera ownership.
"""

from monitor.fleet.member import (
    DEFAULT_SESSION_TIMEOUT_S,
    FleetChanges,
    FleetMember,
    apply_changes,
)
from monitor.fleet.records import camera_from_record, check_camera, encode_camera
from monitor.fleet.topic import (
    DEFAULT_PARTITIONS,
    FleetRecord,
    FleetTopicError,
    ensure_fleet_topic,
    fleet_topic_spec,
    partition_of,
    put_camera,
    read_fleet,
    topic_exists,
)

__all__ = [
    "DEFAULT_PARTITIONS",
    "DEFAULT_SESSION_TIMEOUT_S",
    "FleetChanges",
    "FleetMember",
    "FleetRecord",
    "FleetTopicError",
    "apply_changes",
    "camera_from_record",
    "check_camera",
    "encode_camera",
    "ensure_fleet_topic",
    "fleet_topic_spec",
    "partition_of",
    "put_camera",
    "read_fleet",
    "topic_exists",
]
