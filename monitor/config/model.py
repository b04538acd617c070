"""The fleet file's schema: pydantic models that forbid unknown fields and do no I/O.

A ``FleetConfig`` is everything ``fqm run --config`` needs: the model, the sink, the shared
batcher, metrics, and the cameras by id. Each ``CameraConfig`` stands alone (a later issue
keeps each camera as a compacted Kafka record keyed by its id), so it round-trips through
``model_dump_json`` / ``model_validate_json`` by itself.

Relative paths written in a file (``out``, ``model.weights``, a file source) are resolved
against the file's folder when the loader passes ``context={"base_dir": folder}``.
Secrets never show: ``repr`` masks a camera source's password, the SASL password is a
``SecretStr``, and validation errors hide their input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engines.dslfiqa.constants import CropMode
from engines.dslfiqa.variants import list_variants
from monitor.kafka_bootstrap import Bootstrap, BootstrapError, parse_bootstrap
from pipelines.urls import SourceKind, mask_url, source_kind

#: The only version of the file format so far.
CONFIG_VERSION = 1
#: A camera id: the Kafka record key of its events and config, and a folder name.
CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CAMERA_ID_RULE = "1-64 characters of a-z 0-9 . _ -, starting with a letter or digit"
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{1,240}$")
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]+)?)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Backend = Literal["torch", "auto", "onnxruntime", "tensorrt"]


class _Model(BaseModel):
    # hide_input_in_errors: a ValidationError printed by anyone never shows a password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _resolve(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    base = (info.context or {}).get("base_dir")
    return path if base is None or path.is_absolute() else Path(base) / path


def check_camera_id(value: object) -> str:
    """A valid camera id, or ``ValueError`` saying which characters are allowed."""
    if isinstance(value, bool) or not isinstance(value, str):
        kind = "a boolean" if isinstance(value, bool) else "a number"
        raise ValueError(f"camera id {value!r} is {kind} in YAML: quote it")
    if not CAMERA_ID.match(value):
        raise ValueError(f"camera id {value!r} is not {CAMERA_ID_RULE}")
    return value


CameraId = Annotated[str, BeforeValidator(check_camera_id)]


def _live(value: object) -> object:
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "auto":
            return "auto"
        if word in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return word in ("true", "yes", "on", "1")
    if isinstance(value, bool):
        return value
    raise ValueError("live must be auto, true or false")


class CameraConfig(_Model):
    """One camera: where to read it and how to score it."""

    source: str = Field(
        min_length=1,
        max_length=4096,
        description="file path, rtsp:// or http(s):// URL, or /dev/videoN",
    )
    live: Annotated[Literal["auto"] | bool, BeforeValidator(_live)] = Field(
        "auto",
        description="auto: streams and devices are live, files are not. Live sources drop "
        "frames and faces when behind; files are read completely",
    )
    enabled: bool = Field(True, description="false keeps the camera in the file but not running")
    max_frames: int | None = Field(None, ge=1, description="stop the camera after this many frames")
    analyse_fps: float | None = Field(
        None,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="frames per second the face stage analyses (decoding still reads every "
        "frame); unset: every frame",
    )
    min_face_size: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="faces smaller than this (pixels, the box's shorter side) are never "
        "scored; unset: the policy's default (32)",
    )
    rescore_interval_s: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="least seconds between two routine scores of a track; unset: the "
        "policy's default (1.0)",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value or _CONTROL.search(value):
            raise ValueError("a source must be one line of text (a path, URL or device)")
        if source_kind(value) is SourceKind.FILE and "://" not in value:
            return str(_resolve(Path(value), info))
        return value

    @property
    def is_live(self) -> bool:
        """``live`` with ``auto`` decided by the source's kind."""
        return source_kind(self.source).is_live if self.live == "auto" else bool(self.live)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "source" else value


class EngineConfig(_Model):
    """The quality model (``model:`` in the file)."""

    weights: Path | None = Field(
        None, description="DSL-FIQA weights folder; unset: $FQM_WEIGHTS, else random weights"
    )
    variant: str | None = Field(
        None, description="model variant; without weights, the random model's shape"
    )
    backend: Backend = Field("torch", description="quality engine runtime")
    mode: CropMode = Field("center", description="crops per face")
    device: str = Field("cpu", description="torch device: cpu, cuda or cuda:N")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve(value, info)

    @field_validator("variant")
    @classmethod
    def _variant(cls, value: str | None) -> str | None:
        if value is not None and value not in list_variants():
            raise ValueError(f"unknown variant {value!r}; use one of {', '.join(list_variants())}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device {value!r}: use cpu, cuda or cuda:N")
        return value


class JsonlSinkConfig(_Model):
    """Events as JSONL files (crops as JPEG) in ``out``."""

    type: Literal["jsonl"] = "jsonl"


