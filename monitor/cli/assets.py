"""``fqm assets``: model files and test media, fetched once and checked against the manifest."""

from __future__ import annotations

import click

from monitor.assets import (
    KINDS,
    AssetError,
    asset_path,
    assets_dir,
    fetch,
    load_manifest,
    log_progress,
    megabytes,
    select,
    status,
    verify,
)


@click.group("assets")
def assets_cli() -> None:
    """Model files and test media: fetch them once, check them against the manifest."""


@assets_cli.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--kind", type=click.Choice(KINDS), help="Only assets of this kind.")
def fetch_cmd(names: tuple[str, ...], kind: str | None) -> None:
    """Download and install NAMES (default: every asset); skips those already correct."""
    paths = fetch(names, kind)
    total = sum(p.stat().st_size for p in paths)
    log_progress(f"{len(paths)} asset(s), {megabytes(total)}, in {assets_dir()}")


@assets_cli.command("list")
def list_cmd() -> None:
    """Every asset with its kind, size and status (ok, missing or CHANGED)."""
    manifest = load_manifest()
    width = max(len(n) for n in manifest)
    directory = assets_dir()
    click.echo(f"# {directory}")
    for asset in manifest.values():
        state = status(asset, directory)
        click.echo(f"{asset.name:<{width}}  {asset.kind:<7}  {asset.size:>11,}  {state}")


@assets_cli.command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Check NAMES (default: every asset); exits 1 if any is missing or changed."""
    manifest = load_manifest()
    selected = select(names, None, manifest)
    bad = 0
    for asset in selected:
        try:
            verify(asset.name, manifest)
        except AssetError as exc:
            bad += 1
            click.echo(f"FAIL {exc}", err=True)
    if bad:
        raise click.ClickException(f"{bad} of {len(selected)} asset(s) missing or changed")
    click.echo(f"{len(selected)} asset(s) ok in {assets_dir()}")


@assets_cli.command("path")
@click.argument("name", required=False)
def path_cmd(name: str | None) -> None:
    """Print the path of asset NAME (or of the assets directory); fails if it is missing."""
    if name is None:
        click.echo(assets_dir())
        return
    click.echo(asset_path(name))
