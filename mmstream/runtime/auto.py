"""Backend factory: ``create_backend(name, package, **options)``, and ``auto`` selection.

``auto`` tries TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU; the first that loads
wins, and the choice and the reasons the others were passed over are logged (and kept in
``backend.selection``). TensorRT installed but broken (no CUDA, a build or cache failure) is
passed over like TensorRT missing: its backend turns every load failure into BackendError. A
package without ``model_fp16.onnx`` gets an fp32 TensorRT engine from ``model.onnx`` instead of
no TensorRT at all (said in the log and in ``selection["notes"]``).
"""

from __future__ import annotations

import logging
from typing import Any

from mmstream.errors import BackendError, MmstreamError
from mmstream.runtime.base import Backend
from mmstream.runtime.package import ModelPackage

log = logging.getLogger("mmstream.runtime.auto")

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cuda", "torch")


def _make(name: str, package: ModelPackage, options: dict[str, Any]) -> Backend:
    if name == "onnxruntime" or name == "onnxruntime-cuda":
        from mmstream.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(package, device="cuda" if name == "onnxruntime-cuda" else options.get("device", "cpu"),
                                  intra_op_threads=options.get("intra_op_threads", 2), fp16=options.get("fp16", False))
    if name == "tensorrt":
        from mmstream.runtime.tensorrt_backend import TensorRTBackend

        keys = ("precision", "min_batch", "opt_batch", "max_batch", "workspace_mib", "cache_dir", "cuda_graphs",
                "device_index")
        return TensorRTBackend(package, **{k: options[k] for k in keys if k in options})
    if name == "torch":
        from mmstream.runtime.torch_backend import TorchBackend

        return TorchBackend(package, device=options.get("device", "cpu"), threads=options.get("threads"))
    raise BackendError(f"unknown backend {name!r} (expected one of {BACKENDS})")


def create_backend(name: str, package: ModelPackage, *, load: bool = True, **options: Any) -> Backend:
    """A backend by name (``auto`` chooses); loaded unless ``load=False`` (not allowed for auto)."""
    if name != "auto":
        backend = _make(name, package, options)
        if load:
            backend.load()
        return backend
    return select_auto(package, **options)


def select_auto(package: ModelPackage, **options: Any) -> Backend:
    from mmstream.runtime.onnxruntime_backend import available_providers
    from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason

    passed: list[str] = []
    notes: list[str] = []
    trt_options = dict(options)
    if trt_options.get("precision", "fp16") == "fp16" and package.onnx_fp16_path is None:
        trt_options["precision"] = "fp32"
        notes.append(f"tensorrt: {package.directory} has no model_fp16.onnx; an fp32 engine is built from "
                     f"{package.onnx_path.name}")
    candidates: list[tuple[str, str | None, dict[str, Any]]] = [
        ("tensorrt", tensorrt_unavailable_reason(), trt_options),
        ("onnxruntime-cuda", None if "CUDAExecutionProvider" in available_providers()
         else f"CUDAExecutionProvider not among onnxruntime providers {available_providers()}", options),
        ("onnxruntime", None, options),
    ]
    for name, unavailable, opts in candidates:
        if unavailable:
            passed.append(f"{name}: {unavailable}")
            continue
        try:
            backend = _make(name, package, opts)
            backend.load()
        except MmstreamError as exc:
            passed.append(f"{name}: failed to load ({exc})")
            continue
        why = "; ".join(passed) if passed else "first choice"
        note = f" ({'; '.join(notes)})" if notes and name == "tensorrt" else ""
        log.info("backend auto: using %s%s (passed over: %s)", name, note, why)
        backend.selection = {"chosen": name, "passed_over": passed,  # type: ignore[attr-defined]
                             "notes": notes if name == "tensorrt" else []}
        return backend
    raise BackendError("backend auto: no backend could load " + "; ".join(passed))
