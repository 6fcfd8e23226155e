"""TensorRT backend on a real GPU: build from ONNX, engine cache hit, stale/corrupt cache rebuild,
parity with the golden outputs and with ONNX Runtime (the project's tolerances: 1e-3 fp32, 5e-2
fp16), CUDA graphs at two batch sizes replayed alternately, device_index 0, misaligned inputs,
stream ordering. Skipped (with the reason) without a GPU and TensorRT; the same logic is tested
without a GPU against a fake tensorrt in test_runtime_tensorrt_fake.py."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mmstream.runtime.package import load_package
from mmstream.runtime.pipeline import GOLDEN_ATOL
from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason
from tests.model_package_support import model_package  # noqa: F401 - fixture

REASON = tensorrt_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"TensorRT tests need a GPU: {REASON}")]


def _backend(pkg_dir: Path, cache: Path, **kw):  # noqa: ANN202
    from mmstream.runtime.tensorrt_backend import TensorRTBackend

    be = TensorRTBackend(load_package(pkg_dir), cache_dir=str(cache), **{"max_batch": 8, **kw})
    be.load()
    return be


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engine directory for the tests that do not test building (each build takes tens of seconds)."""
    return tmp_path_factory.mktemp("engines")


def _copy_files(src: Path, dst: Path, pattern: str = "*") -> Path:
    for f in src.glob(pattern):
        if f.is_file():
            shutil.copy(f, dst / f.name)
    return dst


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_then_cache_hit_and_parity(model_package: Path, tmp_path: Path, shared_cache: Path,  # noqa: F811
                                         precision: str) -> None:
    _copy_files(shared_cache, tmp_path, "timing-*.cache")  # an earlier build's timing cache speeds this one up
    atol = GOLDEN_ATOL[precision]
    be = _backend(model_package, tmp_path, precision=precision, device_index=0)
    assert be.built and len(list(tmp_path.glob("*.engine"))) == 1
    assert list(tmp_path.glob("timing-*.cache"))
    assert be.info()["device_index"] == 0 and be.info()["cuda_flavour"]
    for case, data in be.package.golden().items():
        out = be.infer(data["in"])
        for name, want in data["out"].items():
            assert _max_diff(out[name], want) <= atol, (precision, case, name)
    again = _backend(model_package, tmp_path, precision=precision)
    assert not again.built  # served from the cache
    _copy_files(tmp_path, shared_cache)  # the later tests reuse this engine


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_parity_with_onnxruntime(model_package: Path, shared_cache: Path, precision: str) -> None:  # noqa: F811
    from mmstream.runtime.auto import create_backend

    be = _backend(model_package, shared_cache, precision=precision)
    ort = create_backend("onnxruntime", load_package(model_package))
    for batch in (1, 8):
        feed = {k: v[:batch] for k, v in be.package.golden()["b8"]["in"].items()}
        a, b = be.infer(feed), ort.infer(feed)
        for name in b:
            assert _max_diff(a[name], b[name]) <= GOLDEN_ATOL[precision], (precision, batch, name)


def test_corrupt_cached_engine_is_rebuilt(model_package: Path, tmp_path: Path,  # noqa: F811
                                         shared_cache: Path) -> None:
    be = _backend(model_package, _copy_files(shared_cache, tmp_path), precision="fp16")
    engine = be.cache.engine_path(be.key)
    engine.write_bytes(b"garbage" * 100)
    rebuilt = _backend(model_package, tmp_path, precision="fp16")
    assert rebuilt.built and engine.read_bytes() != b"garbage" * 100
    assert be.key.digest() == rebuilt.key.digest()


def test_corrupt_timing_cache_is_dropped(model_package: Path, tmp_path: Path,  # noqa: F811
                                        shared_cache: Path) -> None:
    known = _backend(model_package, shared_cache, precision="fp16")
    timing = tmp_path / known.cache.timing_cache_path(*known._timing_args()).name
    timing.write_bytes(b"\x00not a timing cache")
    rebuilt = _backend(model_package, tmp_path, precision="fp16")
    assert rebuilt.built and timing.read_bytes() != b"\x00not a timing cache"


