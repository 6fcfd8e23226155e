"""What a model package is and which backends can run it here (for `mmstream model info`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmstream.runtime.package import load_package


def backend_availability() -> dict[str, str]:
    from mmstream.runtime.onnxruntime_backend import available_providers
    from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason

    providers = available_providers()
    trt = tensorrt_unavailable_reason()
    try:
        import importlib.util

        has_torch = importlib.util.find_spec("torch") is not None
    except ValueError:
        has_torch = False
    return {
        "tensorrt": "available" if trt is None else f"unavailable: {trt}",
        "onnxruntime-cuda": "available" if "CUDAExecutionProvider" in providers else "unavailable: no CUDAExecutionProvider",
        "onnxruntime": "available" if "CPUExecutionProvider" in providers else "unavailable: onnxruntime not installed",
        "torch": "available" if has_torch else "unavailable: torch not installed",
    }


def package_info(directory: str | Path) -> dict[str, Any]:
    pkg = load_package(directory)
    s = pkg.spec
    files = {p.name: p.stat().st_size for p in sorted(pkg.directory.iterdir()) if p.is_file()}
    return {
        "package": str(pkg.directory), "name": s.get("name"), "variant": s.get("variant"), "heads": s.get("heads"),
        "labels": s.get("labels"), "preprocessing": s["preprocessing"].get("kind"),
        "inputs": [f"{i['name']} {i['dtype']}{i['shape']}" for i in s["inputs"]],
        "outputs": [f"{o['name']} {o['dtype']}{o['shape']}" for o in s["outputs"]],
        "opset": s.get("opset"), "files": files, "parity": s.get("parity_max_abs_diff"),
        "source": s.get("source"), "versions": s.get("versions"), "backends": backend_availability(),
    }
