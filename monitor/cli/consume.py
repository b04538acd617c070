"""``fqm consume``: read fqm's events back from Kafka or a JSONL folder, live.

The reading lives in :mod:`monitor.delivery.consumer`, the mirroring (``--to-dir``) and the
end-of-run rule (``--until-down``) in :mod:`monitor.delivery.mirror`; this module only shows
it: a compact table of streams, tracks and best scores re-printed when it changes (at most
every ``--refresh`` seconds), or one JSON object per event with ``--json``.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import click

from monitor.cli.options import json_option, parse_bootstrap_option


@click.command("consume")
@click.option(
    "--bootstrap",
    callback=parse_bootstrap_option,
    metavar="HOST:PORT",
    help="Kafka bootstrap servers (SASL_SSL://user:password@host:port allowed; never printed).",
)
@click.option("--group", metavar="G", help="Consumer group (offsets committed) [default: none].")
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the oldest kept record where no offset is committed [default: the end].",
)
@click.option(
    "--from-dir",
    type=click.Path(path_type=Path),
    metavar="OUT",
    help="Read a JSONL sink's folder instead of Kafka.",
)
@click.option("--follow", is_flag=True, help="With --from-dir: keep reading what is appended.")
@click.option(
    "--topics-prefix",
    metavar="P",
    help="Topics P.faces, P.best, P.tracks, P.status, P.crops [default: fqm.*].",
)
@click.option("--max-events", type=click.IntRange(min=1), help="Stop after this many (new) events.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between table re-prints (only when something changed).",
)
@click.option(
    "--to-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Also write the events and crops to DIR as fqm run --out does (for fqm report).",
)
@click.option(
    "--until-down",
    is_flag=True,
    help="Stop once every stream seen reported stream_status down and nothing arrived "
    "for --idle seconds (the end of a run).",
)
@click.option(
    "--idle",
    "idle_s",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="With --until-down: seconds without any record before stopping.",
)
@click.option(
    "--stream",
    "streams",
    multiple=True,
    metavar="ID",
    help="With --until-down: wait for this stream to be down too, even if not seen yet "
    "(repeatable).",
)
@json_option
def consume_cli(
    bootstrap,
    group: str | None,
    from_beginning: bool,
    from_dir: Path | None,
    follow: bool,
    topics_prefix: str | None,
    max_events: int | None,
    timeout_s: float | None,
    refresh: float,
    to_dir: Path | None,
    until_down: bool,
    idle_s: float,
    streams: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show fqm's events: a live table of streams, tracks and best scores, or JSON lines.

    Give --bootstrap (Kafka) or --from-dir (a JSONL sink's folder). Events redelivered
    (same event id) are shown once. Without --max-events, --timeout or --until-down, Kafka
    and --follow run until Ctrl-C; a folder without --follow stops at its end.

    With --to-dir DIR the events (each exactly as received) and the crops of the best
    frames are written to DIR in the layout of fqm run --out, so fqm report DIR works on a
    run that published to Kafka; no table is printed, and a summary line (events, crops,
    duplicates, crops missing) goes to stderr at the end. Run again on DIR, it writes only
    what is not there yet.
    """
    from monitor.delivery.consumer import EventConsumer
    from monitor.delivery.mirror import AllDown, Mirror
    from monitor.events import DEFAULT_TOPICS, Topics, to_dict

    if (bootstrap is None) == (from_dir is None):
        raise click.UsageError("give exactly one of --bootstrap and --from-dir")
    if from_dir is None and follow:
        raise click.UsageError("--follow is for --from-dir; Kafka is always followed")
    if from_dir is not None and (group or from_beginning):
        raise click.UsageError("--group and --from-beginning are for --bootstrap")
    if not until_down and streams:
        raise click.UsageError("--stream is for --until-down")
    if to_dir is not None and from_dir is not None and to_dir.resolve() == from_dir.resolve():
        raise click.UsageError("--to-dir must be another folder than --from-dir")
    try:
        topics = DEFAULT_TOPICS if topics_prefix is None else Topics.prefixed(topics_prefix)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--topics-prefix") from exc

    if from_dir is not None:
        consumer = EventConsumer.from_dir(from_dir, topics, follow=follow)
    else:
        consumer = EventConsumer.from_kafka(bootstrap, topics, group, from_beginning)
    rule = AllDown(idle_s, streams) if until_down else None
    until = None if rule is None else (lambda: rule.reached(consumer))
    table = not as_json and to_dir is None
    shown_at, changed = time.monotonic(), False  # the first table after --refresh s
    mirroring = nullcontext() if to_dir is None else Mirror(consumer, to_dir, topics)
    with consumer, mirroring as mirror:
        try:
            for message, event in consumer.records(max_events, timeout_s, until):
                if mirror is not None:
                    mirror.apply(message, event)
                if event is None:
                    continue
                if rule is not None:
                    rule.observe(event)
                if as_json:
                    click.echo(json.dumps(to_dict(event), ensure_ascii=False))
                    continue
                changed = True
                if table and time.monotonic() - shown_at >= refresh:
                    click.echo(format_table(consumer))
                    shown_at, changed = time.monotonic(), False
        except KeyboardInterrupt:
            pass
        if table and (changed or consumer.stats().events == 0):
            click.echo(format_table(consumer))
        if rule is not None and not rule.all_down():
            waiting = {s: state for s, state in rule.streams.items() if state != "down"}
            click.echo(
                "stopped before every stream reported down: "
                + (
                    ", ".join(f"{s} {state or 'no status'}" for s, state in waiting.items())
                    or "no stream seen"
                ),
                err=True,
            )
        if mirror is not None:
            click.echo(mirror.summary(), err=True)


def format_table(consumer) -> str:
    """The consumer's streams as a compact text table: status, tracks, best 3 scores."""
    from monitor.delivery.consumer import EventConsumer

    assert isinstance(consumer, EventConsumer)
    s = consumer.stats()
    lines = [
        f"-- {time.strftime('%H:%M:%S')}  events {s.events}  duplicates {s.duplicates}  "
        f"crops {s.crops}  unreadable {sum(s.invalid.values())}",
        f"{'stream':<24} {'state':<12} {'fps':>6} {'tracks':>6} {'ended':>5}  best (track:score)",
    ]
    for stream in consumer.best.streams:
        status = consumer.best.status(stream)
        faces = consumer.best.best(stream).values()
        top = consumer.best.top(stream, 3)
        fps = "" if status is None or status.fps is None else f"{status.fps:.1f}"
        lines.append(
            f"{stream[:24]:<24} {status.state if status else '-':<12} {fps:>6} "
            f"{len(faces):>6} {sum(f.ended for f in faces):>5}  "
            + "  ".join(f"{f.track_id}:{f.score:.3f}" for f in top)
        )
    if len(lines) == 2:
        lines.append("(no tracks or stream status yet)")
    return "\n".join(lines)
