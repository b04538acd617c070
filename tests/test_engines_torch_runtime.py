"""The torch backend's CUDA path (staging buffers, CUDA-graph buckets), run on a CPU.

The CUDA-only parts (page-locked memory, ``torch.cuda.graph``) need a GPU:
``python -m engines.gpu_check`` and the ``gpu`` test below cover them there. Everything
else of :class:`BufferedRunner` and :class:`GraphSet` (bucket choice, padding, slicing the
scores, eager fallback above the largest size, chunking above the capacity) runs here
with ``capture_eager``, which keeps the graphs' static-buffer contract without a graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.backends import BackendConfigError, TorchConfig, graph_buckets, open_engine
from engines.dslfiqa.model import DslFiqa
from engines.dslfiqa.preprocess import NUM_LANDMARK
from engines.dslfiqa.random_weights import build_random
from engines.runtimes.torch import BufferedRunner, GraphSet, capture_eager

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> DslFiqa:
    return build_random("dslfiqa-tiny", seed=1)


def inputs(tiny: DslFiqa, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = tiny.crop_size
    crops = torch.rand((n, 3, c, c), generator=g) * 2 - 1
    lm = (torch.rand((n, NUM_LANDMARK), generator=g) * 68).floor()
    return crops, lm


def reference(tiny: DslFiqa, crops: torch.Tensor, lm: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return tiny(crops, lm).float().numpy()


class Recorder:
    """The tiny model's forward, recording the batch size of every call."""

    def __init__(self, model: DslFiqa):
        self.model = model
        self.sizes: list[int] = []

    def __call__(self, crops: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        self.sizes.append(crops.shape[0])
        return self.model(crops, lm).float()


def test_graph_buckets_default_to_powers_of_two_and_max_batch() -> None:
    assert graph_buckets(8) == (1, 2, 4, 8)
    assert graph_buckets(20) == (1, 2, 4, 8, 16, 20)
    assert graph_buckets(1) == (1,)
    assert graph_buckets(128, (32, 8, 8)) == (8, 32)
    assert TorchConfig(device="cuda", cuda_graphs=True, max_batch=4).graph_sizes == (1, 2, 4)
    assert TorchConfig(device="cuda").graph_sizes == ()


def test_graph_sizes_are_checked() -> None:
    with pytest.raises(BackendConfigError, match="needs cuda_graphs=True"):
        TorchConfig(graph_batch_sizes=(4,))
    with pytest.raises(BackendConfigError, match="ints >= 1"):
        TorchConfig(cuda_graphs=True, graph_batch_sizes=(0, 4))


def test_graph_set_pads_to_the_next_size_and_declines_above_the_largest(tiny: DslFiqa) -> None:
    forward = Recorder(tiny)
    c = tiny.crop_size

    def new_inputs(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros((b, 3, c, c)), torch.zeros((b, NUM_LANDMARK))

    with torch.inference_mode():
        graphs = GraphSet(forward, (4, 1, 2), new_inputs, capture_eager)
        assert forward.sizes == [4, 2, 1]  # captured largest first
        assert graphs.sizes == (1, 2, 4)
        assert [graphs.bucket(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 4, None]
        crops, lm = inputs(tiny, 3)
        got = graphs.run(crops, lm)
        assert got is not None
        assert forward.sizes[-1] == 4  # three rows replayed in the 4-row bucket
        np.testing.assert_allclose(got.numpy(), reference(tiny, crops, lm), atol=1e-5)
        padded = graphs.batches[4]
        assert torch.count_nonzero(padded.crops[3:]) == 0  # the padding row is zeroed
        assert torch.count_nonzero(padded.landmarks[3:]) == 0
        big, big_lm = inputs(tiny, 5)
        assert graphs.run(big, big_lm) is None
    assert graphs.replays == 1


@pytest.mark.parametrize("channels_last", [False, True])
def test_buffered_runner_matches_the_model_with_graphs_chunks_and_fallback(
    tiny: DslFiqa, channels_last: bool
) -> None:
    forward = Recorder(tiny)
    runner = BufferedRunner(
        forward,
        torch.device("cpu"),
        capacity=4,
        crop_size=tiny.crop_size,
        channels_last=channels_last,
        pin=False,
        graph_sizes=(1, 2),
        capture=capture_eager,
    )
    assert runner.capacity == 4
    assert runner.device_inputs()[0].is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    for n in (1, 2, 3, 7):  # 3: above the largest graph -> eager; 7: chunks of 4 + 3
        crops, lm = inputs(tiny, n, seed=n)
        got = runner(crops, lm)
        assert got.dtype == np.float32
        assert got.shape == (n,)
        np.testing.assert_allclose(got, reference(tiny, crops, lm), atol=1e-5)
    assert runner.graphs is not None
    assert runner.graphs.replays == 2  # n=1 and n=2
    assert runner.eager_batches == 3  # n=3, then 4 and 3 for n=7
    assert runner.graphs.batches[2].crops.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    # A result is a copy: later calls do not rewrite it.
    crops, lm = inputs(tiny, 2, seed=11)
    first = runner(crops, lm)
    kept = first.copy()
    runner(*inputs(tiny, 2, seed=12))
    np.testing.assert_array_equal(first, kept)


def test_cpu_engine_is_unchanged_and_has_no_device_runner(tiny: DslFiqa) -> None:
    engine = open_engine(tiny, "torch", mode="center")
    assert engine.runner is None  # type: ignore[attr-defined]
    assert engine.graph_sizes == ()  # type: ignore[attr-defined]
    crops, lm = inputs(tiny, 3)
    np.testing.assert_array_equal(
        engine.score_crops(crops.numpy(), lm.numpy()), reference(tiny, crops, lm)
    )


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_graphs_and_pinned_transfers_match_eager_on_a_gpu(
    tiny: DslFiqa, precision: str
) -> None:  # pragma: no cover - needs a GPU
    crops, lm = inputs(tiny, 6)
    ref = reference(tiny, crops, lm)  # CPU fp32, before any engine moves a model
    model = build_random("dslfiqa-tiny", seed=1)  # the engines move it to the GPU
    eager = open_engine(
        model, "torch", config=TorchConfig(device="cuda", precision=precision, max_batch=8)
    )
    graphed = open_engine(
        model,
        "torch",
        config=TorchConfig(
            device="cuda", precision=precision, max_batch=8, cuda_graphs=True, channels_last=True
        ),
    )
    assert graphed.graph_sizes == (1, 2, 4, 8)  # type: ignore[attr-defined]
    atol = {"fp32": 2e-3, "fp16": 5e-3, "bf16": 2e-2}[precision]
    for engine in (eager, graphed):
        got = engine.score_crops(crops.numpy(), lm.numpy())
        assert float(np.abs(got - ref).max()) <= atol
    assert graphed.runner.graphs.replays >= 1  # type: ignore[attr-defined]


def test_graphs_up_to_the_capacity_never_need_the_eager_buffers(tiny: DslFiqa) -> None:
    forward = Recorder(tiny)
    runner = BufferedRunner(
        forward,
        torch.device("cpu"),
        capacity=2,
        crop_size=tiny.crop_size,
        pin=False,
        graph_sizes=(1, 2),
        capture=capture_eager,
    )
    crops, lm = inputs(tiny, 3)
    np.testing.assert_allclose(runner(crops, lm), reference(tiny, crops, lm), atol=1e-5)
    assert runner.graphs is not None
    assert runner.graphs.replays == 2  # chunks of 2 and 1, both replayed
    assert runner.eager_batches == 0
    assert runner._device_inputs is None
