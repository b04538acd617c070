"""``fqm validate-config FILE``: check a fleet file without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.cli.options import json_option


@click.command("validate-config")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@json_option
def validate_config_cli(file: Path, as_json: bool) -> None:
    """Check the fleet file FILE (the YAML of `fqm run --config`).

    Reads it as `fqm run` would: ${VAR} and ${VAR:-default} from the environment, relative
    paths from FILE's folder. Valid: prints the cameras (passwords masked), the sink and the
    model, and exits 0. Invalid: lists every problem as FILE:LINE: field: message, exit 1.
    """
    from monitor.config import ConfigError, describe, load_fleet, summary_lines

    if not as_json:
        fleet = load_fleet(file)  # a ConfigError is printed by the error boundary
        for line in summary_lines(fleet, str(file)):
            click.echo(line)
        return
    try:
        fleet = load_fleet(file)
    except ConfigError as exc:
        report = {"file": str(file), "valid": False, "problems": exc.records()}
        click.echo(json.dumps(report, indent=2))
        click.get_current_context().exit(1)
    click.echo(json.dumps({"file": str(file), "valid": True, **describe(fleet)}, indent=2))
