"""``fqm bench decode|faces|quality|modes|policy|sink|pipeline``: throughput, table or JSON.

The measurements live in :mod:`monitor.benchmarks`; numbers are printed, never asserted.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import click

from engines.dslfiqa.constants import CROP_MODES, CropMode
from monitor.cli.errors import FqmError
from monitor.cli.options import (
    WEIGHTS_ENV,
    device_option,
    json_option,
    parse_bootstrap_option,
    weights_option,
)
from pipelines.open import BACKENDS as DECODE_BACKENDS
from pipelines.urls import SourceKind, mask_url, source_kind

# monitor.benchmarks.quality.QUALITY_BACKENDS, engines.backends.PRECISIONS and
# engines.dslfiqa.variants.list_variants(), repeated so that `fqm --help` imports no torch
# (tests/test_bench_quality.py checks that they agree).
QUALITY_BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt", "auto")
QUALITY_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
QUALITY_VARIANTS: tuple[str, ...] = ("dslfiqa", "dslfiqa-tiny")
BENCH_WEIGHTS_HELP = (
    "Folder with DE.pt and IQA.pt [default: a seeded random model of the official shape; "
    "speed does not depend on the values]."
)


class SourceParam(click.ParamType):
    """A video file that exists, or a stream URL / device; errors never show a password."""

    name = "source"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        text = str(value)
        kind = source_kind(text)
        if kind is SourceKind.FILE:
            path = Path(text.removeprefix("file://"))
            if not path.is_file():
                what = "is a folder, not a video file" if path.is_dir() else "does not exist"
                self.fail(f"{mask_url(text)} {what}", param, ctx)
            return path
        return text


SOURCE = SourceParam()


@click.group("bench")
def bench_cli() -> None:
    """Measure the throughput of fqm's stages on this machine."""


@bench_cli.command("decode")
@click.argument("source", type=SOURCE)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--backend",
    type=click.Choice(DECODE_BACKENDS),
    default="av",
    show_default=True,
    help="Decoder: PyAV (FFmpeg) or GStreamer.",
)
@click.option("--max-fps", type=click.FloatRange(min=0, min_open=True), help="Decimate to this.")
@click.option("--max-width", type=click.IntRange(min=2), help="Scale larger pictures down.")
@click.option("--max-height", type=click.IntRange(min=2), help="Scale larger pictures down.")
@click.option(
    "--hwaccel",
    help="Hardware decoding: 'auto' or a device type (av: cuda, qsv, ...; gst: cuda); "
    "falls back to software, and the report says which decoder ran.",
)
@click.option(
    "--decoder-threads",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="FFmpeg decoder threads per stream (av only); 0: one per core.",
)
@click.option(
    "--streams",
    type=click.IntRange(min=1),
    help="Decode this many copies of SOURCE at once, one thread each, after 1 alone; "
    "report aggregate and per-stream frames/s against the single stream.",
)
@json_option
def decode_cli(
    source: Path | str,
    max_frames: int | None,
    backend: str,
    max_fps: float | None,
    max_width: int | None,
    max_height: int | None,
    hwaccel: str | None,
    decoder_threads: int,
    streams: int | None,
    as_json: bool,
) -> None:
    """Decode SOURCE (a video file or a stream URL) to RGB; report frames/s and CPU ms/frame.

    A stream never ends: give --max-frames.
    """
    from monitor.benchmarks.decode import bench_decode, bench_streams, streams_report
    from pipelines.errors import SourceError
    from pipelines.source import DecodeOptions

    options = DecodeOptions(max_fps=max_fps, max_width=max_width, max_height=max_height)
    kw = {
        "backend": backend,
        "options": options,
        "hwaccel": hwaccel,
        "decoder_threads": decoder_threads,
    }
    name = mask_url(str(source))
    try:
        if streams is not None:
            single, many = bench_streams(source, streams, max_frames, **kw)
        else:
            r = bench_decode(source, max_frames, **kw)
    except ValueError as exc:
        if isinstance(exc, SourceError):  # SourceDecodeError is a ValueError too: not usage
            raise
        raise click.UsageError(str(exc)) from exc
    if streams is not None:
        report = streams_report(single, many)
        if as_json:
            click.echo(json.dumps({"source": name, "backend": backend, **report}))
            return
        click.echo(f"{Path(name).name} ({backend}, {report['decoder']})")
        click.echo(
            f"{'streams':>7} {'frames':>7} {'wall s':>7} {'agg fps':>8} {'per-stream fps':>15}"
        )
        for run in (single, many):
            per = run.per_stream_fps
            click.echo(
                f"{run.streams:>7} {sum(run.frames):>7} {run.wall_s:>7.2f} "
                f"{run.aggregate_fps:>8.1f} {min(per):>7.1f}-{max(per):<7.1f}"
            )
        click.echo(
            f"aggregate {report['aggregate_ratio']:.2f}x, per stream "
            f"{report['per_stream_ratio']:.2f}x of 1 stream"
        )
        return
    if as_json:
        click.echo(json.dumps({**asdict(r), "fps": r.fps, "cpu_ms_per_frame": r.cpu_ms_per_frame}))
        return
    click.echo(
        f"{'source':<40} {'backend':<7} {'size':>9} {'frames':>6} {'fps':>8} {'cpu ms/f':>8}"
    )
    click.echo(
        f"{Path(name).name:<40} {r.backend:<7} {f'{r.width}x{r.height}':>9} {r.frames:>6} "
        f"{r.fps:>8.1f} {r.cpu_ms_per_frame:>8.2f}"
    )
    if r.decoder:
        click.echo(f"decoder: {r.decoder}")


