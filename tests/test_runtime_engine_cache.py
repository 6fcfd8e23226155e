"""TensorRT engine-cache keys and files, without a GPU or TensorRT."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from mmstream.runtime.engine_cache import (EngineCache, EngineKey, atomic_write, batch_profiles, host_platform,
                                           tensorrt_cuda_flavour)

PROFILES = {"frames": ((1, 4, 3, 64, 64), (1, 4, 3, 64, 64), (16, 4, 3, 64, 64)),
            "tokens": ((1, 32), (1, 32), (16, 32))}
BASE = dict(onnx_bytes=b"onnx-model-bytes", trt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3",
            compute_capability=(9, 0), precision="fp16", profiles=PROFILES, workspace_bytes=1 << 30,
            cuda_flavour="cu12", platform="Linux-x86_64", builder_options={"strongly_typed": True, "tf32": True})


def _key(**changes) -> EngineKey:
    return EngineKey.create(**{**BASE, **changes})


def test_same_inputs_same_key_and_profile_order_does_not_matter() -> None:
    assert _key().digest() == _key().digest()
    reordered = dict(reversed(list(PROFILES.items())))
    assert _key(profiles=reordered).digest() == _key().digest()
    assert len(_key().digest()) == 64


@pytest.mark.parametrize("change", [
    {"onnx_bytes": b"onnx-model-bytez"},
    {"trt_version": "11.0.0"},
    {"gpu_name": "NVIDIA L4"},
    {"compute_capability": (8, 9)},
    {"precision": "fp32"},
    {"profiles": {**PROFILES, "tokens": ((1, 32), (1, 32), (8, 32))}},
    {"profiles": {**PROFILES, "tokens": ((1, 32), (4, 32), (16, 32))}},
    {"workspace_bytes": 2 << 30},
    {"cuda_flavour": "cu13"},  # the CUDA 12 and 13 wheels of one release share trt.__version__
    {"platform": "Linux-aarch64"},
    {"platform": "Windows-AMD64"},
    {"builder_options": {"strongly_typed": True, "tf32": False}},
    {"builder_options": {"strongly_typed": True, "tf32": True, "builder_optimization_level": 5}},
])
def test_every_component_changes_the_key(change: dict) -> None:
    assert _key(**change).digest() != _key().digest()


def test_key_needs_workspace_flavour_and_platform() -> None:
    with pytest.raises(TypeError):
        EngineKey.create(b"x", "10.9", "gpu", (9, 0), "fp16", PROFILES)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="builder option 'x'"):
        _key(builder_options={"x": [1]})
    assert _key(builder_options={"b": 1, "a": 2}).digest() == _key(builder_options={"a": 2, "b": 1}).digest()


@pytest.mark.parametrize("dists,torch_cuda,want", [
    ({"tensorrt": ["tensorrt_cu12_bindings"], "tensorrt_libs": ["tensorrt_cu12_libs"]}, "13.0", "cu12"),
    ({"tensorrt": ["tensorrt-cu13-bindings"]}, None, "cu13"),
    ({"tensorrt": ["tensorrt-cu12"]}, None, "cu12"),  # 10.0's wheel name
    ({"tensorrt": ["tensorrt"]}, "12.8", "torch-cu12"),  # a tarball / distro build: torch's CUDA, marked
    ({}, None, "unknown"),
    ({"tensorrt": ["tensorrt_cuda_tools"]}, None, "unknown"),  # "cu" must be a whole part with digits
])
def test_tensorrt_cuda_flavour(dists: dict, torch_cuda: str | None, want: str) -> None:
    assert tensorrt_cuda_flavour(dists, torch_cuda) == want


def test_host_platform_names_os_and_machine() -> None:
    import platform

    assert host_platform() == f"{platform.system()}-{platform.machine()}"


def test_key_hashes_the_onnx_bytes_not_a_path() -> None:
    import hashlib

    assert _key().onnx_sha256 == hashlib.sha256(b"onnx-model-bytes").hexdigest()


def test_store_load_invalidate(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "engines")
    key = _key()
    assert cache.load(key) is None
    path = cache.store(key, b"\x00engine")
    assert path.name == key.digest() + ".engine"
    assert cache.load(key) == b"\x00engine"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["gpu_name"] == "NVIDIA H100 80GB HBM3" and meta["key"] == key.digest()
    assert meta["cuda_flavour"] == "cu12" and meta["workspace_bytes"] == 1 << 30 and meta["platform"] == "Linux-x86_64"
    assert cache.load(_key(precision="fp32")) is None  # a stale engine is never returned
    cache.invalidate(key)
    assert cache.load(key) is None and not path.with_suffix(".json").exists()
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == []


def test_atomic_write_never_exposes_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.engine"
    big = os.urandom(4 << 20)
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(len(target.read_bytes()))
            except FileNotFoundError:
                pass

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(5):
        atomic_write(target, big)
    stop.set()
    t.join(5)
    assert target.read_bytes() == big
    assert all(n == len(big) for n in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["x.engine"]  # no temp files left


def test_timing_cache_per_version_and_gpu(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.load_timing_cache("10.9", "NVIDIA H100") == b""
    cache.store_timing_cache("10.9", "NVIDIA H100", b"tc")
    assert cache.load_timing_cache("10.9", "NVIDIA H100") == b"tc"
    assert cache.load_timing_cache("10.9", "NVIDIA L4") == b""
    assert "/" not in cache.timing_cache_path("10.9", "a/b c").name
    cache.store_timing_cache("10.9", "NVIDIA H100", b"tc13", "cu13")
    assert cache.load_timing_cache("10.9", "NVIDIA H100", "cu13") == b"tc13"
    assert cache.load_timing_cache("10.9", "NVIDIA H100") == b"tc"
    cache.drop_timing_cache("10.9", "NVIDIA H100", "cu13")
    cache.drop_timing_cache("10.9", "NVIDIA H100", "cu13")  # dropping a missing one is fine
    assert cache.load_timing_cache("10.9", "NVIDIA H100", "cu13") == b""


def test_default_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSTREAM_ENGINE_CACHE", str(tmp_path / "c"))
    assert EngineCache().directory == tmp_path / "c"


def test_batch_profiles() -> None:
    prof = batch_profiles({"frames": ["batch", 4, 3, 64, 64], "tokens": ["batch", 32]}, 1, 2, 16)
    assert prof["tokens"] == ((1, 32), (2, 32), (16, 32))
    with pytest.raises(ValueError, match="batch range"):
        batch_profiles({"tokens": ["batch", 32]}, 4, 2, 16)
    with pytest.raises(ValueError, match="only the batch axis"):
        batch_profiles({"tokens": ["batch", "seq"]}, 1, 1, 8)
