"""`mmstream model info|variants|build-engine` as real commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason
from tests.model_package_support import model_package  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[1]


def _mmstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmstream.cli", "model", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def test_info_describes_package_and_backends(model_package: Path) -> None:  # noqa: F811
    res = _mmstream("info", str(model_package), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["name"] == "fused_v1" and info["preprocessing"] == "fused_v1" and info["opset"] >= 17
    assert info["backends"]["onnxruntime"] == "available"
    assert {"model.onnx", "model_fp16.onnx", "model.json", "vocab.txt", "golden.npz", "model.pt"} <= set(info["files"])


def test_info_on_a_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    res = _mmstream("info", str(tmp_path / "none"))
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_variants_lists_every_fusion() -> None:
    res = _mmstream("variants")
    assert res.returncode == 0
    for fusion in ("concat", "additive", "multiplicative", "gated", "attention"):
        assert f"fusion={fusion}" in res.stdout


def test_build_engine_without_tensorrt_says_why(model_package: Path) -> None:  # noqa: F811
    if tensorrt_unavailable_reason() is None:
        return  # covered by tests/test_runtime_tensorrt.py on GPU machines
    res = _mmstream("build-engine", str(model_package))
    assert res.returncode == 2 and "tensorrt backend unavailable" in res.stderr
