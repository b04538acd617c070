"""Options shared by several commands, each defined once.

``--device`` is checked while the command line is parsed (before any model loads), so a
typo or a missing GPU costs no waiting.
"""

from __future__ import annotations

from pathlib import Path

import click

from engines.dslfiqa.constants import CROP_MODES

# engines.weights.WEIGHTS_ENV, repeated so that `fqm --help` need not import torch.
WEIGHTS_ENV = "FQM_WEIGHTS"

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")

mode_option = click.option(
    "--mode",
    type=click.Choice(CROP_MODES),
    default="official",
    show_default=True,
    help="Crops per face: official (20 random, the paper's protocol), fixed5 (corners + "
    "centre) or center (1 crop, 20x cheaper). See docs/quality-modes.md.",
)


def weights_option(help_text: str) -> click.decorators.FC:
    """``--weights DIR``; ``help_text`` says what happens without it."""
    return click.option(
        "--weights",
        type=click.Path(path_type=Path),
        default=None,
        metavar="DIR",
        help=help_text,
    )


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from engines.weights import DeviceError, check_device

    try:
        check_device(value)
    except DeviceError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    return value


device_option = click.option(
    "--device",
    default="cpu",
    show_default=True,
    callback=_check_device,
    help="Torch device: cpu, cuda or cuda:N.",
)


def parse_bootstrap_option(ctx: click.Context, param: click.Parameter, value: str | None):
    """Callback for a Kafka bootstrap option: a parsed ``Bootstrap`` (None when unset); a bad
    string is a usage error that never echoes the credentials."""
    if value is None or not value.strip():
        return None
    from monitor.kafka_bootstrap import BootstrapError, parse_bootstrap

    try:
        return parse_bootstrap(value)
    except BootstrapError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