def test_different_batch_range_gets_its_own_engine(model_package: Path, shared_cache: Path) -> None:  # noqa: F811
    eight = _backend(model_package, shared_cache, precision="fp16")
    four = _backend(model_package, shared_cache, precision="fp16", max_batch=4)
    assert four.key.digest() != eight.key.digest()
    assert four.cache.engine_path(four.key).is_file() and eight.cache.engine_path(eight.key).is_file()


def test_shape_outside_the_profile_names_it(model_package: Path, shared_cache: Path) -> None:  # noqa: F811
    from mmstream.errors import BackendError

    be = _backend(model_package, shared_cache, precision="fp16", max_batch=4)
    feed = be.package.dummy_feed(5)
    with pytest.raises(BackendError, match=r"outside the optimization profile .*\(batch 1..4\)"):
        be.infer(feed)


def test_cuda_graphs_two_batch_sizes_replayed_alternately(model_package: Path,  # noqa: F811
                                                          shared_cache: Path) -> None:
    import torch

    plain = _backend(model_package, shared_cache, precision="fp16")
    be = _backend(model_package, shared_cache, precision="fp16", cuda_graphs=True)
    data = be.package.golden()["b8"]
    feed8 = {k: torch.from_numpy(v).cuda() for k, v in data["in"].items()}
    feed1 = {k: v[1:2].clone() for k, v in feed8.items()}  # a different row than feed8's first
    want8 = {k: v.float().cpu().numpy() for k, v in plain.infer_torch(feed8).items()}
    want1 = {k: v.float().cpu().numpy() for k, v in plain.infer_torch(feed1).items()}
    for step in range(3):  # 1, 8, 1, 8, ...: each replays its own graph and context
        for feed, want in ((feed1, want1), (feed8, want8)):
            out = be.infer_torch(feed)
            assert out["emotion_probs"].is_cuda
            for name, w in want.items():
                assert _max_diff(out[name].float().cpu().numpy(), w) <= 1e-3, (step, len(w), name)
    assert be.info()["graph_batches"] == [1, 8] and be.graphs_disabled is None
    assert be.stream.cuda_stream != torch.cuda.default_stream().cuda_stream
    np.testing.assert_allclose(be.infer({k: v[:1] for k, v in data["in"].items()})["emotion_probs"],
                               data["out"]["emotion_probs"][:1], atol=GOLDEN_ATOL["fp16"])
    t0 = time.perf_counter()
    for _ in range(100):
        be.infer_torch(feed1)
    torch.cuda.synchronize()
    print(f"tensorrt fp16 batch 1 with CUDA graphs: {(time.perf_counter() - t0) * 10:.3f} ms/iter")


def test_misaligned_inputs_are_copied(model_package: Path, shared_cache: Path) -> None:  # noqa: F811
    import torch

    be = _backend(model_package, shared_cache, precision="fp32")
    data = be.package.golden()["b8"]

    def misaligned(v: np.ndarray):  # noqa: ANN202 - the same values, one element past an aligned block
        src = torch.from_numpy(v).cuda()
        flat = torch.empty(src.numel() + 1, dtype=src.dtype, device=src.device)
        view = flat[1:].view(src.shape)
        view.copy_(src)
        return view

    feed = {k: misaligned(v) for k, v in data["in"].items()}
    assert all(t.data_ptr() % 256 for t in feed.values())
    out = be.infer_torch(feed)
    assert be.misaligned_copies == len(feed)
    for name, want in data["out"].items():
        assert _max_diff(out[name].float().cpu().numpy(), want) <= GOLDEN_ATOL["fp32"], name


def test_outputs_are_ordered_on_the_callers_stream(model_package: Path, shared_cache: Path) -> None:  # noqa: F811
    import torch

    be = _backend(model_package, shared_cache, precision="fp32")
    data = be.package.golden()["b8"]
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # inputs made, and outputs read, on a stream that is neither ours nor default
        feed = {k: torch.from_numpy(v).cuda().clone() for k, v in data["in"].items()}
        out = be.infer_torch(feed)
        got = {k: v.float().cpu().numpy() for k, v in out.items()}
    for name, want in data["out"].items():
        assert _max_diff(got[name], want) <= GOLDEN_ATOL["fp32"], name