@bench_cli.command("faces")
@click.argument("source", type=SOURCE)
@json_option
@click.option(
    "--detect-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run the detector on one frame in N (the tracker coasts in between).",
)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--model",
    type=click.Choice(["short", "full", "both"]),
    default="short",
    show_default=True,
    help="Detector model.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPU threads for LiteRT (landmarks, full-range detection) and torch in this process.",
)
def faces_cli(
    source: Path | str,
    as_json: bool,
    detect_every: int,
    max_frames: int | None,
    model: str,
    threads: int,
) -> None:
    """Frames/s of face detection, tracking, landmarks and alignment on SOURCE (a video).

    A decode failure part-way prints what was measured up to it, then the error (exit 1).
    """
    import torch

    from monitor.benchmarks.faces import bench_faces, format_table

    torch.set_num_threads(threads)  # this command owns its process
    r = bench_faces(
        source, detect_every=detect_every, max_frames=max_frames, model=model, threads=threads
    )
    click.echo(json.dumps(r.to_json()) if as_json else format_table(r))
    if r.error is not None:
        raise FqmError(f"stopped after {r.frames} frames: {r.error}")


@bench_cli.command("quality")
@click.option(
    "--backend",
    type=click.Choice(QUALITY_BACKENDS),
    default="torch",
    show_default=True,
    help="Engine backend (engines.backends.open_engine); auto says what it chose and why.",
)
@click.option(
    "--precision",
    type=click.Choice(QUALITY_PRECISIONS),
    default="fp32",
    show_default=True,
    help="torch: fp16/bf16 autocast (CUDA only); onnxruntime: an fp32 or fp16 export.",
)
@click.option(
    "--mode",
    "modes",
    type=click.Choice(CROP_MODES),
    multiple=True,
    help="Crop mode(s) to time (repeatable; default: center).",
)
@click.option(
    "--batch",
    "batches",
    type=click.IntRange(min=1),
    multiple=True,
    help="Crops per forward (repeatable; default: 1).",
)
@click.option("--channels-last", is_flag=True, help="torch on CUDA: NHWC model and input buffers.")
@click.option(
    "--cuda-graphs",
    is_flag=True,
    help="torch on CUDA: capture one CUDA graph per --batch size and replay it.",
)
@click.option("--compile", "compile_", is_flag=True, help="torch on CUDA: torch.compile.")
@click.option(
    "--pinned-memory/--no-pinned-memory",
    default=True,
    show_default=True,
    help="torch on CUDA: page-locked staging buffers for host transfers.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads: torch intra-op, and ONNX Runtime's intra_op_threads (default: "
    "each library's own, the core count).",
)
@click.option("--faces", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--naive-faces",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Faces for the naive official baseline (torch, 20 crops each); 0 skips it.",
)
@click.option(
    "--variant",
    type=click.Choice(QUALITY_VARIANTS),
    default="dslfiqa",
    show_default=True,
    help="Shape of the random model without --weights (with --weights: the weights' own).",
)
@weights_option(BENCH_WEIGHTS_HELP)
@device_option
@json_option
def quality_cli(
    backend: str,
    precision: str,
    modes: tuple[CropMode, ...],
    batches: tuple[int, ...],
    channels_last: bool,
    cuda_graphs: bool,
    compile_: bool,
    pinned_memory: bool,
    threads: int | None,
    faces: int,
    naive_faces: int,
    variant: str,
    weights: Path | None,
    device: str,
    as_json: bool,
) -> None:
    """DSL-FIQA faces/s, batch latency and memory on a backend, against the official procedure.

    The engine runs through engines.backends.open_engine; the official procedure (batch 1,
    20 random crops per face, torch fp32) runs in the same process for comparison. On a GPU
    the fraction of the card's FLOP-bound limit is reported (docs/benchmarks.md).
    --channels-last, --cuda-graphs, --compile and --no-pinned-memory are torch-on-CUDA
    settings (engines.backends.TorchConfig); on a CPU they are refused with the reason.
    """
    import torch

    from engines.dslfiqa.variants import variant_for_config
    from engines.flops import PEAK_SOURCE
    from monitor.benchmarks.quality import (
        BackendResult,
        TorchOptions,
        gflop_per_crop,
        load_bench_model,
        open_bench_engine,
        peak_tflops,
        time_backend,
        time_official_naive,
    )

    modes = modes or ("center",)
    batches = batches or (1,)
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    model, weights_label = load_bench_model(weights, device, variant)
    if threads is not None:
        torch.set_num_threads(threads)  # this command owns its process
    options = TorchOptions(
        threads=threads,
        channels_last=channels_last,
        compile=compile_,
        cuda_graphs=cuda_graphs,
        pinned_memory=pinned_memory,
        batches=tuple(sorted(set(batches))),
    )
    opened = open_bench_engine(model, backend, precision, device, modes[0], options)
    try:
        engine = opened.engine
        pool = _sample_faces(max(faces, naive_faces))
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        on_gpu = "cuda" in engine.info.device.lower()
        gflop, gflop_source = gflop_per_crop(model)
        peak = peak_tflops(gpu, engine.info.precision) if on_gpu else None
        log(f"weights: {weights_label}")
        log(f"engine: {engine.info}")
        log(f"selection: {opened.selection}")
        log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, gpu: {gpu or 'none'}")
        # Warm-up (allocator, kernels) so that the first timed run is not penalised.
        time_backend(engine, pool[:1], modes[0], 1)
        runs = [
            time_backend(engine, pool[:faces], m, b, gflop, peak) for m in modes for b in batches
        ]
    finally:
        opened.close()
    naive = time_official_naive(model, pool[:naive_faces]) if naive_faces else None

    def ratio(r: BackendResult) -> float | None:
        return naive.ms_per_face / r.ms_per_face if naive else None

    if as_json:
        doc = {
            "backend": backend,
            "precision": precision,
            "device": device,
            "selection": opened.selection,
            "engine": asdict(engine.info),
            "torch_options": asdict(options),
            "cuda_graph_sizes": list(getattr(engine, "graph_sizes", ())),
            "variant": variant_for_config(model.config).name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "gpu": gpu,
            "weights": weights_label,
            "gflop_per_crop": gflop,
            "gflop_source": gflop_source,
            "peak_tflops": peak,
            "peak_source": PEAK_SOURCE,
            "official_naive": naive.to_json() if naive else None,
            "runs": [{**r.to_json(), "speedup_vs_official_naive": ratio(r)} for r in runs],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"{'procedure':<15} {'backend':<11} {'prec':<4} {'mode':<8} {'batch':>5} {'faces':>5} "
        f"{'faces/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} {'CUDA MB':>7} "
        f"{'%FLOP':>6} {'x official':>10}"
    )

    def cell(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    for r in runs:
        click.echo(
            f"{r.procedure:<15} {r.backend:<11} {r.precision:<4} {r.mode:<8} {r.batch:>5} "
            f"{r.faces:>5} {r.faces_per_s:>8.3f} {r.percentile_ms(50):>8.1f} "
            f"{r.percentile_ms(99):>8.1f} {r.peak_rss_mb:>7.0f} "
            f"{cell(r.cuda_peak_mb, '.0f'):>7} "
            f"{cell(None if r.flop_fraction is None else 100 * r.flop_fraction, '.1f'):>6} "
            f"{cell(ratio(r), '.2f'):>10}"
        )
    if naive:
        click.echo(
            f"{naive.procedure:<15} {'torch':<11} {'fp32':<4} {naive.mode:<8} {naive.batch:>5} "
            f"{naive.faces:>5} {1000 / naive.ms_per_face:>8.3f}"
        )
    click.echo(
        f"GFLOP per crop: {gflop:.3g} ({gflop_source}); peak TFLOP/s: {cell(peak, 'g')} "
        f"({PEAK_SOURCE})"
    )


def _sample_faces(n: int):
    from monitor.benchmarks.quality import NotEnoughFaces, sample_aligned_faces

    try:
        return sample_aligned_faces(n)
    except NotEnoughFaces as exc:
        raise click.UsageError(str(exc)) from exc


@bench_cli.command("modes")
@click.option("--faces", type=click.IntRange(min=1), default=8, show_default=True)
@weights_option(BENCH_WEIGHTS_HELP)
@device_option
@json_option
def modes_cli(faces: int, weights: Path | None, device: str, as_json: bool) -> None:
    """How far fixed5 and center land from official: SRCC and mean |diff| over faces.

    25 crop forwards per face (official 20 + fixed5 5; center is fixed5's centre crop).
    """
    from monitor.benchmarks.quality import load_bench_model, mode_agreement, score_modes

    model, weights_label = load_bench_model(weights, device)
    click.echo(f"weights: {weights_label}", err=True)
    rows = score_modes(model, _sample_faces(faces), progress=lambda m: click.echo(m, err=True))
    summary = mode_agreement(rows)
    if as_json:
        doc = {
            "weights": weights_label,
            "faces": [asdict(r) for r in rows],
            "agreement_with_official": summary,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    width = max(len(r.label) for r in rows)
    click.echo(f"{'face':<{width}} {'official':>9} {'fixed5':>9} {'center':>9} {'crop sd':>8}")
    for r in rows:
        click.echo(
            f"{r.label:<{width}} {r.official:>9.4f} {r.fixed5:>9.4f} {r.center:>9.4f} "
            f"{r.official_crop_std:>8.4f}"
        )

    def fmt(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    click.echo(f"\n{'vs official':<12} {'SRCC':>7} {'PLCC':>7} {'mean|d|':>8} {'max|d|':>8}")
    for mode in ("fixed5", "center"):
        s = summary[mode]
        click.echo(
            f"{mode:<12} {fmt(s['srcc'], '7.3f'):>7} {fmt(s['plcc'], '7.3f'):>7} "
            f"{fmt(s['mean_abs_diff'], '8.4f'):>8} {fmt(s['max_abs_diff'], '8.4f'):>8}"
        )
    o = summary["official"]
    spread = o["score_std_across_faces"]
    click.echo(
        f"official: score sd across faces {'n/a' if spread is None else f'{spread:.4f}'}, "
        f"mean crop-score sd {o['mean_crop_score_std']:.4f}, "
        f"sampling s.e. of a 20-crop mean {o['mean_sampling_se']:.4f}"
    )
    if weights is None:
        click.echo(
            "caveat: random weights: this measures crop-position sensitivity of an untrained "
            "network, not agreement of the real model's modes",
        )


@bench_cli.command("policy")
@click.argument("source", type=SOURCE)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True),
    help="Cap the policy at this many faces/s of video time [default: no cap].",
)
@click.option(
    "--rescore-interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between routine rescorings of a track.",
)
@click.option(
    "--min-face-size",
    type=click.FloatRange(min=0),
    default=32.0,
    show_default=True,
    help="Faces smaller than this (px, shorter box side) are never scored.",
)
@click.option(
    "--best-k", type=click.IntRange(min=1), default=3, show_default=True, help="Best frames kept."
)
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="Score a candidate must beat a best frame by to replace it.",
)
@json_option
def policy_cli(
    source: Path,
    max_frames: int | None,
    budget: float | None,
    rescore_interval: float,
    min_face_size: float,
    best_k: int,
    margin: float,
    as_json: bool,
) -> None:
    """How many faces the scoring policy sends to the engine, and the best frames it keeps.

    Runs the face stage on SOURCE and compares the policy with scoring every face. The
    score is a cheap stand-in computed from the face's signals, not DSL-FIQA: the report
    measures the policy's selection, not the model's quality.
    """
    import torch

    from monitor.benchmarks.policy import bench_policy, format_report
    from monitor.tracks import PolicyConfig, TrackQualityConfig

    torch.set_num_threads(1)  # the stage only warps crops with torch (see FaceStage)
    r = bench_policy(
        source,
        max_frames=max_frames,
        policy=PolicyConfig(rescore_interval=rescore_interval, min_face_size=min_face_size),
        quality=TrackQualityConfig(best_k=best_k, margin=margin, keep_faces=False),
        budget_faces_per_s=budget,
    )
    click.echo(json.dumps(r.to_json(), indent=2) if as_json else format_report(r))
    if r.error is not None:
        raise FqmError(f"stopped after {r.frames} frames: {r.error}")


