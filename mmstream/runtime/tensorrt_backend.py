"""TensorRT backend (TensorRT 10/11 API only).

Build: a strongly typed network parsed from the ONNX file with ``parse_from_file`` (so a model
with external weights finds them; precision comes from the file: model_fp16.onnx for "fp16",
model.onnx for "fp32"; no builder precision flags), one optimization profile over the batch
range, a workspace limit, a persistent timing cache (dropped and rebuilt empty when TensorRT
rejects it) and a progress monitor; ``build_serialized_network`` -> engine cache (see
engine_cache.py). A cached engine that fails to deserialize is dropped and rebuilt; a cache that
cannot be written is a warning and the engine built in memory is used.
Run: torch CUDA tensors, ``set_input_shape`` + ``set_tensor_address`` (every return value checked,
256-byte aligned addresses) + ``execute_async_v3`` on a non-default CUDA stream ordered after the
caller's stream; optional CUDA graphs: one execution context with its own static buffers per
captured batch size, captured in thread-local mode, never rebound after capture; a failed capture
turns graphs off (logged once) and inference runs without them.
All load, build and inference work runs with ``device_index``'s GPU current. Any failure inside
``load()`` is a BackendError or ModelError, so ``auto`` can fall back.
tensorrt and torch are imported in functions only.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmstream.errors import BackendError, MmstreamError, ModelError
from mmstream.runtime.base import Backend
from mmstream.runtime.engine_cache import EngineCache, EngineKey, batch_profiles, host_platform, tensorrt_cuda_flavour
from mmstream.runtime.package import ModelPackage, check_io

log = logging.getLogger("mmstream.runtime.tensorrt")

PRECISIONS = ("fp16", "fp32")
#: setTensorAddress: "The pointer must have at least 256-byte alignment." (NvInferRuntime.h)
TENSOR_ALIGNMENT_BYTES = 256

# tensorrt module -> why a Runtime cannot be created there (None: it can); probed once per process
_runtime_probe: "weakref.WeakKeyDictionary[Any, str | None]" = weakref.WeakKeyDictionary()


def tensorrt_unavailable_reason() -> str | None:
    """None if TensorRT can run here, else why not (import, GPU, or a Runtime that cannot be created)."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError for a missing libnvinfer
        return f"tensorrt is not importable ({exc})"
    try:
        import torch
    except ImportError as exc:
        return f"torch (for CUDA tensors) is not importable ({exc})"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (no NVIDIA GPU or driver)"
    return _runtime_unavailable_reason(trt)


def _runtime_unavailable_reason(trt: Any) -> str | None:
    """Creates one trt.Runtime per process: an installed but broken TensorRT (CUDA fails to initialise,
    driver too old) raises ``TypeError: ... factory function returned nullptr`` here (NVIDIA/TensorRT#2913)."""
    if trt not in _runtime_probe:
        try:
            trt.Runtime(trt.Logger(trt.Logger.ERROR))
            _runtime_probe[trt] = None
        except Exception as exc:  # noqa: BLE001 - pybind raises TypeError for a null factory result
            _runtime_probe[trt] = (f"tensorrt.Runtime cannot be created ({type(exc).__name__}: {exc}); "
                                   f"CUDA failed to initialise for TensorRT {getattr(trt, '__version__', '?')}")
    return _runtime_probe[trt]


