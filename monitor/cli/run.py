"""``fqm run SOURCE...``: the monitoring service (monitor.service) on files, URLs, devices."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from monitor.cli.options import WEIGHTS_ENV, parse_bootstrap_option, weights_option

RANDOM_WARNING = (
    "WARNING: no DSL-FIQA weights (--weights or ${env}): scoring with {note}. Scores are "
    "MEANINGLESS until the shipped model lands; events say so in quality.variant ({variant})."
)


def _progress_line(sid: str, p) -> str:
    best = "-" if p.best_score is None else f"{p.best_score:.3f}"
    return (
        f"{sid}: frames {p.frames}, faces {p.faces_seen} (scored {p.faces_scored}), "
        f"tracks {p.tracks}, best {best}"
    )


@click.command("run")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("fqm-out"),
    show_default=True,
    help="Output folder: JSONL events and crops (with Kafka: the spool).",
)
@weights_option(f"DSL-FIQA weights folder [env: {WEIGHTS_ENV}]; without: random weights.")
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
    help="Model variant; without weights, the random model's shape "
    "(dslfiqa-tiny: a testing aid, fast and meaningless).",
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
    "--shutdown-deadline",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to drain and flush on SIGTERM/SIGINT or at the end.",
)
def run_cli(
    sources: tuple[str, ...],
    out: Path,
    weights: Path | None,
    backend: str,
    mode: str,
    variant: str | None,
    kafka_bootstrap,
    topics_prefix: str | None,
    topic_replication: int,
    max_frames: int | None,
    shutdown_deadline: float,
) -> None:
    """Monitor face quality on SOURCE... (files, rtsp:// or http(s):// URLs, /dev/videoN).

    Writes events to OUT as JSONL files (crops as JPEG), or to Kafka with --kafka-bootstrap.
    SIGTERM or Ctrl-C stops the sources, drains the engine and flushes the sink; exit 0.
    """
    from monitor.events import Topics
    from monitor.service import Service, ServiceConfig

    topics = Topics() if topics_prefix is None else Topics.prefixed(topics_prefix)
    config = ServiceConfig(
        sources=sources,
        out=out,
        weights=weights,
        backend=backend,
        mode=mode,
        variant=variant,
        kafka=kafka_bootstrap,
        topics=topics,
        replication=topic_replication,
        max_frames=max_frames,
    )
    service = Service(config)
    stop = {"asked": False}

    def on_signal(signum, _frame) -> None:
        stop["asked"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        label = service.label
        if label is not None and label.random_weights:
            click.echo(
                RANDOM_WARNING.format(env=WEIGHTS_ENV, note=label.weights, variant=label.variant),
                err=True,
            )
        last = 0.0
        while service.running and not stop["asked"]:
            time.sleep(0.1)
            now = time.monotonic()
            if now - last >= 1.0:
                last = now
                for sid, p in service.progress():
                    if not p.done:
                        click.echo(_progress_line(sid, p), err=True)
        if stop["asked"]:
            click.echo("stopping: draining the engine and flushing the sink ...", err=True)
        summary = service.close(shutdown_deadline)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
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
    if not summary.clean:
        raise click.ClickException("the shutdown deadline passed before everything was flushed")
