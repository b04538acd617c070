"""The ``fqm`` command line: one root group, one module per command group.

The root group is the error boundary (:mod:`monitor.cli.errors`): subcommands raise the
library's own exceptions and never print tracebacks themselves.
"""

from __future__ import annotations

import contextlib
import logging

import click

from monitor import __version__
from monitor.cli.assets import assets_cli
from monitor.cli.bench import bench_cli
from monitor.cli.cameras import cameras_cli
from monitor.cli.config import validate_config_cli
from monitor.cli.consume import consume_cli
from monitor.cli.doctor import doctor_cli
from monitor.cli.engines import engines_cli
from monitor.cli.errors import translate
from monitor.cli.report import report_cli
from monitor.cli.run import run_cli
from monitor.cli.score import eval_cli, score_cli
from monitor.cli.train import train_cli


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises nothing more."""
    import os
    import sys

    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class FqmGroup(click.Group):
    """A group whose subcommands' expected failures print one masked line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # the reader went away (`fqm ... | head`): stop quietly
            _silence_stdout()
            raise click.exceptions.Exit(141) from None  # 128 + SIGPIPE, as a shell reports
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            raise translate(exc) from exc


@click.group(cls=FqmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fqm")
@click.option(
    "--debug",
    is_flag=True,
    envvar="FQM_DEBUG",
    help="Show the traceback of a failure instead of one line. [env: FQM_DEBUG]",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log more, including the native libraries' own messages (LiteRT, MediaPipe).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="FQM_LOG_FORMAT",
    help="Logs on stderr as text lines or JSON lines (for log shippers). [env: FQM_LOG_FORMAT]",
)
def cli(debug: bool, verbose: bool, log_format: str) -> None:
    """fqm: face-quality monitor for video streams."""
    from monitor.logs import configure_logging
    from monitor.native_logs import configure_native_logs

    configure_native_logs(verbose)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    configure_logging(level, log_format)  # type: ignore[arg-type]


cli.add_command(doctor_cli)
cli.add_command(assets_cli)
cli.add_command(bench_cli)
cli.add_command(score_cli)
cli.add_command(eval_cli)
cli.add_command(train_cli)
cli.add_command(consume_cli)
cli.add_command(engines_cli)
cli.add_command(run_cli)
cli.add_command(report_cli)
cli.add_command(validate_config_cli)
cli.add_command(cameras_cli)


def main() -> None:
    cli(prog_name="fqm")
