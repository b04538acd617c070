"""``fqm run --config``: the fleet file (pydantic models), its loader and the reload diff.

``load_fleet(path)`` reads YAML, expands ``${VAR}`` / ``${VAR:-default}`` and validates,
raising one :class:`ConfigError` that lists every problem with its field and line.
``fleet_plan`` turns a fleet into what the service runs; ``diff_cameras`` says which
cameras a SIGHUP reload starts, stops or restarts. The schema is in docs/config.md.
"""

from monitor.config.errors import ConfigError, Problem
from monitor.config.load import camera_from_json, load_fleet, parse_fleet
from monitor.config.model import (
    CAMERA_ID,
    CAMERA_ID_RULE,
    BatchConfig,
    CameraConfig,
    EngineConfig,
    FleetConfig,
    JsonlSinkConfig,
    KafkaSinkConfig,
    MetricsConfig,
    check_camera_id,
)
from monitor.config.plan import (
    CameraDiff,
    FleetPlan,
    ProcessSettings,
    StreamPlan,
    changed_settings,
    diff_cameras,
    fleet_plan,
    process_settings,
    stream_plan,
)
from monitor.config.summary import describe, summary_lines

__all__ = [
    "CAMERA_ID",
    "CAMERA_ID_RULE",
    "BatchConfig",
    "CameraConfig",
    "CameraDiff",
    "ConfigError",
    "EngineConfig",
    "FleetConfig",
    "FleetPlan",
    "JsonlSinkConfig",
    "KafkaSinkConfig",
    "MetricsConfig",
    "Problem",
    "ProcessSettings",
    "StreamPlan",
    "camera_from_json",
    "changed_settings",
    "check_camera_id",
    "describe",
    "diff_cameras",
    "fleet_plan",
    "load_fleet",
    "parse_fleet",
    "process_settings",
    "stream_plan",
    "summary_lines",
]
