"""``fqm engines``: build TensorRT engines once into the engine cache, list, remove, and
export a Triton model repository.

Only ``build`` needs TensorRT (and a GPU): it says so in one line before exporting or loading
anything. ``list``, ``remove`` and ``triton-export`` (its ONNX model) work anywhere.
Heavy modules (torch, onnx, tensorrt) are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.cli.options import json_option

# engines.trt.cache.CACHE_ENV and engines.trt.profile.TRT_PRECISIONS, repeated so that
# `fqm --help` imports nothing from engines.
CACHE_ENV = "FQM_ENGINE_CACHE"
PRECISIONS = ("fp32", "fp16", "bf16", "fp8")

cache_option = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=CACHE_ENV,
    default=None,
    help=f"Engine cache folder. [env: {CACHE_ENV}; default: $FQM_CACHE/engines]",
)
source_argument = click.argument("source", type=click.Path(exists=True, path_type=Path))


def _cache(cache_dir: Path | None):
    from engines.trt.cache import EngineCache

    return EngineCache(cache_dir)


@click.group("engines")
def engines_cli() -> None:
    """TensorRT engines: build once into a cache, list, remove, export for Triton."""


@engines_cli.command("build")
@source_argument
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp16", show_default=True)
@click.option("--min-batch", type=int, default=1, show_default=True, help="Profile minimum.")
@click.option("--opt-batch", type=int, default=20, show_default=True, help="Tuned-for batch.")
@click.option("--max-batch", type=int, default=40, show_default=True, help="Profile maximum.")
@click.option("--workspace-mib", type=int, default=None, help="Builder workspace limit.")
@click.option("--force", is_flag=True, help="Build again even if the cache has the engine.")
@cache_option
def build_cmd(
    source: Path,
    precision: str,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    workspace_mib: int | None,
    force: bool,
    cache_dir: Path | None,
) -> None:
    """Build the engine for SOURCE (a weights folder or an .onnx file) into the cache.

    Crops per forward are the batch: 20 per face in official mode, 5 in fixed5, 1 in center.
    """
    from engines.trt.builder import current_gpu, ensure_engine, require_tensorrt
    from engines.trt.profile import BatchProfile, BuildConfig

    config = BuildConfig(
        precision=precision,  # type: ignore[arg-type]
        profile=BatchProfile(min_batch, opt_batch, max_batch),
        workspace_mib=workspace_mib,
    )
    require_tensorrt()  # before any export or model load
    gpu = current_gpu()
    from engines.trt.backend import prepare_onnx

    cache = _cache(cache_dir)
    onnx_path = prepare_onnx(source, cache)
    entry, built = ensure_engine(onnx_path, config, cache, source=str(source), force=force)
    verb = "built" if built else "cached"
    click.echo(f"{verb} {entry.digest}  {precision}  {config.profile.label}  {gpu.name}")
    click.echo(f"  {entry.plan_path}")


@engines_cli.command("list")
@cache_option
@json_option
def list_cmd(cache_dir: Path | None, as_json: bool) -> None:
    """The cached engines, oldest first (no TensorRT needed)."""
    cache = _cache(cache_dir)
    entries = cache.list()
    if as_json:
        out = [{**e.manifest(), "path": str(e.path)} for e in entries]
        click.echo(json.dumps({"cache": str(cache.root), "engines": out}, indent=2))
        return
    if not entries:
        click.echo(f"no engines in {cache.root}")
        return
    click.echo(f"# {cache.root}")
    click.echo(
        f"{'key':<24}  {'precision':<9}  {'profile':<10}  {'gpu (sm)':<24}  {'tensorrt':<9}  "
        f"{'variant':<14}  {'MiB':>7}  created"
    )
    for e in entries:
        k = e.key
        gpu = f"{k.gpu_name} ({k.compute_capability})"
        click.echo(
            f"{e.digest:<24}  {k.precision:<9}  {k.profile.label:<10}  {gpu:<24}  "
            f"{k.tensorrt_version:<9}  {e.variant or '?':<14}  {e.plan_bytes / 2**20:>7.1f}  "
            f"{e.created}"
        )


@engines_cli.command("remove")
@click.argument("keys", nargs=-1)
@click.option("--all", "remove_all", is_flag=True, help="Remove every cached engine.")
@cache_option
def remove_cmd(keys: tuple[str, ...], remove_all: bool, cache_dir: Path | None) -> None:
    """Remove the engines KEYS (full keys or unique prefixes of 6+ characters), or --all."""
    if bool(keys) == remove_all:
        raise click.UsageError("give engine KEYS or --all (not both)")
    cache = _cache(cache_dir)
    if remove_all:
        click.echo(f"removed {cache.remove_all()} engine(s) from {cache.root}")
        return
    for key in keys:
        click.echo(f"removed {cache.remove(key).digest}")


@engines_cli.command("triton-export")
@source_argument
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Model repository folder to write into.",
)
@click.option("--name", default="fqm_dslfiqa", show_default=True, help="TensorRT model name.")
@click.option("--engine", "engine_key", default=None, help="Cached engine key: adds the plan.")
@click.option(
    "--max-batch",
    type=int,
    default=None,
    help="max_batch_size without --engine (default 40); with it, the profile's maximum.",
)
@click.option("--version", "model_version", type=int, default=1, show_default=True)
@cache_option
def triton_export_cmd(
    source: Path,
    repo: Path,
    name: str,
    engine_key: str | None,
    max_batch: int | None,
    model_version: int,
    cache_dir: Path | None,
) -> None:
    """Write a Triton model repository for SOURCE (a weights folder or an .onnx file).

    Always <name>_onnx (onnxruntime_onnx); with --engine, also <name> (tensorrt_plan) from the
    cache, checked to be built from the same graph.
    """
    from engines.trt.backend import prepare_onnx
    from engines.trt.errors import EngineCacheError
    from engines.trt.interface import sha256_file
    from engines.trt.triton import write_model_repository

    cache = _cache(cache_dir)
    entry = cache.find(engine_key) if engine_key else None
    if entry is not None and max_batch not in (None, entry.key.profile.max):
        raise click.UsageError("--max-batch comes from the engine's profile with --engine")
    onnx_path = prepare_onnx(source, cache)
    if entry is not None and entry.key.model_sha256 != sha256_file(onnx_path):
        raise EngineCacheError(
            f"engine {entry.digest} was built from another graph than {source}; "
            "build it from this one with `fqm engines build`"
        )
    models = write_model_repository(
        repo,
        name,
        onnx_path,
        max_batch_size=entry.key.profile.max if entry else (max_batch or 40),
        plan_path=entry.plan_path if entry else None,
        version=model_version,
        preferred_batch_sizes=(entry.key.profile.opt,) if entry else (),
    )
    for model in models:
        click.echo(f"{model.platform:<16}  {model.folder}")