def _progress_monitor_class(trt: Any) -> type:
    class BuildProgress(trt.IProgressMonitor):
        """Logs each build phase and its steps (engine builds can take minutes)."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._phases: dict[str, tuple[int, float]] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._phases[phase_name] = (num_steps, time.perf_counter())
            indent = "  " if parent_phase else ""
            print(f"[tensorrt build] {indent}{phase_name}: {num_steps} steps", file=sys.stderr, flush=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            steps, t0 = self._phases.pop(phase_name, (0, time.perf_counter()))
            print(f"[tensorrt build] {phase_name} done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    return BuildProgress


@dataclass
class _CapturedGraph:
    """One CUDA graph for one batch size: its own execution context and static buffers, bound once
    before capture and never touched after (NVIDIA/TensorRT#3798: one context per captured graph)."""

    context: Any
    graph: Any
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, package: ModelPackage, *, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 1,
                 max_batch: int = 16, workspace_mib: int = 1024, cache_dir: str | None = None,
                 cuda_graphs: bool = False, device_index: int = 0) -> None:
        super().__init__(package)
        if precision not in PRECISIONS:
            raise BackendError(f"tensorrt precision {precision!r} not one of {PRECISIONS}")
        self.precision = precision
        self.onnx_path = package.onnx_fp16_path if precision == "fp16" else package.onnx_path
        if self.onnx_path is None:
            raise ModelError(f"model package {package.directory}: precision fp16 needs model_fp16.onnx "
                             f"(export it with `mmstream model export --fp16`)")
        shapes = {i["name"]: i["shape"] for i in package.spec["inputs"]}
        try:
            self.profiles = batch_profiles(shapes, min_batch, opt_batch, max_batch)
        except ValueError as exc:
            raise ModelError(f"{package.directory / 'model.json'}: {exc}") from exc
        self.max_batch = max_batch
        self.min_batch = min_batch
        self.workspace_bytes = workspace_mib << 20
        # every builder setting that changes the engine goes here, so it is part of the cache key. TF32 is on
        # by default (NvInfer.h BuilderFlag::kTF32) and rounds fp32 inner products to 10-bit mantissas:
        # off for "fp32", so an fp32 engine stays within the golden fp32 tolerance.
        self.builder_options: dict[str, str | int | bool | None] = {"strongly_typed": True,
                                                                     "tf32": precision != "fp32"}
        self.cache = EngineCache(cache_dir)
        self.cuda_graphs = cuda_graphs
        self.device_index = device_index
        self.built = False  # True if load() built the engine instead of reading the cache
        self.key: EngineKey | None = None
        self.misaligned_copies = 0  # inputs copied because their address was not 256-byte aligned
        self.graphs_disabled: str | None = None  # why CUDA graphs were turned off, once they were
        self._graphs: dict[int, _CapturedGraph] = {}
        self._lock = threading.Lock()  # one caller at a time on the contexts, the stream and the graphs

    # ------------------------------------------------------------------ build / load
    def load(self) -> None:
        reason = tensorrt_unavailable_reason()
        if reason:
            raise BackendError(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt
        import torch

        self._trt, self._torch = trt, torch
        count = torch.cuda.device_count()
        if not 0 <= self.device_index < count:
            raise BackendError(f"tensorrt backend: device_index {self.device_index} but this machine has {count} "
                               f"CUDA device(s) (0..{count - 1})")
        try:
            with torch.cuda.device(self.device_index):  # TensorRT works on the current device
                self._load(trt, torch)
        except MmstreamError:
            raise
        except Exception as exc:  # noqa: BLE001 - TypeError from a null factory, OSError, RuntimeError from CUDA
            raise BackendError(f"tensorrt backend failed to load {self.onnx_path} on cuda:{self.device_index}: "
                               f"{type(exc).__name__}: {exc}") from exc
        self.loaded = True

    def _load(self, trt: Any, torch: Any) -> None:
        self.device = torch.device("cuda", self.device_index)
        props = torch.cuda.get_device_properties(self.device_index)
        self.gpu_name = props.name
        try:
            onnx_bytes = self.onnx_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"ONNX file {self.onnx_path} cannot be read: {exc}") from exc
        self.cuda_flavour = tensorrt_cuda_flavour(torch_cuda=getattr(torch.version, "cuda", None))
        self.key = EngineKey.create(onnx_bytes, trt.__version__, props.name, (props.major, props.minor),
                                    self.precision, self.profiles, workspace_bytes=self.workspace_bytes,
                                    cuda_flavour=self.cuda_flavour, platform=host_platform(),
                                    builder_options=self.builder_options)
        self.trt_logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.trt_logger)
        engine = None
        cached = self._read_cached_engine()
        if cached is not None:
            engine = self.runtime.deserialize_cuda_engine(cached)
            if engine is None:
                log.warning("cached engine %s failed to deserialize; rebuilding", self.cache.engine_path(self.key))
                try:
                    self.cache.invalidate(self.key)
                except OSError as exc:
                    log.warning("could not delete %s: %s", self.cache.engine_path(self.key), exc)
        if engine is None:
            serialized = self._build()
            try:
                path = self.cache.store(self.key, serialized)
                log.info("tensorrt engine built and cached at %s", path)
            except OSError as exc:
                log.warning("tensorrt engine built but not cached (%s: %s); using it from memory",
                            self.cache.engine_path(self.key), exc)
            engine = self.runtime.deserialize_cuda_engine(serialized)
            if engine is None:
                raise BackendError(f"tensorrt could not deserialize the engine it just built from {self.onnx_path}")
            self.built = True
        self.engine = engine
        self.context = self._new_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: self._torch_dtype(n) for n in names}
        check_io(self.package, self.input_shapes(), self._outputs, str(self.onnx_path))
        # the engine's own profile (it may come from the cache): min and max shape per input
        self._profile = {n: tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(n, 0))
                         for n in self._inputs}
        self.stream = torch.cuda.Stream(device=self.device)  # never the default stream
        self._graphs = {}

    def _read_cached_engine(self) -> bytes | None:
        try:
            return self.cache.load(self.key)
        except OSError as exc:  # a directory where the file should be, no permission, ...
            log.warning("engine cache %s cannot be read (%s); building the engine",
                        self.cache.engine_path(self.key), exc)
            return None

    def _new_context(self) -> Any:
        context = self.engine.create_execution_context()
        if context is None:
            raise BackendError(f"tensorrt create_execution_context() returned None for {self.onnx_path} on "
                               f"cuda:{self.device_index} (out of GPU memory?)")
        return context

    def _build(self) -> bytes:
        trt = self._trt
        builder = trt.Builder(self.trt_logger)
        # STRONGLY_TYPED: precision follows the ONNX tensor types. TensorRT 11 makes every network strongly
        # typed and ignores this flag (harmless); 10.x needs it, so it is still passed where it exists.
        flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        network = builder.create_network(0 if flag is None else 1 << int(flag))
        parser = trt.OnnxParser(network, self.trt_logger)
        if not parser.parse_from_file(str(self.onnx_path)):  # a path, so external weight files are found
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"tensorrt cannot parse {self.onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if not self.builder_options["tf32"] and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in self.profiles.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        timing = self._attach_timing_cache(config)  # referenced until the build is done
        config.progress_monitor = _progress_monitor_class(trt)()
        log.info("building tensorrt %s engine from %s (batch %d..%d); this can take a while",
                 self.precision, self.onnx_path, self.min_batch, self.max_batch)
        t0 = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"tensorrt failed to build an engine from {self.onnx_path} (see the log above)")
        if timing is not None:
            self._store_timing_cache(config)
        log.info("tensorrt engine built in %.1f s", time.perf_counter() - t0)
        return bytes(serialized)

    # ------------------------------------------------------------------ timing cache
    def _timing_args(self) -> tuple[str, str, str]:
        return self._trt.__version__, self.gpu_name, self.cuda_flavour

    def _attach_timing_cache(self, config: Any) -> Any:
        """The stored timing cache attached to ``config``; one TensorRT rejects (corrupt: create returns
        None; another device: set_timing_cache returns False) is deleted and an empty one used instead."""
        path = self.cache.timing_cache_path(*self._timing_args())
        try:
            data = self.cache.load_timing_cache(*self._timing_args())
        except OSError as exc:
            log.warning("timing cache %s cannot be read (%s); starting an empty one", path, exc)
            data = b""
        timing, why = self._try_timing_cache(config, data)
        if timing is None and data:
            log.warning("timing cache %s rejected by tensorrt (%s); deleting it and starting an empty one", path, why)
            try:
                self.cache.drop_timing_cache(*self._timing_args())
            except OSError as exc:
                log.warning("could not delete %s: %s", path, exc)
            timing, why = self._try_timing_cache(config, b"")
        if timing is None:
            log.warning("tensorrt could not attach an empty timing cache (%s); building without one", why)
        return timing

    @staticmethod
    def _try_timing_cache(config: Any, data: bytes) -> tuple[Any, str]:
        try:
            timing = config.create_timing_cache(data)
        except (RuntimeError, TypeError, ValueError) as exc:
            return None, f"create_timing_cache raised {type(exc).__name__}: {exc}"
        if timing is None:
            return None, "create_timing_cache returned None (corrupt)"
        if not config.set_timing_cache(timing, ignore_mismatch=False):
            return None, "set_timing_cache returned False (written on another device or TensorRT build)"
        return timing, ""

    def _store_timing_cache(self, config: Any) -> None:
        try:
            self.cache.store_timing_cache(self._trt.__version__, self.gpu_name,
                                          bytes(config.get_timing_cache().serialize()), self.cuda_flavour)
        except OSError as exc:
            log.warning("timing cache %s not written: %s", self.cache.timing_cache_path(*self._timing_args()), exc)

    # ------------------------------------------------------------------ names
    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input_shapes(self) -> dict[str, list[Any]]:
        return {n: list(self.engine.get_tensor_shape(n)) for n in self._inputs}

    def _torch_dtype(self, name: str) -> Any:
        trt_dtype = self.engine.get_tensor_dtype(name)
        torch = self._torch
        table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT64": torch.int64,
                 "INT32": torch.int32, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool}
        for trt_name, torch_dtype in table.items():
            if trt_dtype == getattr(self._trt.DataType, trt_name, None):
                return torch_dtype
        raise BackendError(f"tensorrt tensor {name!r} of {self.onnx_path} has unsupported dtype {trt_dtype}")

    # ------------------------------------------------------------------ run
    def infer_torch(self, feed: dict[str, Any]) -> dict[str, Any]:
        """{name: torch tensor} -> {name: torch CUDA tensor on device_index's GPU}.

        The backend's stream waits for the caller's current stream (where ``feed`` was made), and the
        caller's stream waits for the results, so the outputs can be used on it right away without
        blocking the host; they are recorded on the caller's stream for the caching allocator.
        """
        torch = self._torch
        batch = self._check_feed(feed)
        with self._lock, torch.cuda.device(self.device_index):
            caller = torch.cuda.current_stream(self.device)
            self.stream.wait_stream(caller)
            with torch.cuda.stream(self.stream):
                outs = None
                if self.cuda_graphs and self.graphs_disabled is None:
                    outs = self._run_graph(batch, feed)
                if outs is None:
                    outs = self._run(feed)
            caller.wait_stream(self.stream)
            for t in outs.values():
                t.record_stream(caller)  # made on the backend's stream, used on the caller's
        return outs

    def _check_feed(self, feed: dict[str, Any]) -> int:
        """The batch size; BackendError naming the engine's profile if a shape is outside it."""
        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise BackendError(f"tensorrt engine for {self.onnx_path}: feed lacks inputs {missing} "
                               f"(has {sorted(feed)})")
        batches = {n: int(feed[n].shape[0]) for n in self._inputs}
        if len(set(batches.values())) != 1:
            raise BackendError(f"tensorrt engine for {self.onnx_path}: inputs disagree on the batch size {batches}")
        for n in self._inputs:
            shape = tuple(int(d) for d in feed[n].shape)
            lo, _, hi = self._profile[n]
            if len(shape) != len(lo) or any(not a <= d <= b for d, a, b in zip(shape, lo, hi)):
                raise BackendError(f"tensorrt engine for {self.onnx_path}: input {n!r} shape {shape} is outside "
                                   f"the optimization profile {self._profile_range(n)}")
        return next(iter(batches.values()))

    def _profile_range(self, name: str) -> str:
        lo, _, hi = self._profile[name]
        return f"min {lo} .. max {hi} (batch {lo[0]}..{hi[0]})"

    def _device_input(self, name: str, t: Any) -> Any:
        """``t`` on the GPU in the engine's dtype, contiguous and 256-byte aligned (copied if not)."""
        t = t.to(self.device, self._dtypes[name], non_blocking=True).contiguous()
        if t.data_ptr() % TENSOR_ALIGNMENT_BYTES:
            t = t.clone()  # a fresh allocation from the caching allocator is aligned
            self.misaligned_copies += 1
        return t

    def _bind(self, context: Any, ins: dict[str, Any]) -> dict[str, Any]:
        torch = self._torch
        for n, t in ins.items():
            shape = tuple(int(d) for d in t.shape)
            if not context.set_input_shape(n, shape):
                raise BackendError(f"tensorrt set_input_shape({n!r}, {shape}) failed for {self.onnx_path}; "
                                   f"the engine's optimization profile takes {self._profile_range(n)}")
            self._set_address(context, n, t)
        outs = {}
        for n in self._outputs:
            shape = tuple(int(d) for d in context.get_tensor_shape(n))
            if any(d < 0 for d in shape):
                raise BackendError(f"tensorrt output {n!r} of {self.onnx_path} has shape {shape} after every input "
                                   f"shape was set (data-dependent shapes are not supported)")
            outs[n] = torch.empty(shape, dtype=self._dtypes[n], device=self.device)
            self._set_address(context, n, outs[n])
        return outs

    def _set_address(self, context: Any, name: str, t: Any) -> None:
        ptr = t.data_ptr()
        if not context.set_tensor_address(name, ptr):
            raise BackendError(f"tensorrt set_tensor_address({name!r}, {ptr:#x}) failed for {self.onnx_path} "
                               f"(addresses must be {TENSOR_ALIGNMENT_BYTES}-byte aligned; offset "
                               f"{ptr % TENSOR_ALIGNMENT_BYTES})")

    def _enqueue(self, context: Any, what: str) -> None:
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise BackendError(f"tensorrt execute_async_v3 failed for {self.onnx_path} ({what}; see the log above)")

    def _run(self, feed: dict[str, Any]) -> dict[str, Any]:
        outs = self._bind(self.context, {n: self._device_input(n, feed[n]) for n in self._inputs})
        self._enqueue(self.context, "inference")
        return outs

    def _run_graph(self, batch: int, feed: dict[str, Any]) -> dict[str, Any] | None:
        """Replays this batch size's graph (captured on first use); None once capture has failed."""
        captured = self._graphs.get(batch)
        if captured is None:
            captured = self._capture(batch, feed)
            if captured is None:
                return None
            self._graphs[batch] = captured
        for n in self._inputs:
            captured.inputs[n].copy_(feed[n], non_blocking=True)
        captured.graph.replay()
        return {n: t.clone() for n, t in captured.outputs.items()}

    def _capture(self, batch: int, feed: dict[str, Any]) -> _CapturedGraph | None:
        """A new context and static buffers for ``batch``, warmed up, then captured (as trtexec does:
        thread-local capture mode, enqueue result checked, a failed capture ended and graphs turned off)."""
        torch = self._torch
        context = self._new_context()
        static_in = {n: self._device_input(n, feed[n]).clone() for n in self._inputs}  # own buffers
        static_out = self._bind(context, static_in)
        self._enqueue(context, f"warm-up before CUDA graph capture at batch {batch}")  # settles shapes/allocations
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        enqueued, ended = False, ""
        graph.capture_begin(capture_error_mode="thread_local")  # captures the current stream: self.stream
        try:
            # an engine may hold operations not allowed under capture: enqueue then returns False
            enqueued = context.execute_async_v3(self.stream.cuda_stream)
        finally:
            try:
                graph.capture_end()
            except RuntimeError as exc:  # capture invalidated; torch's CUDA check clears the error
                ended = str(exc)
        if enqueued and not ended:
            log.info("tensorrt CUDA graph captured for batch %d (its own execution context)", batch)
            return _CapturedGraph(context, graph, static_in, static_out)
        why = "execute_async_v3 returned False under capture" if not enqueued else f"capture_end failed: {ended}"
        self.graphs_disabled = f"capture at batch {batch} failed ({why})"
        log.warning("tensorrt CUDA graph capture failed for %s at batch %d (%s); running without CUDA graphs "
                    "from now on", self.onnx_path, batch, why)
        return None

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            outs = self.infer_torch({n: torch.from_numpy(np.ascontiguousarray(feed[n])).pin_memory()
                                     for n in self._inputs})
            return {n: t.float().cpu().numpy() for n, t in outs.items()}  # .cpu() waits on the caller's stream
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"tensorrt inference failed for {self.onnx_path}: {exc}") from exc

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": str(self.onnx_path), "precision": self.precision,
                "tensorrt": self._trt.__version__ if self.loaded else None,
                "cuda_flavour": getattr(self, "cuda_flavour", None), "device_index": self.device_index,
                "gpu": getattr(self, "gpu_name", None),
                "engine": str(self.cache.engine_path(self.key)) if self.key else None,
                "built": self.built, "batch_range": [self.min_batch, self.max_batch], "cuda_graphs": self.cuda_graphs,
                "graph_batches": sorted(self._graphs), "graphs_disabled": self.graphs_disabled,
                "misaligned_copies": self.misaligned_copies}

    def close(self) -> None:
        with self._lock:
            self._graphs = {}
            self.context = None
            self.engine = None
