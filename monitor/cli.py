"""The ``fqm`` command line: one group, one subcommand per job."""

from __future__ import annotations

import click

from monitor import __version__
from monitor.assets import assets_cli
from monitor.bench import bench_cli
from monitor.bench_faces import faces_cli
from monitor.bench_quality import modes_cli, quality_cli
from monitor.doctor import doctor_cli
from monitor.score_cli import eval_cli, score_cli
from monitor.train_cli import train_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fqm")
def cli() -> None:
    """fqm: face-quality monitor for video streams."""


cli.add_command(doctor_cli)
cli.add_command(assets_cli)
cli.add_command(bench_cli)
cli.add_command(score_cli)
cli.add_command(eval_cli)
cli.add_command(train_cli)
bench_cli.add_command(quality_cli)
bench_cli.add_command(modes_cli)
bench_cli.add_command(faces_cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