class KafkaSinkConfig(_Model):
    """Events to Kafka; the disk spool in ``out/spool``.

    SASL credentials may be given in ``bootstrap`` (``SASL_SSL://user:pw@host:9093``) or,
    better for passwords with ``@`` or ``,``, as ``username`` / ``password``; either way
    the model keeps the password only as a ``SecretStr``.
    """

    type: Literal["kafka"]
    bootstrap: str = Field(
        description="HOST:PORT[,HOST:PORT...], optionally SASL_SSL:// (or SSL://, "
        "SASL_PLAINTEXT://) in front"
    )
    username: str | None = Field(None, min_length=1, description="SASL PLAIN user")
    password: SecretStr | None = Field(None, description="SASL PLAIN password")
    topics_prefix: str | None = Field(
        None, description="topics <prefix>.faces, .best, .tracks, .status, .crops; unset: fqm.*"
    )
    replication: int = Field(
        1, ge=1, le=32, description="replication factor of the topics fqm creates (3 in production)"
    )

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_bootstrap(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("bootstrap"), str):
            return data
        try:
            parsed = parse_bootstrap(data["bootstrap"])
        except BootstrapError:
            return data  # the field's validator reports it, at its own path
        if parsed.username is None:
            return data
        if data.get("username") is not None or data.get("password") is not None:
            raise ValueError(
                "SASL credentials given twice: in bootstrap and in username/password; keep one"
            )
        plain = Bootstrap(parsed.servers, parsed.security_protocol)
        return {**data, "bootstrap": str(plain), "username": parsed.username,
                "password": parsed.password}  # fmt: skip

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        try:
            parsed = parse_bootstrap(value)
        except BootstrapError as exc:
            if "@" in value:  # a password with ',' or ':' would be split and quoted in part
                raise ValueError(
                    "cannot read the servers of a bootstrap with credentials in it; give the "
                    "servers here and the SASL credentials as username and password"
                ) from None
            raise ValueError(str(exc)) from None
        return str(Bootstrap(parsed.servers, parsed.security_protocol))

    @field_validator("topics_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC_PREFIX.match(value):
            raise ValueError("a topics prefix is 1-240 of A-Z a-z 0-9 . _ -")
        return value

    @model_validator(mode="after")
    def _sasl(self) -> KafkaSinkConfig:
        protocol = parse_bootstrap(self.bootstrap).security_protocol
        if (self.username is None) != (self.password is None):
            raise ValueError("SASL needs both username and password")
        if self.username is not None and not protocol.startswith("SASL"):
            raise ValueError(
                "username/password need a SASL protocol: write bootstrap: SASL_SSL://HOST:PORT"
            )
        return self

    def to_bootstrap(self) -> Bootstrap:
        """The client's :class:`Bootstrap`, password included (``str()`` masks it)."""
        parsed = parse_bootstrap(self.bootstrap)
        password = None if self.password is None else self.password.get_secret_value()
        return Bootstrap(parsed.servers, parsed.security_protocol, self.username, password)


SinkConfig = Annotated[JsonlSinkConfig | KafkaSinkConfig, Field(discriminator="type")]


class BatchConfig(_Model):
    """The shared micro-batcher in front of the engine (``engines.batcher.BatcherConfig``)."""

    max_batch: int = Field(8, ge=1, le=1024, description="faces per engine call")
    max_queue: int = Field(
        64, ge=1, le=65536, description="faces waiting at most; live cameras drop faces beyond"
    )
    max_wait_ms: float = Field(
        10.0,
        ge=0,
        le=10_000,
        allow_inf_nan=False,
        description="a batch starts when its oldest face has waited this long",
    )

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> BatchConfig:
        if self.max_queue < self.max_batch:
            raise ValueError(
                f"max_queue ({self.max_queue}) must be >= max_batch ({self.max_batch}), or "
                "batches could never fill"
            )
        return self


class MetricsConfig(_Model):
    """The Prometheus endpoint (``/metrics``)."""

    enabled: bool = Field(True, description="serve /metrics")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9.:_\[\]-]+$",
        description="address to listen on; 0.0.0.0 in a container",
    )
    port: int = Field(9108, ge=0, le=65535, description="TCP port; 0 picks a free one")


def _version(value: object) -> object:
    if value != CONFIG_VERSION or isinstance(value, bool):
        raise ValueError(f"version {value!r} is not supported; this fqm reads version 1")
    return value


class FleetConfig(_Model):
    """A whole ``fqm run --config`` file."""

    version: Annotated[int, BeforeValidator(_version)] = Field(
        CONFIG_VERSION, description="format version of the file"
    )
    producer: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="names this process in every event; unset: host:pid",
    )
    out: Path = Field(Path("fqm-out"), description="JSONL events and crops; with Kafka, the spool")
    model: EngineConfig = Field(default_factory=EngineConfig, description="the quality model")
    sink: SinkConfig = Field(default_factory=JsonlSinkConfig, description="where events go")
    batch: BatchConfig = Field(default_factory=BatchConfig, description="the shared batcher")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus")
    torch_threads: int | None = Field(
        1,
        ge=1,
        le=256,
        description="torch intra-op threads of the process; null: torch's default",
    )
    shutdown_deadline_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds to drain and flush on SIGTERM/SIGINT",
    )
    cameras: dict[CameraId, CameraConfig] = Field(min_length=1, description="camera id -> camera")

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any) -> Any:
        # Top-level x-* keys are the file's own (YAML anchors for camera templates).
        if isinstance(data, dict):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))
            }
        return data

    @field_validator("out")
    @classmethod
    def _out(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("producer")
    @classmethod
    def _producer(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or _CONTROL.search(value)):
            raise ValueError("a producer name is one line of visible text")
        return value

    def enabled_cameras(self) -> dict[str, CameraConfig]:
        """The cameras that run, by id, in file order."""
        return {cid: cam for cid, cam in self.cameras.items() if cam.enabled}