@bench_cli.command("sink")
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    callback=parse_bootstrap_option,
    help="Also measure the Kafka sink against this broker (temporary topics, deleted after).",
)
@click.option(
    "--events", type=click.IntRange(min=100), default=20_000, show_default=True, help="Events."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the JSONL sink's output in this (new) folder [default: a temporary one].",
)
@json_option
def sink_cli(bootstrap, events: int, out: Path | None, as_json: bool) -> None:
    """Events/s, MB/s and CPU ms per 1,000 events through the JSONL and Kafka sinks.

    Face observations with a best-frame update (and its JPEG crop) every 30 and a track
    summary every 150, built before the clock starts; CPU is the process's, around
    publish + flush. Compared with the goals: >= 5,000 events/s to a local broker, and
    < 10 % of a core at a 720p30 stream's 30 observations/s.
    """
    from monitor.benchmarks.sink import EventMix, bench_sink, format_report

    if out is not None and out.exists() and any(out.iterdir()):
        raise click.BadParameter(f"{out} is not empty; give a new folder", param_hint="--out")
    r = bench_sink(EventMix(events=events), bootstrap=bootstrap, out=out)
    click.echo(json.dumps(r.to_json(), indent=2) if as_json else format_report(r))


def _stream_counts(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{value!r}: stream counts >= 1, comma-separated (1,2,4)")
    return counts


def _check_variant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from engines.dslfiqa.variants import list_variants  # torch-free

    if value is not None and value not in list_variants():
        raise click.BadParameter(f"{value!r} is not one of {', '.join(list_variants())}")
    return value


@bench_cli.command("pipeline")
@click.argument("source")
@click.option(
    "--streams",
    "counts",
    default="1",
    show_default=True,
    callback=_stream_counts,
    help="Copies of SOURCE run at once; a list (1,2,4) runs each count in turn.",
)
@click.option(
    "--sink",
    type=click.Choice(["jsonl", "kafka"]),
    default="jsonl",
    show_default=True,
    help="Where events go: JSONL files (a temporary folder unless --out), or Kafka "
    "(temporary fqm-bench-* topics, deleted after each run).",
)
@click.option(
    "--kafka-bootstrap",
    envvar="FQM_KAFKA_BOOTSTRAP",
    callback=parse_bootstrap_option,
    help="The broker for --sink kafka. [env: FQM_KAFKA_BOOTSTRAP]",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Seconds of video each stream reads.",
)
@click.option(
    "--max-frames", type=click.IntRange(min=1), help="Also stop each stream after N frames."
)
@click.option(
    "--analyse-fps",
    type=click.FloatRange(min=0, min_open=True),
    help="Frames per second each stream's face stage sees [default: every frame].",
)
@click.option(
    "--variant",
    callback=_check_variant,
    help="Model variant; without --weights the random model's shape [default: dslfiqa].",
)
@weights_option(
    f"DSL-FIQA weights folder [env: {WEIGHTS_ENV}; default: seeded random weights of "
    "the variant's shape: speed only]."
)
@click.option(
    "--backend",
    type=click.Choice(QUALITY_BACKENDS),
    default="torch",
    show_default=True,
    help="Quality engine backend.",
)
@click.option(
    "--mode",
    type=click.Choice(CROP_MODES),
    default="center",
    show_default=True,
    help="Crops per face.",
)
@device_option
@click.option(
    "--torch-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch intra-op threads (the service's default: the stream threads use the cores).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep each run's events in OUT/<N>-streams (a new folder) [default: temporary].",
)
@json_option
def pipeline_cli(
    source: str,
    counts: tuple[int, ...],
    sink: str,
    kafka_bootstrap,
    seconds: float,
    max_frames: int | None,
    analyse_fps: float | None,
    variant: str | None,
    weights: Path | None,
    backend: str,
    mode: str,
    device: str,
    torch_threads: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """The whole service (fqm run) on N copies of SOURCE at once: real-time factor,
    frame-to-event latency, faces scored/s, time per stage, peak memory; how many streams
    this machine holds in real time.

    SOURCE is a video file, or 720p: franck.mp4 scaled and padded to 1280x720 at 30 fps
    (made once with ffmpeg into $FQM_CACHE/bench). Files are read as fast as the pipeline
    goes; a stream is held when its video seconds / wall seconds is at least 1.0.
    """
    from monitor.benchmarks.pipeline import (
        BUILTIN_720P,
        ClipError,
        PipelineOptions,
        bench_pipeline,
        format_report,
    )

    if source != BUILTIN_720P and source_kind(source) is not SourceKind.FILE:
        raise click.BadParameter(
            "a video file or 720p: a live stream is paced by its camera, not the pipeline",
            param_hint="SOURCE",
        )
    if sink == "kafka" and kafka_bootstrap is None:
        raise click.UsageError("--sink kafka needs --kafka-bootstrap (or FQM_KAFKA_BOOTSTRAP)")
    if out is not None and out.exists() and any(out.iterdir()):
        raise click.BadParameter(f"{out} is not empty; give a new folder", param_hint="--out")
    options = PipelineOptions(
        weights=weights,
        variant=variant,
        backend=backend,
        mode=mode,
        device=device,
        analyse_fps=analyse_fps,
        torch_threads=torch_threads,
        max_frames=max_frames,
        seconds=seconds,
        kafka=kafka_bootstrap if sink == "kafka" else None,
    )
    try:
        r = bench_pipeline(
            source, counts, options, out=out, progress=lambda m: click.echo(m, err=True)
        )
    except ClipError as exc:
        raise FqmError(str(exc)) from exc
    click.echo(json.dumps(r.to_json(), indent=2) if as_json else format_report(r))
