"""The TensorRT backend and ``auto`` against a fake ``tensorrt`` and a fake ``torch`` CUDA, without a GPU.

The fakes return the failure values the TensorRT 10/11 Python bindings document (pyCore.cpp,
NvInferRuntime.h, NvInfer.h): None from ``build_serialized_network``, ``deserialize_cuda_engine``,
``create_execution_context`` and ``create_timing_cache`` (corrupt data); False from
``set_input_shape`` (shape outside the profile), ``set_tensor_address`` (address not 256-byte
aligned), ``set_timing_cache`` (cache from another device) and ``execute_async_v3`` (an operation
not allowed under CUDA graph capture); ``TypeError: ... factory function returned nullptr`` from
``trt.Runtime`` / ``trt.Builder`` when CUDA cannot initialise.

The fake CUDA models what makes the real one fail: a tensor is a numpy array at an address; an
engine "kernel" reads and writes through the addresses bound on its context; a captured graph
replays the kernels with the addresses and shapes of capture time and produces NaN if its context
was rebound since (undefined behaviour on a GPU); streams log their waits and enqueues in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.errors import BackendError, ModelError
from mmstream.runtime.auto import create_backend
from mmstream.runtime.engine_cache import EngineCache, tensorrt_cuda_flavour
from mmstream.runtime.package import load_package
from tests.model_package_support import model_package  # noqa: F401 - fixture

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
TIMING_MAGIC = b"FAKE-TRT-TIMING\n"
DTYPE_NAMES = {"FLOAT": np.float32, "HALF": np.float16, "INT64": np.int64, "INT32": np.int32, "INT8": np.int8,
               "UINT8": np.uint8, "BOOL": np.bool_}
SPEC = {"name": "fake", "preprocessing": {"kind": "none"},
        "inputs": [{"name": "frames", "dtype": "float32", "shape": ["batch", 3]},
                   {"name": "tokens", "dtype": "int64", "shape": ["batch", 2]}],
        "outputs": [{"name": "probs", "dtype": "float32", "shape": ["batch", 2]}]}


# ---------------------------------------------------------------------------------------------- fake CUDA
class World:
    """Everything the fake GPU knows and logs; knobs select which documented failure happens."""

    def __init__(self) -> None:
        self.device_count = 2
        self.current_device = 0
        self.memory: dict[int, FakeTensor] = {}
        self.next_ptr = 0x7F00_0000_0000
        self.streams: dict[int, FakeStream] = {}
        self.default = {d: FakeStream(self, d, default=True) for d in range(self.device_count)}
        self.current_stream = dict(self.default)
        self.log: list[tuple] = []
        self.contexts: list[FakeContext] = []
        self.capture_modes: list[str] = []
        self.races = 0
        self.slow_binds = False
        # failure knobs
        self.runtime_fails = self.builder_fails = self.build_fails = self.deserialize_fails = False
        self.deserialize_fails_after_build = self.enqueue_fails = self.capture_unsupported = False
        self.reject_shapes = self.reject_addresses = False
        self.contexts_allowed: int | None = None
        self.parse_fails = False
        self.parsed_paths: list[str] = []
        self.network_flags: list[int] = []
        self.cleared_flags: list[Any] = []
        self.timing_attached: list[bytes] = []
        self.builds = 0
        self.alloc_lock = threading.Lock()

    def alloc(self, array: np.ndarray, device: int | None) -> FakeTensor:
        with self.alloc_lock:
            ptr = self.next_ptr
            self.next_ptr += (array.nbytes // 512 + 2) * 512  # the caching allocator hands out 512-byte blocks
        return FakeTensor(self, np.array(array, copy=True), device, ptr)

    def gpu_name(self, index: int) -> str:
        return f"Fake GPU {index}"


class FakeTensor:
    def __init__(self, world: World, array: np.ndarray, device: int | None, ptr: int) -> None:
        self.world, self.array, self.device_index, self.ptr = world, array, device, ptr
        world.memory[ptr] = self

    shape = property(lambda self: tuple(self.array.shape))
    dtype = property(lambda self: self.array.dtype.type)
    is_cuda = property(lambda self: self.device_index is not None)

    def data_ptr(self) -> int:
        return self.ptr

    def __getitem__(self, item: slice) -> FakeTensor:  # rows only: a view at an offset address
        start = item.start or 0
        view = FakeTensor.__new__(FakeTensor)
        view.world, view.array, view.device_index = self.world, self.array[item], self.device_index
        view.ptr = self.ptr + start * (self.array.nbytes // max(1, len(self.array)))
        self.world.memory[view.ptr] = view
        return view

    def to(self, device: Any = None, dtype: Any = None, non_blocking: bool = False) -> FakeTensor:
        index = self.device_index if device is None else device.index
        dtype = dtype or self.dtype
        if index == self.device_index and dtype == self.dtype:
            return self
        return self.world.alloc(self.array.astype(dtype), index)

    def contiguous(self) -> FakeTensor:
        return self

    def clone(self) -> FakeTensor:
        return self.world.alloc(self.array, self.device_index)

    def copy_(self, src: FakeTensor, non_blocking: bool = False) -> FakeTensor:
        self.array[...] = src.array.astype(self.array.dtype)
        return self

    def record_stream(self, stream: FakeStream) -> None:
        self.world.log.append(("record_stream", self.ptr, stream.name))

    def float(self) -> FakeTensor:
        return self.to(dtype=np.float32)

    def cpu(self) -> FakeTensor:
        return FakeTensor(self.world, self.array.copy(), None, 0)

    def numpy(self) -> np.ndarray:
        return self.array

    def pin_memory(self) -> FakeTensor:
        return self


class FakeStream:
    _handles = 1000

    def __init__(self, world: World, device: int, default: bool = False) -> None:
        self.world, self.device = world, device
        if default:
            self.cuda_stream, self.name = 0, f"default{device}"
        else:
            FakeStream._handles += 1
            self.cuda_stream, self.name = FakeStream._handles, f"stream{FakeStream._handles}"
        self.capturing: FakeGraph | None = None
        world.streams[self.cuda_stream + 100_000 * device] = self

    def wait_stream(self, other: FakeStream) -> None:
        self.world.log.append(("wait", self.name, other.name))

    def synchronize(self) -> None:
        self.world.log.append(("sync", self.name))


class FakeGraph:
    def __init__(self, world: World) -> None:
        self.world, self.ops, self.invalidated, self.stream = world, [], False, None

    def capture_begin(self, pool: Any = None, capture_error_mode: str = "global") -> None:
        self.world.capture_modes.append(capture_error_mode)
        self.stream = self.world.current_stream[self.world.current_device]
        self.stream.capturing = self

    def capture_end(self) -> None:
        self.stream.capturing = None
        if self.invalidated:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    def replay(self) -> None:
        self.world.log.append(("replay", id(self)))
        for context, addresses, shapes, version in self.ops:
            context.run(addresses, shapes, stale=context.version != version)


def make_torch(world: World) -> types.ModuleType:
    torch = types.ModuleType("torch")
    for name, dtype in {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
                        "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}.items():
        setattr(torch, name, dtype)
    torch.bfloat16 = "bfloat16"
    torch.version = types.SimpleNamespace(cuda="12.8")
    torch.device = lambda kind, index=None: types.SimpleNamespace(type=kind, index=0 if index is None else index)
    torch.empty = lambda shape, dtype, device: world.alloc(np.zeros(shape, dtype), device.index)
    torch.from_numpy = lambda a: FakeTensor(world, a, None, 0)
    cuda = types.ModuleType("torch.cuda")
    cuda.is_available = lambda: True
    cuda.device_count = lambda: world.device_count
    cuda.get_device_properties = lambda i: types.SimpleNamespace(name=world.gpu_name(int(i)), major=9, minor=0)

    @contextlib.contextmanager
    def device(index: int) -> Iterator[None]:
        prev, world.current_device = world.current_device, int(index)
        try:
            yield
        finally:
            world.current_device = prev

    @contextlib.contextmanager
    def stream(s: FakeStream) -> Iterator[None]:
        prev, world.current_stream[s.device] = world.current_stream[s.device], s
        try:
            yield
        finally:
            world.current_stream[s.device] = prev

    cuda.device = device
    cuda.stream = stream
    cuda.Stream = lambda device=None: FakeStream(world, device.index if device is not None else world.current_device)
    cuda.current_stream = lambda device=None: world.current_stream[
        world.current_device if device is None else device.index]
    cuda.CUDAGraph = lambda: FakeGraph(world)
    torch.cuda = cuda
    return torch


# ---------------------------------------------------------------------------------------------- fake TensorRT
def make_trt(world: World) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.16.0"

    class Logger:
        ERROR, WARNING, INFO = 1, 2, 3

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    def null_factory() -> None:
        raise TypeError("pybind11::init(): factory function returned nullptr")

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            if world.runtime_fails:
                null_factory()

        def deserialize_cuda_engine(self, data: bytes) -> Any:
            world.log.append(("deserialize", world.current_device))
            if world.deserialize_fails or not bytes(data).startswith(ENGINE_MAGIC):
                return None
            if world.deserialize_fails_after_build and world.builds:
                return None
            return Engine(json.loads(bytes(data)[len(ENGINE_MAGIC):]))

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags, self.parsed = flags, False
            world.network_flags.append(flags)

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network, self.num_errors = network, 0

        def parse(self, model: bytes, path: str | None = None) -> bool:
            raise AssertionError("parse(bytes) loses the directory of external weights: use parse_from_file")

        def parse_from_file(self, path: str) -> bool:
            world.parsed_paths.append(path)
            if world.parse_fails:
                self.num_errors = 1
                return False
            self.network.parsed = True
            return True

        def get_error(self, i: int) -> str:
            return "In node 3 (Conv): unsupported attribute"

    class TimingCache:
        def __init__(self, device_name: str) -> None:
            self.device_name = device_name

        def serialize(self) -> bytes:
            return TIMING_MAGIC + self.device_name.encode()

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, list] = {}

        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            self.shapes[name] = [list(lo), list(opt), list(hi)]

    class Config:
        def __init__(self) -> None:
            self.profiles: list[Profile] = []
            self.timing: TimingCache | None = None
            self.progress_monitor = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.workspace = size

        def clear_flag(self, flag: Any) -> None:
            world.cleared_flags.append(flag)

        def add_optimization_profile(self, profile: Profile) -> None:
            self.profiles.append(profile)

        def create_timing_cache(self, data: bytes) -> TimingCache | None:
            data = bytes(data)
            if not data:
                return TimingCache(world.gpu_name(world.current_device))
            if not data.startswith(TIMING_MAGIC):
                return None  # corrupt
            return TimingCache(data[len(TIMING_MAGIC):].decode())

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            if cache.device_name != world.gpu_name(world.current_device) and not ignore_mismatch:
                return False
            world.timing_attached.append(cache.serialize())
            self.timing = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return self.timing

    class Builder:
        def __init__(self, logger: Logger) -> None:
            if world.builder_fails:
                null_factory()

        def create_network(self, flags: int = 0) -> Network:
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            if world.build_fails or not network.parsed:
                return None
            monitor = config.progress_monitor
            monitor.phase_start("Building engine", None, 1)
            monitor.step_complete("Building engine", 0)
            monitor.phase_finish("Building engine")
            world.builds += 1
            return ENGINE_MAGIC + json.dumps({"profile": config.profiles[0].shapes}).encode()

    class Engine:
        def __init__(self, desc: dict) -> None:
            self.profile = desc["profile"]
            self.io = [("frames", "INPUT", "FLOAT", [-1, 3]), ("tokens", "INPUT", "INT64", [-1, 2]),
                       ("probs", "OUTPUT", "FLOAT", [-1, 2])]
            self.num_io_tensors = len(self.io)

        def _find(self, name: str) -> tuple:
            return next(t for t in self.io if t[0] == name)

        def get_tensor_name(self, i: int) -> str:
            return self.io[i][0]

        def get_tensor_mode(self, name: str) -> str:
            return self._find(name)[1]

        def get_tensor_dtype(self, name: str) -> str:
            return self._find(name)[2]

        def get_tensor_shape(self, name: str) -> list[int]:
            return list(self._find(name)[3])

        def get_tensor_profile_shape(self, name: str, index: int) -> list[list[int]]:
            return self.profile[name]

        def create_execution_context(self) -> FakeContext | None:
            if world.contexts_allowed is not None and len(world.contexts) >= world.contexts_allowed:
                return None
            return FakeContext(world, self)

    trt.Logger, trt.Runtime, trt.Builder, trt.OnnxParser, trt.IProgressMonitor = (
        Logger, Runtime, Builder, OnnxParser, IProgressMonitor)
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.DataType = types.SimpleNamespace(**{n: n for n in DTYPE_NAMES})
    return trt


class FakeContext:
    """An execution context: shapes and addresses bound by name; the 'kernel' computes
    probs[b] = (sum(frames[b]), sum(tokens[b])) through the bound addresses."""

    def __init__(self, world: World, engine: Any) -> None:
        self.world, self.engine = world, engine
        self.device = world.current_device
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.version = 0  # bumps on every rebind; a graph captured at another version is stale
        self.owner: int | None = None
        world.contexts.append(self)

    def _touch(self) -> None:
        me = threading.get_ident()
        if self.owner not in (None, me):
            self.world.races += 1  # another thread is between its binds and its enqueue on this context
        self.owner = me
        if self.world.slow_binds:
            time.sleep(0.0005)

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        self._touch()
        lo, _, hi = self.engine.profile[name]
        if self.world.reject_shapes or len(shape) != len(lo) or not all(a <= d <= b for d, a, b in zip(shape, lo, hi)):
            return False
        self.shapes[name] = tuple(shape)
        self.version += 1
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self._touch()
        if self.world.reject_addresses or ptr % 256 or ptr not in self.world.memory:
            return False
        self.addresses[name] = ptr
        self.version += 1
        return True

    def get_tensor_shape(self, name: str) -> list[int]:
        if name == "probs":
            return [self.shapes["frames"][0], 2] if "frames" in self.shapes else [-1, 2]
        return list(self.shapes.get(name, self.engine.get_tensor_shape(name)))

    def execute_async_v3(self, stream_handle: int) -> bool:
        if self.owner not in (None, threading.get_ident()):
            self.world.races += 1
        self.owner = None
        stream = self.world.streams[stream_handle + 100_000 * self.world.current_device]
        self.world.log.append(("enqueue", stream.name, id(self), self.world.current_device))
        if self.world.enqueue_fails:
            return False
        if stream.capturing is not None:
            if self.world.capture_unsupported:
                stream.capturing.invalidated = True
                return False
            stream.capturing.ops.append((self, dict(self.addresses), dict(self.shapes), self.version))
            return True
        self.run(self.addresses, self.shapes, stale=False)
        return True

    def run(self, addresses: dict[str, int], shapes: dict[str, tuple], stale: bool) -> None:
        mem = self.world.memory
        frames, tokens, probs = (mem[addresses[n]].array for n in ("frames", "tokens", "probs"))
        assert frames.shape == shapes["frames"] and tokens.shape == shapes["tokens"]
        if stale:
            probs[...] = np.nan  # the context changed after capture: what a real GPU would do is undefined
            return
        probs[:, 0] = frames.sum(axis=1)
        probs[:, 1] = tokens.sum(axis=1)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World()
    monkeypatch.setitem(sys.modules, "tensorrt", make_trt(w))
    monkeypatch.setitem(sys.modules, "torch", make_torch(w))
    return w


@pytest.fixture
def package(tmp_path: Path) -> Path:
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "model.json").write_text(json.dumps(SPEC))
    (d / "model.onnx").write_bytes(b"fake onnx fp32")
    (d / "model_fp16.onnx").write_bytes(b"fake onnx fp16")
    return d


def _backend(package: Path, cache: Path, **kw: Any):  # noqa: ANN202
    from mmstream.runtime.tensorrt_backend import TensorRTBackend

    be = TensorRTBackend(load_package(package), cache_dir=str(cache), **{"max_batch": 16, **kw})
    be.load()
    return be


def _feed(world: World, batch: int, seed: int = 0) -> dict[str, FakeTensor]:
    rng = np.random.default_rng(seed)
    return {"frames": world.alloc(rng.standard_normal((batch, 3)).astype(np.float32), 0),
            "tokens": world.alloc(rng.integers(0, 50, (batch, 2)), 0)}


def _expected(feed: dict[str, FakeTensor]) -> np.ndarray:
    return np.stack([feed["frames"].array.sum(1), feed["tokens"].array.sum(1).astype(np.float32)], axis=1)


# ---------------------------------------------------------------------------------------------- load / build
def test_build_parses_from_file_strongly_typed_then_cache_hit(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path / "c")
    assert be.built and world.builds == 1
    assert world.parsed_paths == [str(package / "model_fp16.onnx")]  # parse_from_file, never parse(bytes)
    assert world.network_flags == [1 << 1]  # STRONGLY_TYPED
    assert world.cleared_flags == []  # fp16 leaves TF32 alone
    assert len(list((tmp_path / "c").glob("*.engine"))) == 1
    again = _backend(package, tmp_path / "c")
    assert not again.built and world.builds == 1
    fp32 = _backend(package, tmp_path / "c", precision="fp32")
    assert fp32.built and world.parsed_paths[-1] == str(package / "model.onnx") and world.cleared_flags == ["TF32"]
    assert fp32.key.digest() != be.key.digest()


def test_corrupt_cached_engine_is_dropped_and_rebuilt(world: World, package: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    be = _backend(package, tmp_path)
    engine = be.cache.engine_path(be.key)
    engine.write_bytes(b"garbage" * 10)
    with caplog.at_level(logging.WARNING, logger="mmstream.runtime.tensorrt"):
        rebuilt = _backend(package, tmp_path)
    assert rebuilt.built and engine.read_bytes().startswith(ENGINE_MAGIC)
    assert "failed to deserialize; rebuilding" in caplog.text


@pytest.mark.parametrize("knob,match", [
    ("builder_fails", r"failed to load .*model_fp16.onnx on cuda:0: TypeError: .*factory function returned nullptr"),
    ("build_fails", r"failed to build an engine from .*model_fp16.onnx"),
    ("deserialize_fails", r"could not deserialize the engine it just built"),
])
def test_every_load_failure_is_a_backend_error(world: World, package: Path, tmp_path: Path, knob: str,
                                               match: str) -> None:
    setattr(world, knob, True)
    with pytest.raises(BackendError, match=match):
        _backend(package, tmp_path)


def test_parse_failure_is_a_model_error_naming_the_file_and_errors(world: World, package: Path,
                                                                    tmp_path: Path) -> None:
    world.parse_fails = True
    with pytest.raises(ModelError, match=r"cannot parse .*model_fp16.onnx: In node 3 \(Conv\)"):
        _backend(package, tmp_path)


def test_create_execution_context_none_is_a_backend_error(world: World, package: Path, tmp_path: Path) -> None:
    world.contexts_allowed = 0
    with pytest.raises(BackendError, match=r"create_execution_context\(\) returned None"):
        _backend(package, tmp_path)


def test_unwritable_cache_is_a_warning_and_the_engine_in_memory_is_used(world: World, package: Path, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING, logger="mmstream.runtime.tensorrt"):
        be = _backend(package, not_a_dir)
    assert be.loaded and be.built
    assert "cannot be read" in caplog.text and "built but not cached" in caplog.text
    feed = _feed(world, 2)
    np.testing.assert_allclose(be.infer_torch(feed)["probs"].array, _expected(feed), rtol=1e-6)


# ---------------------------------------------------------------------------------------------- timing cache
def test_corrupt_timing_cache_is_dropped_and_retried_empty(world: World, package: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    path = EngineCache(tmp_path).timing_cache_path("10.16.0", "Fake GPU 0", tensorrt_cuda_flavour(torch_cuda="12.8"))
    path.write_bytes(b"\x00corrupt timing cache")
    with caplog.at_level(logging.WARNING, logger="mmstream.runtime.tensorrt"):
        be = _backend(package, tmp_path)
    assert be.built and "create_timing_cache returned None (corrupt)" in caplog.text
    assert world.timing_attached == [TIMING_MAGIC + b"Fake GPU 0"]  # the empty one, attached
    assert path.read_bytes() == TIMING_MAGIC + b"Fake GPU 0"  # replaced by the new build's cache


def test_timing_cache_of_another_device_is_dropped(world: World, package: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = EngineCache(tmp_path).timing_cache_path("10.16.0", "Fake GPU 0", tensorrt_cuda_flavour(torch_cuda="12.8"))
    path.write_bytes(TIMING_MAGIC + b"Some Other GPU")
    with caplog.at_level(logging.WARNING, logger="mmstream.runtime.tensorrt"):
        _backend(package, tmp_path)
    assert "set_timing_cache returned False" in caplog.text and "deleting it" in caplog.text
    assert path.read_bytes() == TIMING_MAGIC + b"Fake GPU 0"


# ---------------------------------------------------------------------------------------------- device
def test_device_index_is_current_for_load_build_and_infer(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path, device_index=1)
    assert world.current_device == 0  # restored afterwards
    assert be.key.gpu_name == "Fake GPU 1" and be.info()["gpu"] == "Fake GPU 1"
    assert {c.device for c in world.contexts} == {1}
    assert [e for e in world.log if e[0] == "deserialize"] == [("deserialize", 1)]
    assert be.stream.device == 1
    feed = _feed(world, 2)
    be.infer_torch(feed)
    assert [e[3] for e in world.log if e[0] == "enqueue"] == [1]
    with pytest.raises(BackendError, match=r"device_index 2 but this machine has 2 CUDA device\(s\) \(0..1\)"):
        _backend(package, tmp_path, device_index=2)


# ---------------------------------------------------------------------------------------------- binding
def test_shape_outside_the_profile_names_the_range(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path, max_batch=8)
    with pytest.raises(BackendError, match=r"input 'frames' shape \(9, 3\) is outside the optimization profile "
                                           r"min \(1, 3\) .. max \(8, 3\) \(batch 1..8\)"):
        be.infer_torch(_feed(world, 9))
    world.reject_shapes = True  # the engine itself says no (set_input_shape returns False)
    with pytest.raises(BackendError,
                       match=r"set_input_shape\('frames', \(2, 3\)\) failed .*min \(1, 3\) .. max \(8, 3\)"):
        be.infer_torch(_feed(world, 2))


def test_misaligned_input_is_copied(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path)
    big = _feed(world, 5)
    feed = {n: t[1:] for n, t in big.items()}  # views one row in: 12 and 16 bytes past a 512-byte block
    assert all(t.data_ptr() % 256 for t in feed.values())
    out = be.infer_torch(feed)["probs"].array
    np.testing.assert_allclose(out, _expected(feed), rtol=1e-6)
    assert be.misaligned_copies == 2 and be.info()["misaligned_copies"] == 2


def test_set_tensor_address_false_is_a_backend_error(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path)
    world.reject_addresses = True
    with pytest.raises(BackendError, match=r"set_tensor_address\('frames', 0x[0-9a-f]+\) failed .*256-byte aligned"):
        be.infer_torch(_feed(world, 1))


def test_enqueue_false_is_a_backend_error(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path)
    world.enqueue_fails = True
    with pytest.raises(BackendError, match="execute_async_v3 failed"):
        be.infer({"frames": np.zeros((1, 3), np.float32), "tokens": np.zeros((1, 2), np.int64)})


def test_infer_numpy_round_trip(world: World, package: Path, tmp_path: Path) -> None:
    be = _backend(package, tmp_path)
    feed = {"frames": np.ones((3, 3), np.float32), "tokens": np.arange(6, dtype=np.int64).reshape(3, 2)}
    out = be.infer(feed)
    np.testing.assert_allclose(out["probs"], [[3, 1], [3, 5], [3, 9]])
    assert out["probs"].dtype == np.float32


# ---------------------------------------------------------------------------------------------- streams
def test_backend_stream_waits_for_the_caller_and_outputs_are_recorded_on_it(world: World, package: Path,
                                                                             tmp_path: Path) -> None:
    torch = sys.modules["torch"]
    be = _backend(package, tmp_path)
    caller = torch.cuda.Stream(device=torch.device("cuda", 0))
    world.log.clear()
    with torch.cuda.stream(caller):
        out = be.infer_torch(_feed(world, 2))
    events = [e[:3] for e in world.log]
    wait_in = events.index(("wait", be.stream.name, caller.name))
    enqueue = next(i for i, e in enumerate(events) if e[0] == "enqueue")
    wait_out = events.index(("wait", caller.name, be.stream.name))
    assert wait_in < enqueue < wait_out
    assert events[enqueue][1] == be.stream.name != caller.name  # never the caller's (or the default) stream
    assert ("record_stream", out["probs"].data_ptr(), caller.name) in events


# ---------------------------------------------------------------------------------------------- CUDA graphs
def test_graphs_per_batch_each_with_its_own_context_replayed_alternately(world: World, package: Path,
                                                                          tmp_path: Path) -> None:
    be = _backend(package, tmp_path, cuda_graphs=True)
    plain = world.contexts[0]
    for step, batch in enumerate([1, 8, 1, 8, 8, 1, 3, 1]):
        feed = _feed(world, batch, seed=step)
        out = be.infer_torch(feed)["probs"].array
        np.testing.assert_allclose(out, _expected(feed), rtol=1e-6, err_msg=f"step {step} batch {batch}")
    assert sorted(be._graphs) == [1, 3, 8] and be.info()["graph_batches"] == [1, 3, 8]
    contexts = [g.context for g in be._graphs.values()]
    assert len({id(c) for c in contexts}) == 3 and plain not in contexts
    assert world.capture_modes == ["thread_local"] * 3
    assert sum(1 for e in world.log if e[0] == "replay") == 8
    assert be.graphs_disabled is None


def test_failed_capture_ends_it_runs_without_graphs_and_logs_once(world: World, package: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    be = _backend(package, tmp_path, cuda_graphs=True)
    world.capture_unsupported = True
    with caplog.at_level(logging.WARNING, logger="mmstream.runtime.tensorrt"):
        for step, batch in enumerate([1, 8, 1]):
            feed = _feed(world, batch, seed=step)
            np.testing.assert_allclose(be.infer_torch(feed)["probs"].array, _expected(feed), rtol=1e-6)
    warnings = [r for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(warnings) == 1 and "execute_async_v3 returned False under capture" in warnings[0].getMessage()
    assert world.capture_modes == ["thread_local"]  # not retried at other batch sizes
    assert all(s.capturing is None for s in world.streams.values())  # the capture was ended
    assert be._graphs == {} and "batch 1" in be.info()["graphs_disabled"]


def test_concurrent_callers_do_not_interleave_on_a_context(world: World, package: Path, tmp_path: Path) -> None:
    for graphs in (False, True):
        be = _backend(package, tmp_path, cuda_graphs=graphs)
        world.slow_binds, world.races = True, 0
        errors: list[str] = []

        def worker(seed: int) -> None:
            for i in range(6):
                feed = _feed(world, 1 + (seed + i) % 3 * 3, seed=seed * 100 + i)
                out = be.infer_torch(feed)["probs"].array
                if not np.allclose(out, _expected(feed)):
                    errors.append(f"thread {seed} call {i}")

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors and world.races == 0, (graphs, errors, world.races)
        if graphs:
            assert sorted(be._graphs) == [1, 4, 7] and world.capture_modes.count("thread_local") == 3


# ---------------------------------------------------------------------------------------------- auto
def test_availability_creates_one_runtime_and_reports_a_null_factory(world: World) -> None:
    from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason

    world.runtime_fails = True
    reason = tensorrt_unavailable_reason()
    assert reason and "tensorrt.Runtime cannot be created (TypeError: pybind11::init(): factory function " \
                      "returned nullptr)" in reason
    world.runtime_fails = False
    assert tensorrt_unavailable_reason() == reason  # probed once per process (per tensorrt module)


def test_auto_falls_back_when_tensorrt_is_installed_but_broken(world: World, model_package: Path,  # noqa: F811
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MMSTREAM_ENGINE_CACHE", str(tmp_path))
    world.builder_fails = True  # Runtime works (the availability probe passes), Builder's factory returns null
    with caplog.at_level(logging.INFO, logger="mmstream.runtime.auto"):
        be = create_backend("auto", load_package(model_package))
    assert be.name == "onnxruntime"
    passed = be.selection["passed_over"]  # type: ignore[attr-defined]
    assert passed[0].startswith("tensorrt: failed to load (tensorrt backend failed to load")
    assert "TypeError" in passed[0] and "factory function returned nullptr" in passed[0]
    assert "backend auto: using onnxruntime" in caplog.text and "factory function returned nullptr" in caplog.text


def test_auto_falls_back_when_the_runtime_cannot_be_created(world: World, model_package: Path,  # noqa: F811
                                                             caplog: pytest.LogCaptureFixture) -> None:
    world.runtime_fails = True
    with caplog.at_level(logging.INFO, logger="mmstream.runtime.auto"):
        be = create_backend("auto", load_package(model_package))
    assert be.name == "onnxruntime"
    passed = be.selection["passed_over"]  # type: ignore[attr-defined]
    assert "tensorrt: tensorrt.Runtime cannot be created (TypeError" in passed[0]


def test_auto_builds_an_fp32_engine_when_the_package_has_no_fp16_model(world: World, package: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MMSTREAM_ENGINE_CACHE", str(tmp_path / "engines"))
    (package / "model_fp16.onnx").unlink()
    with caplog.at_level(logging.INFO, logger="mmstream.runtime.auto"):
        be = create_backend("auto", load_package(package), device_index=1)
    assert be.name == "tensorrt" and be.precision == "fp32" and be.device_index == 1
    assert world.parsed_paths == [str(package / "model.onnx")]
    assert "no model_fp16.onnx" in be.selection["notes"][0]  # type: ignore[attr-defined]
    assert "an fp32 engine is built from model.onnx" in caplog.text

