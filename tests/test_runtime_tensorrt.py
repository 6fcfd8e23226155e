"""TensorRT backend on a real GPU: build from ONNX, engine cache hit, stale/corrupt cache rebuild,
parity with the golden outputs, CUDA graphs. Skipped (with the reason) without a GPU and TensorRT."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mmstream.runtime.package import load_package
from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason
from tests.model_package_support import model_package  # noqa: F401 - fixture

REASON = tensorrt_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"TensorRT tests need a GPU: {REASON}")]


def _backend(pkg_dir: Path, cache: Path, **kw):  # noqa: ANN202
    from mmstream.runtime.tensorrt_backend import TensorRTBackend

    be = TensorRTBackend(load_package(pkg_dir), cache_dir=str(cache), max_batch=8, **kw)
    be.load()
    return be


@pytest.mark.parametrize("precision,atol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_build_then_cache_hit_and_parity(model_package: Path, tmp_path: Path, precision: str,  # noqa: F811
                                         atol: float) -> None:
    be = _backend(model_package, tmp_path, precision=precision)
    assert be.built and len(list(tmp_path.glob("*.engine"))) == 1
    assert list(tmp_path.glob("timing-*.cache"))
    for case, data in be.package.golden().items():
        out = be.infer(data["in"])
        for name, want in data["out"].items():
            assert np.abs(out[name] - want).max() <= atol, (precision, case, name)
    again = _backend(model_package, tmp_path, precision=precision)
    assert not again.built  # served from the cache


def test_corrupt_cached_engine_is_rebuilt(model_package: Path, tmp_path: Path) -> None:  # noqa: F811
    be = _backend(model_package, tmp_path, precision="fp16")
    engine = next(tmp_path.glob("*.engine"))
    engine.write_bytes(b"garbage" * 100)
    rebuilt = _backend(model_package, tmp_path, precision="fp16")
    assert rebuilt.built and engine.read_bytes() != b"garbage" * 100
    assert be.key.digest() == rebuilt.key.digest()


def test_different_batch_range_gets_its_own_engine(model_package: Path, tmp_path: Path) -> None:  # noqa: F811
    from mmstream.runtime.tensorrt_backend import TensorRTBackend

    _backend(model_package, tmp_path, precision="fp16")
    be = TensorRTBackend(load_package(model_package), cache_dir=str(tmp_path), max_batch=4, precision="fp16")
    be.load()
    assert be.built and len(list(tmp_path.glob("*.engine"))) == 2


def test_cuda_graphs_and_torch_tensors_in_and_out(model_package: Path, tmp_path: Path) -> None:  # noqa: F811
    import torch

    be = _backend(model_package, tmp_path, precision="fp16", cuda_graphs=True)
    data = be.package.golden()["b8"]
    feed = {k: torch.from_numpy(v).cuda() for k, v in data["in"].items()}
    for _ in range(3):
        out = be.infer_torch(feed)
    assert out["emotion_probs"].is_cuda
    assert np.abs(out["emotion_probs"].float().cpu().numpy() - data["out"]["emotion_probs"]).max() <= 2e-2
    one = {k: v[:1] for k, v in data["in"].items()}
    np.testing.assert_allclose(be.infer(one)["emotion_probs"], data["out"]["emotion_probs"][:1], atol=2e-2)
    assert be.stream.cuda_stream != torch.cuda.default_stream().cuda_stream
    t0 = time.perf_counter()
    for _ in range(100):
        be.infer_torch({k: v[:1] for k, v in feed.items()})
    print(f"tensorrt fp16 batch 1 with CUDA graphs: {(time.perf_counter() - t0) * 10:.3f} ms/iter")
