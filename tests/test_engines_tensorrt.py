"""engines/trt: everything around TensorRT that runs without it, for real; the build and the
run on a GPU are marked ``tensorrt``/``gpu`` and skip with the reason where they cannot run.

Covered here: the batch profile and precision checks, the shape checks and their messages,
the engine cache (stable keys that change with each component, manifests, list/remove,
concurrent writers), the graph interface read from an exported ONNX file, the Triton
config.pbtxt of both platforms (parsed back by a small protobuf-text reader), the model
repository layout, and ``fqm engines`` with and without a seeded cache.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engines.backends import BackendConfigError, BackendUnavailableError
from engines.trt.cache import CachedEngine, EngineCache, EngineKey
from engines.trt.errors import (
    EngineCacheError,
    PrecisionError,
    ProfileError,
    ShapeError,
    TensorRTError,
)
from engines.trt.interface import GraphInterface, TensorSpec, onnx_interface, sha256_file
from engines.trt.profile import BatchProfile, BuildConfig, check_input_shapes, check_precision
from engines.trt.triton import (
    ONNX_PLATFORM,
    PLAN_PLATFORM,
    triton_config,
    write_model_repository,
)
from monitor.cli.app import cli

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
INTERFACE = GraphInterface(
    inputs=(
        TensorSpec("crops", "float32", (3, 64, 64)),
        TensorSpec("landmarks", "float32", (500,)),
    ),
    outputs=(TensorSpec("scores", "float32", ()),),
)
KEY = EngineKey(
    model_sha256="ab" * 32,
    tensorrt_version="10.13.0.35",
    gpu_name="NVIDIA H200",
    compute_capability="9.0",
    precision="fp16",
    profile=BatchProfile(1, 20, 40),
)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engines.dslfiqa.random_weights import build_random
    from engines.export import export_onnx

    return export_onnx(
        build_random("dslfiqa-tiny", seed=1), tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    )


# ---------------------------------------------------------------- import without TensorRT


def test_modules_import_without_tensorrt() -> None:
    import engines.trt.backend
    import engines.trt.builder
    import engines.trt.runtime  # noqa: F401

    if not HAS_TRT:
        assert "tensorrt" not in sys.modules


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_builder_says_tensorrt_is_missing() -> None:
    from engines.trt.builder import require_tensorrt

    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        require_tensorrt()


# ---------------------------------------------------------------- profile and precision


@pytest.mark.parametrize(
    "values", [(0, 1, 1), (2, 1, 4), (1, 5, 4), (1, 1, 0), (1.0, 2, 3), (True, 2, 3)]
)
def test_profile_must_be_ordered_positive_integers(values: tuple[Any, ...]) -> None:
    with pytest.raises(ProfileError, match="min") as info:
        BatchProfile(*values)
    assert isinstance(info.value, BackendConfigError)  # open_engine's config error


def test_profile_defaults_round_trip_and_batch_check() -> None:
    p = BatchProfile()
    assert (p.min, p.opt, p.max) == (1, 20, 40)
    assert p.label == "1-20-40"
    assert BatchProfile.from_dict(p.as_dict()) == p
    assert BatchProfile.up_to(8) == BatchProfile(1, 8, 8)
    BatchProfile(1, 1, 1).check_batch(1)
    with pytest.raises(ShapeError, match=r"batch 41 is outside .* \(min 1, max 40\).*--max-batch"):
        p.check_batch(41)
    with pytest.raises(ShapeError, match="batch 0"):
        p.check_batch(0)


def test_build_config_validates() -> None:
    assert BuildConfig().precision == "fp16"
    with pytest.raises(PrecisionError, match="'int4'"):
        BuildConfig(precision="int4")  # type: ignore[arg-type]
    with pytest.raises(ProfileError, match="workspace_mib"):
        BuildConfig(workspace_mib=0)


ALL_FLAGS = {"FP16", "BF16", "FP8"}


@pytest.mark.parametrize(
    ("precision", "cc", "flags", "error"),
    [
        ("fp32", (6, 1), set(), None),
        ("fp16", (7, 5), ALL_FLAGS, None),
        ("bf16", (8, 0), ALL_FLAGS, None),
        ("fp8", (9, 0), ALL_FLAGS, None),
        ("bf16", (7, 5), ALL_FLAGS, r"bf16 needs compute capability >= 8\.0; T4 has 7\.5"),
        ("fp8", (8, 6), ALL_FLAGS, r"fp8 needs compute capability >= 8\.9"),
        ("fp8", (9, 0), {"FP16", "BF16"}, r"no BuilderFlag\.FP8"),
        ("int8", (9, 0), ALL_FLAGS, "choose one of"),
    ],
)
def test_precision_is_gated_on_builder_flags_and_gpu(
    precision: str, cc: tuple[int, int], flags: set[str], error: str | None
) -> None:
    if error is None:
        check_precision(precision, cc, flags, "T4")
    else:
        with pytest.raises(PrecisionError, match=error):
            check_precision(precision, cc, flags, "T4")


# ---------------------------------------------------------------- shape checks


DIMS = INTERFACE.input_dims()
PROFILE = BatchProfile(1, 4, 8)


def test_shapes_within_the_profile_give_the_batch() -> None:
    assert check_input_shapes({"crops": (5, 3, 64, 64), "landmarks": (5, 500)}, DIMS, PROFILE) == 5


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"crops": (2, 3, 64, 64)}, r"missing \['landmarks'\]"),
        (
            {"crops": (2, 3, 64, 64), "landmarks": (2, 500), "x": (2,)},
            r"unknown \['x'\]",
        ),
        ({"crops": (2, 3, 32, 32), "landmarks": (2, 500)}, r"'crops' must be \[batch,3,64,64\]"),
        ({"crops": (2, 3, 64, 64), "landmarks": (500,)}, r"'landmarks' must be \[batch,500\]"),
        ({"crops": (2, 3, 64, 64), "landmarks": (3, 500)}, "share one batch size"),
        ({"crops": (9, 3, 64, 64), "landmarks": (9, 500)}, "batch 9 is outside"),
    ],
)
def test_shape_errors_say_what_was_expected(shapes: dict, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        check_input_shapes(shapes, DIMS, PROFILE)


# ---------------------------------------------------------------- cache keys


def test_key_digest_is_stable() -> None:
    """A pure function of the six fields: equal keys, equal digests; and pinned, so that a
    change to the key's encoding (which would orphan every cached engine) is deliberate."""
    same = EngineKey.from_fields(json.loads(json.dumps(KEY.fields())))
    assert same == KEY
    assert same.digest == KEY.digest
    assert re.fullmatch(r"[0-9a-f]{24}", KEY.digest)
    assert KEY.digest == "5179dc98341ffe7c8ca85d23"


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "cd" * 32},
        {"tensorrt_version": "10.14.1.48"},
        {"gpu_name": "NVIDIA H100 80GB HBM3"},
        {"compute_capability": "8.9"},
        {"precision": "bf16"},
        {"profile": BatchProfile(1, 20, 64)},
        {"profile": BatchProfile(1, 8, 40)},
        {"profile": BatchProfile(2, 20, 40)},
    ],
)
def test_key_digest_changes_with_each_component(change: dict[str, Any]) -> None:
    fields = {**KEY.__dict__, **change}
    assert EngineKey(**fields).digest != KEY.digest


