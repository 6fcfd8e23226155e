"""TensorRT backend (TensorRT 10/11 API only).

Build: a strongly typed network parsed from the ONNX file (precision comes from the file:
model_fp16.onnx for "fp16", model.onnx for "fp32"; no builder precision flags), one
optimization profile over the batch range, a workspace limit, a persistent timing cache and a
progress monitor; ``build_serialized_network`` -> engine cache (see engine_cache.py). A cached
engine that fails to deserialize is dropped and rebuilt.
Run: torch CUDA tensors, ``set_input_shape`` + ``set_tensor_address`` + ``execute_async_v3`` on
a non-default CUDA stream; optional CUDA graphs (one per batch size).
tensorrt and torch are imported in ``load()`` only.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np

from mmstream.errors import BackendError, ModelError
from mmstream.runtime.base import Backend
from mmstream.runtime.engine_cache import EngineCache, EngineKey, batch_profiles
from mmstream.runtime.package import ModelPackage, check_io

log = logging.getLogger("mmstream.runtime.tensorrt")

PRECISIONS = ("fp16", "fp32")


def tensorrt_unavailable_reason() -> str | None:
    """None if TensorRT can run here, else why not (import or GPU)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError for a missing libnvinfer
        return f"tensorrt is not importable ({exc})"
    try:
        import torch
    except ImportError as exc:
        return f"torch (for CUDA tensors) is not importable ({exc})"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False (no NVIDIA GPU or driver)"
    return None


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
        self.cache = EngineCache(cache_dir)
        self.cuda_graphs = cuda_graphs
        self.device_index = device_index
        self.built = False  # True if load() built the engine instead of reading the cache
        self.key: EngineKey | None = None

    # ------------------------------------------------------------------ build / load
    def load(self) -> None:
        reason = tensorrt_unavailable_reason()
        if reason:
            raise BackendError(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt
        import torch

        self._trt, self._torch = trt, torch
        self.device = torch.device("cuda", self.device_index)
        props = torch.cuda.get_device_properties(self.device)
        self.gpu_name = props.name
        try:
            onnx_bytes = self.onnx_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"ONNX file {self.onnx_path} cannot be read: {exc}") from exc
        self.key = EngineKey.create(onnx_bytes, trt.__version__, props.name, (props.major, props.minor),
                                    self.precision, self.profiles)
        self.trt_logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.trt_logger)
        engine = None
        cached = self.cache.load(self.key)
        if cached is not None:
            engine = self.runtime.deserialize_cuda_engine(cached)
            if engine is None:
                log.warning("cached engine %s failed to deserialize; rebuilding", self.cache.engine_path(self.key))
                self.cache.invalidate(self.key)
        if engine is None:
            serialized = self._build(onnx_bytes)
            path = self.cache.store(self.key, serialized)
            log.info("tensorrt engine built and cached at %s", path)
            engine = self.runtime.deserialize_cuda_engine(serialized)
            if engine is None:
                raise BackendError(f"tensorrt could not deserialize the engine it just built from {self.onnx_path}")
            self.built = True
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: self._torch_dtype(n) for n in names}
        check_io(self.package, self.input_shapes(), self._outputs, str(self.onnx_path))
        self.stream = torch.cuda.Stream(device=self.device)  # never the default stream
        self._graphs: dict[int, tuple[Any, dict[str, Any], dict[str, Any]]] = {}
        self.loaded = True

    def _build(self, onnx_bytes: bytes) -> bytes:
        trt = self._trt
        builder = trt.Builder(self.trt_logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, self.trt_logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"tensorrt cannot parse {self.onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in self.profiles.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        timing = config.create_timing_cache(self.cache.load_timing_cache(trt.__version__, self.gpu_name))
        config.set_timing_cache(timing, ignore_mismatch=False)
        config.progress_monitor = _progress_monitor_class(trt)()
        log.info("building tensorrt %s engine from %s (batch %d..%d); this can take a while",
                 self.precision, self.onnx_path, self.min_batch, self.max_batch)
        t0 = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"tensorrt failed to build an engine from {self.onnx_path} (see the log above)")
        self.cache.store_timing_cache(trt.__version__, self.gpu_name, bytes(config.get_timing_cache().serialize()))
        log.info("tensorrt engine built in %.1f s", time.perf_counter() - t0)
        return bytes(serialized)

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
        """{name: torch CUDA tensor} -> {name: torch CUDA tensor}; synchronizes the stream before returning."""
        torch = self._torch
        batch = int(next(iter(feed.values())).shape[0])
        if not self.min_batch <= batch <= self.max_batch:
            raise BackendError(f"tensorrt engine for {self.onnx_path} takes batch {self.min_batch}..{self.max_batch}, "
                               f"got {batch}")
        with torch.cuda.stream(self.stream):
            if self.cuda_graphs:
                outs = self._run_graph(batch, feed)
            else:
                ins = {n: feed[n].to(self.device, self._dtypes[n], non_blocking=True).contiguous()
                       for n in self._inputs}
                outs = self._bind(ins)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise BackendError(f"tensorrt execute_async_v3 failed for {self.onnx_path}")
        self.stream.synchronize()
        return outs

    def _bind(self, ins: dict[str, Any]) -> dict[str, Any]:
        for n, t in ins.items():
            self.context.set_input_shape(n, tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        outs = {}
        for n in self._outputs:
            shape = tuple(self.context.get_tensor_shape(n))
            outs[n] = self._torch.empty(shape, dtype=self._dtypes[n], device=self.device)
            self.context.set_tensor_address(n, outs[n].data_ptr())
        return outs

    def _run_graph(self, batch: int, feed: dict[str, Any]) -> dict[str, Any]:
        torch = self._torch
        if batch not in self._graphs:
            static_in = {n: feed[n].to(self.device, self._dtypes[n]).clone().contiguous() for n in self._inputs}
            static_out = self._bind(static_in)
            self.context.execute_async_v3(self.stream.cuda_stream)  # settle shapes/allocations before capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
            self._graphs[batch] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[batch]
        for n in self._inputs:
            static_in[n].copy_(feed[n].to(self.device, self._dtypes[n], non_blocking=True))
        for n, t in static_in.items():  # the context may hold another batch size's shapes
            self.context.set_input_shape(n, tuple(t.shape))
        graph.replay()
        return {n: t.clone() for n, t in static_out.items()}

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            outs = self.infer_torch({n: torch.from_numpy(np.ascontiguousarray(feed[n])).pin_memory()
                                     for n in self._inputs})
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"tensorrt inference failed for {self.onnx_path}: {exc}") from exc
        return {n: t.float().cpu().numpy() for n, t in outs.items()}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": str(self.onnx_path), "precision": self.precision,
                "tensorrt": self._trt.__version__ if self.loaded else None,
                "gpu": getattr(self, "gpu_name", None), "engine": str(self.cache.engine_path(self.key)) if self.key else None,
                "built": self.built, "batch_range": [self.min_batch, self.max_batch], "cuda_graphs": self.cuda_graphs}

    def close(self) -> None:
        self._graphs = {}
        self.context = None
        self.engine = None
