"""``fqm run SOURCE...``: the monitoring service (monitor.service) on files, URLs, devices."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import click

from monitor.cli.options import WEIGHTS_ENV, parse_bootstrap_option, weights_option
from monitor.cli.progress import ProgressDisplay
from pipelines.urls import mask_url

log = logging.getLogger("fqm.run")

RANDOM_WARNING = (
    "WARNING: --variant without --weights (or ${env}): scoring with {note}. Scores are "
    "MEANINGLESS (a testing aid); events say so in quality.variant ({variant})."
)


@click.command("run")
@click.argument("sources", nargs=-1)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A fleet file (docs/config.md); SIGHUP reloads its cameras. Options given on the "
    "command line or in the environment override its settings.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("fqm-out"),
    show_default=True,
    help="Output folder: JSONL events and crops (with Kafka: the spool).",
)
@weights_option(
    f"DSL-FIQA weights folder [env: {WEIGHTS_ENV}]; default: the shipped dslfiqa-lite weights."
)
@click.option(
    "--backend",
    type=click.Choice(["torch", "auto", "onnxruntime", "tensorrt"]),
    default="torch",
    show_default=True,
    help="Quality engine backend (torch measured fastest on CPU hosts; auto picks).",
)
@click.option(
    "--mode",
    type=click.Choice(["center", "fixed5", "official"]),
    default="center",
    show_default=True,
    help="Crops per face (center: 1 crop).",
)
@click.option(
    "--variant",
    default=None,
    help="Model variant of --weights; without weights, a variant other than dslfiqa-lite "
    "scores with random weights of its shape (dslfiqa-tiny: a testing aid, fast and "
    "meaningless).",
)
@click.option(
    "--kafka-bootstrap",
    envvar="FQM_KAFKA_BOOTSTRAP",
    callback=parse_bootstrap_option,
    help="Publish to Kafka instead of files (never printed unmasked). [env: FQM_KAFKA_BOOTSTRAP]",
)
@click.option("--topics-prefix", default=None, help="Topic names <prefix>.faces, ... (fqm.*).")
@click.option(
    "--topic-replication",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Replication factor of the topics fqm creates (3 in production).",
)
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop each stream here.")
@click.option(
    "--analyse-fps",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Frames per second each stream's face stage sees; the rest are dropped after "
    "decoding (default: every frame).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="FQM_METRICS_PORT",
    default=None,
    help="Serve /metrics, /healthz and /readyz on this port (0: any free port; default: "
    "off, or the --config file's metrics section). [env: FQM_METRICS_PORT]",
)
@click.option(
    "--metrics-host",
    default=None,
    envvar="FQM_METRICS_HOST",
    help="Address the metrics server listens on [default: 127.0.0.1; 0.0.0.0 in a "
    "container]. [env: FQM_METRICS_HOST]",
)
@click.option(
    "--fleet",
    "fleet_topic",
    default=None,
    help="Run the cameras of this fleet topic (fqm cameras add) that the consumer group "
    "--group assigns to this process: partition ownership is camera ownership "
    "(docs/scale-out.md). Needs Kafka (--kafka-bootstrap or the --config sink).",
)
@click.option(
    "--group",
    "fleet_group",
    default=None,
    help="The consumer group the processes sharing a --fleet join [default: fqm-<topic>].",
)
@click.option(
    "--session-timeout",
    type=click.FloatRange(6, 1800),
    default=10.0,
    show_default=True,
    help="With --fleet: seconds after which a silent (dead) process's cameras move to the "
    "others. Lower: faster handover, more spurious moves on a stalled host.",
)
@click.option(
    "--producer",
    envvar="FQM_PRODUCER",
    default=None,
    help="Names this process in every event's producer (and to the fleet group) "
    "[default: host:pid, or the --config file's producer]. [env: FQM_PRODUCER]",
)
@click.option(
    "--shutdown-deadline",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to drain and flush on SIGTERM/SIGINT or at the end.",
)
def run_cli(
    sources: tuple[str, ...],
    config_file: Path | None,
    out: Path,
    weights: Path | None,
    backend: str,
    mode: str,
    variant: str | None,
    kafka_bootstrap,
    topics_prefix: str | None,
    topic_replication: int,
    max_frames: int | None,
    analyse_fps: float | None,
    metrics_port: int | None,
    metrics_host: str | None,
    fleet_topic: str | None,
    fleet_group: str | None,
    session_timeout: float,
    producer: str | None,
    shutdown_deadline: float,
) -> None:
    """Monitor face quality on SOURCE... (files, rtsp:// or http(s):// URLs, /dev/videoN)
    and/or the cameras of a --config fleet file.

    Writes events to OUT as JSONL files (crops as JPEG), or to Kafka with --kafka-bootstrap.
    SIGTERM or Ctrl-C stops the sources, drains the engine and flushes the sink; exit 0.
    SIGHUP re-reads --config and starts, stops or restarts only the cameras that changed.
    With --fleet TOPIC it runs the cameras of the topic's partitions the group gives it, and
    follows the topic and the group's rebalances until stopped.
    """
    from monitor.service import Service

    ctx = click.get_current_context()
    if not sources and config_file is None and fleet_topic is None:
        raise click.UsageError("give SOURCE..., --config FILE or --fleet TOPIC")
    config, fleet, deadline = build_config(ctx, sources, config_file)
    if fleet_topic is not None and config.kafka is None:
        raise click.UsageError(
            "--fleet needs Kafka: --kafka-bootstrap (or a kafka sink in --config)"
        )
    service = Service(config)
    server = start_observability(service, fleet, metrics_port, metrics_host)
    flags = {"stop": False, "reload": False}

    def on_stop(_signum, _frame) -> None:
        flags["stop"] = True

    def on_reload(_signum, _frame) -> None:
        flags["reload"] = True

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_reload}
    old = {s: signal.signal(s, h) for s, h in handlers.items()}
    display = None
    member = None
    try:
        service.start()
        label = service.label
        if label is not None and label.random_weights:
            click.echo(
                RANDOM_WARNING.format(env=WEIGHTS_ENV, note=label.weights, variant=label.variant),
                err=True,
            )
        display = ProgressDisplay(service.progress, _durations(service))
        if fleet_topic is not None:
            member = join_fleet(service, fleet_topic, fleet_group, session_timeout)
        while (member is not None or service.running) and not flags["stop"]:
            if member is None:
                time.sleep(0.1)
            else:
                follow_fleet(service, member, ctx.params, deadline)
            if flags["reload"]:
                flags["reload"] = False
                fleet = reload_fleet(service, config_file, fleet)
            service.supervise()
            service.beat()
            display.update()
        display.close()
        if flags["stop"]:
            click.echo("stopping: draining the engine and flushing the sink ...", err=True)
        summary = service.close(deadline)
        if member is not None:  # its cameras are stopped: only now may others start them
            member.close()
            member = None
    finally:
        if member is not None:
            member.close()
        if display is not None:
            display.close()
        if server is not None:
            server.close()
        for s, h in old.items():
            # A handler someone installed (a test harness) gets its signal back. The
            # default one is not restored: a second SIGTERM while the summary prints and
            # the interpreter exits (docker stop, then a supervisor's own) must not turn a
            # clean drain into death by signal; ours only sets a flag no one reads now.
            if callable(h):
                signal.signal(s, h)
    print_summary(summary)
    if not summary.clean:
        raise click.ClickException("the shutdown deadline passed before everything was flushed")


def build_config(ctx: click.Context, sources: tuple[str, ...], config_file: Path | None):
    """The service's config from the fleet file (if any) and the options; options given on
    the command line or in the environment win over the file. Returns (config, fleet,
    shutdown deadline)."""
    from monitor.config import fleet_plan, load_fleet
    from monitor.events import Topics
    from monitor.service import ServiceConfig

    p = ctx.params
    given = {
        name
        for name in p
        if ctx.get_parameter_source(name)
        in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    }
    topics = Topics() if p["topics_prefix"] is None else Topics.prefixed(p["topics_prefix"])
    cli_values = {
        "out": p["out"],
        "weights": p["weights"],
        "backend": p["backend"],
        "mode": p["mode"],
        "variant": p["variant"],
        "kafka": p["kafka_bootstrap"],
        "topics": topics,
        "replication": p["topic_replication"],
    }
    option_of = {"kafka": "kafka_bootstrap", "topics": "topics_prefix"}
    option_of["replication"] = "topic_replication"
    fleet = None
    deadline = p["shutdown_deadline"]
    if config_file is None:
        settings = cli_values
        streams = ()
    else:
        fleet = load_fleet(config_file)
        plan = fleet_plan(fleet)
        settings = plan.process.service_config_kwargs()
        for key, value in cli_values.items():
            if option_of.get(key, key) in given:
                settings[key] = value
        if "shutdown_deadline" not in given:
            deadline = plan.process.shutdown_deadline_s
        streams = plan.streams
    producer = p.get("producer")
    if producer is None and fleet is not None:
        producer = fleet.producer
    config = ServiceConfig(
        sources=sources,
        streams=streams,
        producer=producer,
        max_frames=p["max_frames"],
        analyse_fps=p["analyse_fps"],
        **settings,
    )
    return config, fleet, deadline


def join_fleet(service, topic: str, group: str | None, session_timeout_s: float):
    """The service's :class:`monitor.fleet.FleetMember`: the fleet topic made sure of
    (compacted, created with the default partitions if missing), then the group joined."""
    from monitor.events import default_producer
    from monitor.fleet import FleetMember, ensure_fleet_topic

    config = service.config
    ensure_fleet_topic(config.kafka, topic, replication=config.replication)
    group = group or f"fqm-{topic}"
    client_id = config.producer or default_producer()
    click.echo(
        f"fleet: following {topic} in group {group} as {client_id} (session timeout "
        f"{session_timeout_s:g} s)",
        err=True,
    )
    return FleetMember(
        config.kafka, topic, group, client_id=client_id, session_timeout_s=session_timeout_s
    )


def follow_fleet(service, member, params: dict, deadline: float) -> None:
    """One turn of the loop with a fleet: read the topic and the rebalances for 0.1 s,
    stop the cameras this process lost or that were removed, start the ones it gained.
    --analyse-fps and --max-frames apply to cameras that do not set their own."""
    from kafka import errors as kafka_errors

    from monitor.fleet import apply_changes

    try:
        changes = member.poll(0.1)
    except kafka_errors.KafkaError as exc:  # the client retries; the cameras keep running
        log.warning("fleet: %s", mask_url(str(exc)))
        time.sleep(0.1)
        return
    failed = apply_changes(
        service,
        changes,
        stop_deadline_s=min(deadline, 30.0),
        analyse_fps=params.get("analyse_fps"),
        max_frames=params.get("max_frames"),
    )
    member.not_started(failed)


def start_observability(service, fleet, port: int | None, host: str | None):
    """The /metrics, /healthz and /readyz server when asked for (the option, else the fleet
    file's ``metrics`` section); ``None`` otherwise. The service reports to its metrics."""
    if port is None and fleet is not None and fleet.metrics.enabled:
        port = fleet.metrics.port
        host = host or fleet.metrics.host
    if port is None:
        return None
    from monitor.service.endpoints import ObservabilityServer
    from monitor.service.metrics import ServiceMetrics

    metrics = ServiceMetrics(service.snapshot)
    service.observer = metrics
    server = ObservabilityServer(metrics, service.snapshot, host=host or "127.0.0.1", port=port)
    server.start()
    click.echo(f"metrics and health on {server.url} (/metrics, /healthz, /readyz)", err=True)
    return server


def reload_fleet(service, config_file: Path | None, fleet):
    """SIGHUP: re-read the fleet file and start, stop or restart only the cameras that
    changed. A file that does not validate changes nothing (its problems are logged)."""
    from monitor.config import ConfigError, changed_settings, diff_cameras, load_fleet, stream_plan

    if config_file is None or fleet is None:
        log.warning("SIGHUP: no --config file to reload")
        return fleet
    try:
        new = load_fleet(config_file)
    except ConfigError as exc:
        log.error("SIGHUP: %s stays in force:\n%s", config_file, "\n".join(exc.lines()))
        return fleet
    diff = diff_cameras(fleet, new)
    for sid in diff.to_stop:
        service.remove_stream(sid)
    for sid in diff.to_start:
        try:
            service.add_stream(stream_plan(sid, new.cameras[sid]))
        except Exception as exc:  # one bad camera must not stop the reload of the others
            log.error("SIGHUP: camera %s not started: %s", sid, mask_url(str(exc)))
    log.warning(
        "SIGHUP: reloaded %s: added %s, removed %s, restarted %s",
        config_file,
        list(diff.added),
        list(diff.removed),
        list(diff.changed),
    )
    restart = changed_settings(fleet, new)
    if restart:
        log.warning("SIGHUP: %s changed; they apply after a restart", ", ".join(restart))
    return new


def _durations(service) -> dict[str, float | None]:
    from pipelines.probe import video_duration_s

    return {
        sid: None if plan.live else video_duration_s(plan.location)
        for sid, plan in service.plans().items()
    }


def print_summary(summary) -> None:
    for s in summary.streams:
        best = "-" if s.best_score is None else f"{s.best_score:.3f}"
        err = f", error: {s.error}" if s.error else ""
        click.echo(
            f"{s.stream_id}: {s.frames} frames, {s.faces_seen} faces seen, {s.faces_scored} "
            f"scored, {s.tracks} tracks, best {best}, events {s.events}{err}",
            err=True,
        )
    fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    click.echo(
        f"{len(summary.streams)} streams, {summary.frames} frames in {summary.seconds:.1f} s "
        f"({fps:.1f} frames/s); {summary.events_written} events and {summary.crops_written} "
        f"crops written to {summary.where}; model {summary.model.variant} "
        f"({summary.model.backend}, {summary.model.mode})",
        err=True,
    )
