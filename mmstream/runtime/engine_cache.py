"""TensorRT engine cache: engines keyed so a changed model, TensorRT build, GPU, precision, profile or
build option never runs a stale engine. Pure Python (no tensorrt/torch import): unit-testable anywhere.

key = sha256 over canonical JSON of {onnx_sha256, trt_version, cuda_flavour, platform, gpu_name,
compute_capability, precision, profiles, workspace_bytes, builder_options}. ``cuda_flavour`` is
needed because the CUDA 12 and CUDA 13 wheels of one TensorRT release report the same
``trt.__version__``; ``platform`` (OS and machine) because a cache directory can be shared
between hosts; ``workspace_bytes`` because the workspace limit decides which tactics the builder may
pick; ``builder_options`` holds every other builder setting that changes the engine (network
flags today; optimisation level or hardware/version compatibility as soon as they become
parameters). Files: ``<key>.engine`` (+ ``<key>.json`` describing it), written atomically (temp
file in the same directory, fsync, rename). A timing cache per (TensorRT version, CUDA flavour,
GPU) lives beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: input name -> (min, opt, max) shapes
Profiles = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
#: builder option name -> value (JSON scalars only, so the key stays canonical)
BuilderOptions = dict[str, "str | int | bool | None"]


def default_cache_dir() -> Path:
    root = os.environ.get("MMSTREAM_ENGINE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmstream", "engines")
    return Path(root)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def host_platform() -> str:
    """OS and machine, e.g. ``Linux-x86_64`` or ``Linux-aarch64`` (engines are not portable across them)."""
    return f"{_platform.system()}-{_platform.machine()}"


def tensorrt_cuda_flavour(distributions: dict[str, list[str]] | None = None,
                          torch_cuda: str | None = None) -> str:
    """Which CUDA build of TensorRT is installed, e.g. ``cu12`` or ``cu13``.

    The pip wheels name it (``tensorrt-cu12``, ``tensorrt_cu13_bindings``, ``tensorrt_cu12_libs``);
    ``distributions`` is :func:`importlib.metadata.packages_distributions` (passed in by tests).
    A TensorRT without a flavoured wheel (a tarball or a distribution package) falls back to the
    CUDA major version torch was built with, marked as such (``torch-cu12``), else ``unknown``.
    """
    if distributions is None:
        import importlib.metadata

        distributions = importlib.metadata.packages_distributions()
    names = [*distributions.get("tensorrt", []), *distributions.get("tensorrt_libs", []),
             *distributions.get("tensorrt_bindings", [])]
    flavours = sorted({m.group(1) for n in names if (m := re.search(r"(?:^|[-_])(cu\d+)(?:[-_]|$)", n.lower()))})
    if flavours:
        return "+".join(flavours)
    if torch_cuda:
        return f"torch-cu{str(torch_cuda).split('.')[0]}"
    return "unknown"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    trt_version: str
    cuda_flavour: str
    platform: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    profiles: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]
    workspace_bytes: int
    builder_options: tuple[tuple[str, Any], ...]

    @classmethod
    def create(cls, onnx_bytes: bytes, trt_version: str, gpu_name: str, compute_capability: tuple[int, int],
               precision: str, profiles: Profiles, *, workspace_bytes: int, cuda_flavour: str, platform: str,
               builder_options: BuilderOptions | None = None) -> "EngineKey":
        canon = tuple(sorted((name, tuple(tuple(int(d) for d in s) for s in shapes))
                             for name, shapes in profiles.items()))
        options = tuple(sorted((str(k), v) for k, v in (builder_options or {}).items()))
        for name, value in options:
            if not isinstance(value, (str, int, bool, type(None))):
                raise TypeError(f"builder option {name!r} = {value!r}: expected str, int, bool or None")
        return cls(sha256_bytes(onnx_bytes), str(trt_version), str(cuda_flavour), str(platform), str(gpu_name),
                   (int(compute_capability[0]), int(compute_capability[1])), str(precision), canon,
                   int(workspace_bytes), options)

    def digest(self) -> str:
        return sha256_bytes(json.dumps(asdict(self), sort_keys=True).encode())

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.digest()}


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EngineCache:
    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.digest()}.engine"

    def load(self, key: EngineKey) -> bytes | None:
        path = self.engine_path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def store(self, key: EngineKey, engine_bytes: bytes) -> Path:
        path = self.engine_path(key)
        atomic_write(path, engine_bytes)
        atomic_write(path.with_suffix(".json"), (json.dumps(key.describe(), indent=2) + "\n").encode())
        return path

    def invalidate(self, key: EngineKey) -> None:
        """Drop an engine that failed to deserialize, so the next load rebuilds it."""
        path = self.engine_path(key)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def timing_cache_path(self, trt_version: str, gpu_name: str, cuda_flavour: str = "") -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in (trt_version, cuda_flavour, gpu_name) if p))
        return self.directory / f"timing-{slug}.cache"

    def load_timing_cache(self, trt_version: str, gpu_name: str, cuda_flavour: str = "") -> bytes:
        """The stored timing cache, or b"" (TensorRT's "start an empty one") if there is none."""
        try:
            return self.timing_cache_path(trt_version, gpu_name, cuda_flavour).read_bytes()
        except FileNotFoundError:
            return b""

    def store_timing_cache(self, trt_version: str, gpu_name: str, data: bytes, cuda_flavour: str = "") -> None:
        atomic_write(self.timing_cache_path(trt_version, gpu_name, cuda_flavour), data)

    def drop_timing_cache(self, trt_version: str, gpu_name: str, cuda_flavour: str = "") -> None:
        """Delete a timing cache TensorRT rejected (corrupt, or written on another device)."""
        self.timing_cache_path(trt_version, gpu_name, cuda_flavour).unlink(missing_ok=True)


def batch_profiles(input_shapes: dict[str, list[Any]], min_batch: int, opt_batch: int, max_batch: int) -> Profiles:
    """(min, opt, max) shapes for inputs whose only dynamic axis is the leading batch axis."""
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"batch range must satisfy 1 <= min {min_batch} <= opt {opt_batch} <= max {max_batch}")
    out: Profiles = {}
    for name, shape in input_shapes.items():
        rest = list(shape[1:])
        if any(not isinstance(d, int) or d < 0 for d in rest):
            raise ValueError(f"input {name!r} shape {shape}: only the batch axis may be dynamic")
        out[name] = tuple(tuple([b, *rest]) for b in (min_batch, opt_batch, max_batch))  # type: ignore[assignment]
    return out
