"""``fqm doctor``: the checks of :mod:`monitor.doctor` as a table or JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from monitor import __version__
from monitor.cli.options import json_option, parse_bootstrap_option


@click.command("doctor")
@click.option(
    "--kafka-bootstrap",
    envvar="FQM_KAFKA_BOOTSTRAP",
    metavar="[PROTOCOL://[USER:PASSWORD@]]HOST:PORT[,...]",
    callback=parse_bootstrap_option,
    help="Also check that these Kafka brokers answer. [env: FQM_KAFKA_BOOTSTRAP]",
)
@click.option(
    "--kafka-timeout",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long the brokers get to answer.",
)
@json_option
def doctor_cli(kafka_bootstrap, kafka_timeout: float, as_json: bool) -> None:
    """Report which parts of fqm are usable here, with the reason for each that is not.

    Exits 1 when a required part (PyAV, MediaPipe and its model files, PyTorch, ONNX Runtime,
    kafka-python, and the Kafka broker when one is configured) is unusable; optional parts
    (GStreamer, CUDA, TensorRT, ffmpeg CLI) are reported but do not fail.
    """
    from monitor.doctor import format_table, run_checks

    results = run_checks(kafka_bootstrap, kafka_timeout)
    if as_json:
        payload = {"fqm": __version__, "checks": [asdict(c) for c in results]}
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"fqm {__version__}")
        click.echo(format_table(results))
    if any(c.required and not c.ok for c in results):
        sys.exit(1)
