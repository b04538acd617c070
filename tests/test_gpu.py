"""The GPU and TensorRT paths fqm can use: they skip, with the reason, where absent."""

from __future__ import annotations

import pytest

from monitor.doctor import check_cuda, check_tensorrt


@pytest.mark.gpu
def test_torch_cuda_matches_cpu() -> None:
    import torch

    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    expected = a @ a
    got = (a.cuda() @ a.cuda()).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
    assert torch.cuda.get_device_name(0) in check_cuda()


@pytest.mark.tensorrt
def test_tensorrt_builder_starts() -> None:
    import tensorrt as trt

    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    assert builder.create_network(0) is not None
    assert check_tensorrt() == f"tensorrt {trt.__version__}"