# ---------------------------------------------------------------- cache entries


def test_store_lookup_and_manifest_round_trip(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.lookup(KEY) is None
    assert cache.list() == []
    stored = cache.store(KEY, b"plan", source="ckpt/GFIQA", variant="dslfiqa", interface=INTERFACE)
    assert stored.path == tmp_path / KEY.digest
    assert stored.plan_path.read_bytes() == b"plan"
    manifest = json.loads((stored.path / "manifest.json").read_text())
    assert manifest["key"] == KEY.fields()
    assert manifest["digest"] == KEY.digest
    assert manifest["interface"]["outputs"] == [{"name": "scores", "dtype": "float32", "dims": []}]
    found = cache.lookup(KEY)
    assert found == stored
    assert CachedEngine.from_manifest(found.manifest(), found.path) == stored
    assert [e.digest for e in cache.list()] == [KEY.digest]


def test_a_tampered_or_partial_entry_is_not_an_engine(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    stored = cache.store(KEY, b"plan")
    data = stored.manifest()
    data["key"]["precision"] = "fp32"  # no longer matches its digest
    with pytest.raises(EngineCacheError, match="digest"):
        CachedEngine.from_manifest(data, stored.path)
    (stored.path / "manifest.json").write_text(json.dumps(data))
    assert cache.lookup(KEY) is None
    assert cache.list() == []
    other = cache.store(EngineKey(**{**KEY.__dict__, "precision": "bf16"}), b"p")
    other.plan_path.unlink()  # a plan missing: not listed either
    (tmp_path / ".tmp-half-written").mkdir()
    (tmp_path / "not-an-entry").mkdir()
    assert cache.list() == []


def test_find_and_remove_by_key_or_prefix(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    keys = [EngineKey(**{**KEY.__dict__, "precision": p}) for p in ("fp16", "bf16", "fp32")]
    for k in keys:
        cache.store(k, b"plan")
    assert cache.find(keys[0].digest[:8]).key == keys[0]
    with pytest.raises(EngineCacheError, match=r"no engine 'ffffffff'.*fqm engines list"):
        cache.find("ffffffff")
    with pytest.raises(EngineCacheError, match="no engine"):
        cache.find(keys[0].digest[:3])  # too short to be a prefix
    assert cache.remove(keys[1].digest).key == keys[1]
    assert {e.key for e in cache.list()} == {keys[0], keys[2]}
    with pytest.raises(EngineCacheError):
        cache.remove(keys[1].digest)
    cache.timing_cache_path("10.13", "9.0").parent.mkdir()
    assert cache.remove_all() == 2
    assert cache.list() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timing"]


def test_ambiguous_prefix_is_refused(tmp_path: Path) -> None:
    # Two keys whose digests share 6 characters (a birthday search: ~5,000 tries).
    seen: dict[str, EngineKey] = {}
    for i in range(200_000):
        key = EngineKey(**{**KEY.__dict__, "model_sha256": f"{i:064x}"})
        if (first := seen.setdefault(key.digest[:6], key)) is not key:
            break
    cache = EngineCache(tmp_path)
    cache.store(first, b"plan")
    cache.store(key, b"plan")
    with pytest.raises(EngineCacheError, match="ambiguous"):
        cache.find(key.digest[:6])
    assert cache.find(key.digest).key == key


def test_concurrent_writers_of_one_key_leave_one_whole_entry(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    barrier = threading.Barrier(8)
    results: list[CachedEngine] = []
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            barrier.wait()
            results.append(cache.store(KEY, bytes([i]) * 100_000, source=f"writer {i}"))
        except BaseException as exc:  # pragma: no cover - the failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entry = cache.lookup(KEY)
    assert entry is not None
    plan = entry.plan_path.read_bytes()
    writer = int(entry.source.split()[-1])
    assert plan == bytes([writer]) * 100_000  # plan and manifest come from the same writer
    assert [p.name for p in tmp_path.iterdir()] == [KEY.digest]  # no temp folders left
    assert len(results) == 8


def test_timing_cache_is_replaced_atomically(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    path = cache.timing_cache_path("10.13.0.35", "9.0")
    assert path == tmp_path / "timing" / "10.13.0.35-sm9.0.cache"
    cache.write_timing_cache(path, b"one")
    cache.write_timing_cache(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQM_ENGINE_CACHE", str(tmp_path / "engines"))
    assert EngineCache().root == tmp_path / "engines"
    monkeypatch.delenv("FQM_ENGINE_CACHE")
    monkeypatch.setenv("FQM_CACHE", str(tmp_path / "fqm"))
    assert EngineCache().root == tmp_path / "fqm" / "engines"
    monkeypatch.delenv("FQM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert EngineCache().root == tmp_path / "home" / ".cache" / "fqm" / "engines"


# ---------------------------------------------------------------- graph interface


def test_interface_of_the_exported_graph(tiny_onnx: Path) -> None:
    from engines.dslfiqa.variants import get_variant
    from engines.trt.interface import onnx_variant

    size = get_variant("dslfiqa-tiny").crop_size
    assert onnx_interface(tiny_onnx) == GraphInterface(
        inputs=(
            TensorSpec("crops", "float32", (3, size, size)),
            TensorSpec("landmarks", "float32", (500,)),
        ),
        outputs=(TensorSpec("scores", "float32", ()),),
    )
    assert onnx_variant(tiny_onnx) == "dslfiqa-tiny"
    assert len(sha256_file(tiny_onnx)) == 64


def test_interface_refuses_a_fixed_batch(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ShapeError, match="no dynamic batch axis"):
        onnx_interface(path)
    with pytest.raises(FileNotFoundError):
        onnx_interface(tmp_path / "missing.onnx")


# ---------------------------------------------------------------- Triton config


def parse_pbtxt(text: str) -> dict[str, Any]:
    """A small reader of the protobuf text format: ``field: scalar``, ``field { ... }``,
    ``field [ {...}, ... ]`` and ``field: [ scalars ]``; repeated fields become lists."""
    tokens = re.findall(r'"[^"]*"|[{}\[\],:]|[^\s{}\[\],:]+', text)
    pos = 0

    def value(tok: str) -> Any:
        if tok.startswith('"'):
            return tok[1:-1]
        return int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(tokens) and tokens[pos] != end:
            name = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                item: Any = message("}")
                pos += 1
            elif tokens[pos] == "[":
                pos += 1
                item = []
                while tokens[pos] != "]":
                    if tokens[pos] == "{":
                        pos += 1
                        item.append(message("}"))
                        pos += 1
                    elif tokens[pos] == ",":
                        pos += 1
                    else:
                        item.append(value(tokens[pos]))
                        pos += 1
                pos += 1
            else:
                item = value(tokens[pos])
                pos += 1
            assert name not in out, f"field {name} given twice"
            out[name] = item
        return out

    parsed = message(None)
    assert pos == len(tokens), "unbalanced braces"
    return parsed


@pytest.mark.parametrize(
    ("platform", "kind"), [(PLAN_PLATFORM, "KIND_GPU"), (ONNX_PLATFORM, "KIND_AUTO")]
)
def test_config_pbtxt_follows_tritons_model_configuration(platform: str, kind: str) -> None:
    text = triton_config(
        "fqm", platform, INTERFACE, 40, preferred_batch_sizes=(20, 99), instance_kind=kind
    )
    config = parse_pbtxt(text)
    assert config == {
        "name": "fqm",
        "platform": platform,
        "max_batch_size": 40,
        "input": [
            {"name": "crops", "data_type": "TYPE_FP32", "dims": [3, 64, 64]},
            {"name": "landmarks", "data_type": "TYPE_FP32", "dims": [500]},
        ],
        "output": [
            # [batch] only: dims [1] reshaped to [], as Triton documents for rank-1 tensors
            {"name": "scores", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}},
        ],
        "dynamic_batching": {"preferred_batch_size": [20], "max_queue_delay_microseconds": 2000},
        "instance_group": [{"count": 1, "kind": kind}],
    }
    assert 'platform: "' + platform + '"\n' in text
    assert text.endswith("]\n")


def test_config_pbtxt_refuses_what_triton_would() -> None:
    with pytest.raises(ValueError, match="platform"):
        triton_config("m", "pytorch_libtorch", INTERFACE, 8)
    with pytest.raises(ValueError, match="max_batch_size"):
        triton_config("m", PLAN_PLATFORM, INTERFACE, 0)
    with pytest.raises(ValueError, match="instance kind"):
        triton_config("m", PLAN_PLATFORM, INTERFACE, 8, instance_kind="GPU")
    odd = GraphInterface((TensorSpec("x", "complex64", (1,)),), INTERFACE.outputs)
    with pytest.raises(ValueError, match="no Triton data type"):
        triton_config("m", PLAN_PLATFORM, odd, 8)


def test_model_repository_layout(tiny_onnx: Path, tmp_path: Path) -> None:
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"plan bytes")
    repo = tmp_path / "repo"
    models = write_model_repository(
        repo, "fqm_tiny", tiny_onnx, max_batch_size=40, plan_path=plan, preferred_batch_sizes=(20,)
    )
    assert [(m.name, m.platform) for m in models] == [
        ("fqm_tiny", PLAN_PLATFORM),
        ("fqm_tiny_onnx", ONNX_PLATFORM),
    ]
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert files == [
        "fqm_tiny/1/model.plan",
        "fqm_tiny/config.pbtxt",
        "fqm_tiny_onnx/1/model.onnx",
        "fqm_tiny_onnx/config.pbtxt",
    ]
    assert (repo / "fqm_tiny/1/model.plan").read_bytes() == b"plan bytes"
    assert (repo / "fqm_tiny_onnx/1/model.onnx").read_bytes() == tiny_onnx.read_bytes()
    for m in models:
        config = parse_pbtxt((m.folder / "config.pbtxt").read_text())
        assert config["name"] == m.folder.name  # Triton: the name is the folder's
        assert config["platform"] == m.platform
    # Writing again replaces the models whole (no stale version folders, no temp folders).
    write_model_repository(repo, "fqm_tiny", tiny_onnx, max_batch_size=8, version=2)
    assert sorted(p.name for p in repo.iterdir()) == ["fqm_tiny", "fqm_tiny_onnx"]
    assert sorted(p.name for p in (repo / "fqm_tiny_onnx").iterdir()) == ["2", "config.pbtxt"]


# ---------------------------------------------------------------- fqm engines


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def seed(cache_dir: Path, onnx: Path | None = None) -> CachedEngine:
    key = KEY if onnx is None else EngineKey(**{**KEY.__dict__, "model_sha256": sha256_file(onnx)})
    return EngineCache(cache_dir).store(
        key, b"x" * 3 * 2**20, source="ckpt/GFIQA", variant="dslfiqa", interface=INTERFACE
    )


def test_cli_list_empty_and_seeded(tmp_path: Path) -> None:
    out = run_cli("engines", "list", "--cache", str(tmp_path))
    assert out.exit_code == 0
    assert out.output == f"no engines in {tmp_path}\n"
    entry = seed(tmp_path)
    out = run_cli("engines", "list", "--cache", str(tmp_path))
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0] == f"# {tmp_path}"
    assert lines[1].split()[:3] == ["key", "precision", "profile"]
    row = lines[2].split()
    assert row[:3] == [entry.digest, "fp16", "1-20-40"]
    assert "NVIDIA H200 (9.0)" in lines[2]
    assert "10.13.0.35" in row
    assert "dslfiqa" in row
    assert "3.0" in row
    data = json.loads(run_cli("engines", "list", "--json", "--cache", str(tmp_path)).output)
    assert data["cache"] == str(tmp_path)
    assert [e["digest"] for e in data["engines"]] == [entry.digest]


def test_cli_list_reads_the_cache_from_the_environment(tmp_path: Path) -> None:
    seed(tmp_path)
    out = CliRunner(env={"FQM_ENGINE_CACHE": str(tmp_path)}).invoke(cli, ["engines", "list"])
    assert KEY.digest in out.output


def test_cli_remove(tmp_path: Path) -> None:
    entry = seed(tmp_path)
    out = run_cli("engines", "remove", entry.digest[:10], "--cache", str(tmp_path))
    assert out.output == f"removed {entry.digest}\n"
    assert EngineCache(tmp_path).list() == []
    seed(tmp_path)
    out = run_cli("engines", "remove", "--all", "--cache", str(tmp_path))
    assert out.output == f"removed 1 engine(s) from {tmp_path}\n"
    result = CliRunner().invoke(cli, ["engines", "remove", "--cache", str(tmp_path)])
    assert result.exit_code == 2
    assert "give engine KEYS or --all" in result.output
    result = CliRunner().invoke(cli, ["engines", "remove", "abcdef12", "--cache", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: no engine 'abcdef12' in {tmp_path}; `fqm engines list` shows the keys"
    ]


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_cli_build_without_tensorrt_is_one_line_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engines.trt.backend

    def no_export(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - must not run
        raise AssertionError("exported before checking for TensorRT")

    monkeypatch.setattr(engines.trt.backend, "prepare_onnx", no_export)
    result = CliRunner().invoke(cli, ["engines", "build", str(tmp_path), "--cache", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: TensorRT is not installed (the tensorrt package comes from NVIDIA's index; "
        "use the docker compose gpu profile)"
    ]


def test_cli_build_checks_the_profile_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["engines", "build", str(tmp_path), "--opt-batch", "64", "--max-batch", "32"]
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: batch profile must satisfy 1 <= min <= opt <= max, got min=1 opt=64 max=32"
    )


def test_cli_triton_export_onnx_only_and_with_an_engine(tiny_onnx: Path, tmp_path: Path) -> None:
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    out = run_cli("engines", "triton-export", str(tiny_onnx), "--repo", str(repo), "--name", "q")
    assert out.output.split() == [ONNX_PLATFORM, str(repo / "q_onnx")]
    assert parse_pbtxt((repo / "q_onnx/config.pbtxt").read_text())["max_batch_size"] == 40

    entry = seed(cache, tiny_onnx)
    args = ["engines", "triton-export", str(tiny_onnx), "--repo", str(repo), "--name", "q"]
    out = run_cli(*args, "--engine", entry.digest[:8], "--cache", str(cache))
    assert [line.split()[0] for line in out.output.splitlines()] == [PLAN_PLATFORM, ONNX_PLATFORM]
    plan_config = parse_pbtxt((repo / "q/config.pbtxt").read_text())
    assert plan_config["max_batch_size"] == 40
    assert plan_config["dynamic_batching"]["preferred_batch_size"] == [20]

    other = seed(cache)  # built from another graph
    result = CliRunner().invoke(cli, [*args, "--engine", other.digest, "--cache", str(cache)])
    assert result.exit_code == 1
    assert "was built from another graph" in result.output


def test_cli_errors_are_expected_failures() -> None:
    from monitor.cli.errors import is_expected

    assert is_expected(EngineCacheError("x"))
    assert is_expected(ShapeError("x"))
    assert issubclass(ProfileError, TensorRTError)


# ---------------------------------------------------------------- TensorRT on a GPU


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_build_once_then_run_matches_onnxruntime(tiny_onnx: Path, tmp_path: Path) -> None:
    import numpy as np

    from engines.runtimes.onnxruntime import OrtQualityEngine
    from engines.trt.builder import ensure_engine
    from engines.trt.runtime import TensorRTFaceEngine

    cache = EngineCache(tmp_path)
    config = BuildConfig(precision="fp32", profile=BatchProfile(1, 4, 8))
    entry, built = ensure_engine(tiny_onnx, config, cache)
    again, built_again = ensure_engine(tiny_onnx, config, cache)
    assert built
    assert not built_again
    assert again.digest == entry.digest
    assert cache.timing_cache_path(
        entry.key.tensorrt_version, entry.key.compute_capability
    ).is_file()
    engine = TensorRTFaceEngine(entry, mode="center")
    rng = np.random.default_rng(0)
    size = engine.variant.crop_size
    crops = rng.uniform(-1, 1, (5, 3, size, size)).astype(np.float32)
    vectors = rng.uniform(-1, 1, (5, 500)).astype(np.float32)
    reference = OrtQualityEngine(tiny_onnx).score_crops(crops, vectors)
    np.testing.assert_allclose(engine.score_crops(crops, vectors), reference, atol=1e-3)
    with pytest.raises(ShapeError, match="batch 9 is outside"):
        engine.score_crops(np.zeros((9, 3, size, size), np.float32), np.zeros((9, 500), np.float32))
    engine.close()
