"""``fqm cameras add|remove|list``: the camera fleet kept as a compacted Kafka topic.

Each camera is one record: key its id, value its config as JSON with ``${VAR}`` left as
written (secrets stay in each ``fqm run --fleet`` process's environment). Removing a camera
writes a tombstone. ``fqm run --fleet TOPIC --group GROUP`` processes share the cameras by
partition (docs/scale-out.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.cli.options import json_option, parse_bootstrap_option
from pipelines.urls import mask_url

DEFAULT_TOPIC = "fqm.cameras"


def _common(f):
    f = click.option(
        "--topic",
        envvar="FQM_FLEET_TOPIC",
        default=DEFAULT_TOPIC,
        show_default=True,
        help="The fleet topic. [env: FQM_FLEET_TOPIC]",
    )(f)
    return click.option(
        "--kafka-bootstrap",
        envvar="FQM_KAFKA_BOOTSTRAP",
        callback=parse_bootstrap_option,
        required=True,
        help="The Kafka cluster (never printed unmasked). [env: FQM_KAFKA_BOOTSTRAP]",
    )(f)


def _fail(exc: Exception):
    """The fleet library's errors as one line (the root group prints it, exit 1)."""
    return click.ClickException(mask_url(str(exc)))


@click.group("cameras")
def cameras_cli() -> None:
    """The camera fleet on a compacted Kafka topic (fqm run --fleet runs it)."""


@cameras_cli.command("add")
@click.argument("camera_id", metavar="ID")
@click.argument("source")
@_common
@click.option(
    "--live",
    type=click.Choice(["auto", "true", "false"]),
    default="auto",
    show_default=True,
    help="auto: streams and devices are live, files are not.",
)
@click.option("--disabled", is_flag=True, help="Keep the camera in the fleet without running it.")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after N frames.")
@click.option(
    "--analyse-fps",
    type=click.FloatRange(0, 1000, min_open=True),
    default=None,
    help="Frames per second the face stage analyses (default: the process's, else all).",
)
@click.option("--min-face-size", type=click.FloatRange(0), default=None, help="Pixels.")
@click.option("--rescore-interval", type=click.FloatRange(0), default=None, help="Seconds.")
@click.option(
    "--partitions",
    type=click.IntRange(1, 10000),
    default=None,
    help="Partitions of the topic when this creates it [default: 12]: the most processes "
    "that can share the fleet. An existing topic keeps its own.",
)
@click.option(
    "--replication",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Replication factor when this creates the topic (3 in production).",
)
def add_cli(
    camera_id: str,
    source: str,
    topic: str,
    kafka_bootstrap,
    live: str,
    disabled: bool,
    max_frames: int | None,
    analyse_fps: float | None,
    min_face_size: float | None,
    rescore_interval: float | None,
    partitions: int | None,
    replication: int,
) -> None:
    """Add or replace camera ID reading SOURCE (a path, rtsp:// or http(s):// URL,
    /dev/videoN). Write secrets as ${VAR} (quote it from the shell): the record keeps the
    reference, each fqm run process expands it from its own environment. A relative file
    path is made absolute here; the file must exist at that path on every host."""
    from monitor.fleet import (
        DEFAULT_PARTITIONS,
        FleetTopicError,
        check_camera,
        encode_camera,
        ensure_fleet_topic,
        put_camera,
    )

    data: dict[str, object] = {"source": source}
    if live != "auto":
        data["live"] = live == "true"
    knobs = {
        "enabled": not disabled,
        "max_frames": max_frames,
        "analyse_fps": analyse_fps,
        "min_face_size": min_face_size,
        "rescore_interval_s": rescore_interval,
    }
    data |= {k: v for k, v in knobs.items() if v is not None}
    camera = check_camera(camera_id, data, Path.cwd())
    try:
        created = ensure_fleet_topic(
            kafka_bootstrap, topic, partitions or DEFAULT_PARTITIONS, replication
        )
        partition = put_camera(kafka_bootstrap, topic, camera_id, encode_camera(camera))
    except FleetTopicError as exc:
        raise _fail(exc) from exc
    made = f" (created {topic} with {partitions or DEFAULT_PARTITIONS} partitions)"
    click.echo(
        f"camera {camera_id}: {mask_url(camera.source)} -> {topic} partition "
        f"{partition}{made if created else ''}"
    )


@cameras_cli.command("remove")
@click.argument("camera_id", metavar="ID")
@_common
def remove_cli(camera_id: str, topic: str, kafka_bootstrap) -> None:
    """Remove camera ID: a tombstone record; the process running it stops it."""
    from monitor.config import check_camera_id
    from monitor.fleet import FleetTopicError, put_camera, read_fleet

    try:
        check_camera_id(camera_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
    try:
        _, cameras = read_fleet(kafka_bootstrap, topic)
        partition = put_camera(kafka_bootstrap, topic, camera_id, None)
    except FleetTopicError as exc:
        raise _fail(exc) from exc
    note = "" if camera_id in cameras else " (it was not in the fleet)"
    click.echo(f"camera {camera_id}: removed from {topic} partition {partition}{note}")


@cameras_cli.command("list")
@_common
@json_option
def list_cli(topic: str, kafka_bootstrap, as_json: bool) -> None:
    """The cameras of the fleet: id, partition, live, enabled, source (passwords masked;
    ${VAR} references as written)."""
    from monitor.config import ConfigError, camera_from_json
    from monitor.fleet import FleetTopicError, read_fleet

    try:
        partitions, records = read_fleet(kafka_bootstrap, topic)
    except FleetTopicError as exc:
        raise _fail(exc) from exc
    rows = []
    for cid, rec in records.items():
        row: dict[str, object] = {"id": cid, "partition": rec.partition}
        try:
            camera = camera_from_json(cid, rec.value)
        except ConfigError as exc:
            row |= {"error": exc.lines()}
        else:
            row |= {
                "source": mask_url(camera.source),
                "live": camera.live,
                "enabled": camera.enabled,
                **camera.model_dump(exclude={"source", "live", "enabled"}, exclude_none=True),
            }
        rows.append(row)
    if as_json:
        click.echo(json.dumps({"topic": topic, "partitions": partitions, "cameras": rows}))
        return
    click.echo(f"{topic}: {len(rows)} cameras on {partitions} partitions")
    for row in rows:
        if "error" in row:
            click.echo(f"  {row['id']:<20} p{row['partition']:<4} INVALID: {row['error']}")
            continue
        extra = " ".join(
            f"{k}={row[k]}"
            for k in ("max_frames", "analyse_fps", "min_face_size", "rescore_interval_s")
            if k in row
        )
        state = "" if row["enabled"] else " DISABLED"
        click.echo(
            f"  {row['id']:<20} p{row['partition']:<4} {row['source']}  (live {row['live']})"
            f"{' ' + extra if extra else ''}{state}"
        )
