"""ONNX Runtime backend and model-package validation on a real exported package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmstream.errors import BackendError, ModelError
from mmstream.runtime.onnxruntime_backend import OnnxRuntimeBackend
from mmstream.runtime.package import load_package
from tests.model_package_support import copy_package, model_package  # noqa: F401 - fixture


def test_infer_matches_golden_and_reports_info(model_package: Path) -> None:  # noqa: F811
    pkg = load_package(model_package)
    be = OnnxRuntimeBackend(pkg, intra_op_threads=1)
    be.load()
    assert be.input_names == pkg.input_names and be.output_names == pkg.output_names
    for case, data in pkg.golden().items():
        out = be.infer(data["in"])
        for name, want in data["out"].items():
            assert np.abs(out[name] - want).max() <= 1e-4, (case, name)
    info = be.info()
    assert info["providers"] == ["CPUExecutionProvider"] and info["intra_op_threads"] == 1
    assert be.warmup((1, 8), iterations=1) > 0


def test_fp16_file_runs_close_to_fp32(model_package: Path) -> None:  # noqa: F811
    pkg = load_package(model_package)
    fp16 = OnnxRuntimeBackend(pkg, fp16=True)
    fp16.load()
    data = pkg.golden()["b8"]
    out = fp16.infer(data["in"])
    assert out["emotion_probs"].dtype == np.float32
    assert np.abs(out["emotion_probs"] - data["out"]["emotion_probs"]).max() < 5e-2


def test_default_threads_is_two_and_cpu_runs_without_torch(model_package: Path) -> None:  # noqa: F811
    code = ("import sys; from mmstream.runtime.package import load_package;"
            "from mmstream.runtime.auto import create_backend;"
            "b = create_backend('auto', load_package(sys.argv[1]));"
            "out = b.infer(b.package.dummy_feed(2));"
            "print(b.name, b.info()['intra_op_threads'], out['emotion_probs'].shape, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, str(model_package)], capture_output=True, text=True,
                         timeout=60, check=True)
    assert res.stdout.split() == ["onnxruntime", "2", "(2,", "7)", "False"]


def test_missing_package_pieces_name_the_file(tmp_path: Path, model_package: Path) -> None:  # noqa: F811
    with pytest.raises(ModelError, match="does not exist"):
        load_package(tmp_path / "nope")
    pkg_dir = copy_package(model_package, tmp_path / "p")
    (pkg_dir / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"p/model.onnx is missing"):
        load_package(pkg_dir)
    (pkg_dir / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"model.json is not valid JSON"):
        load_package(pkg_dir)
    (pkg_dir / "model.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelError, match=r"missing keys \['inputs', 'outputs', 'preprocessing'\]"):
        load_package(pkg_dir)


def test_corrupt_onnx_is_a_model_error_naming_the_file(tmp_path: Path, model_package: Path) -> None:  # noqa: F811
    pkg_dir = copy_package(model_package, tmp_path / "p")
    data = (pkg_dir / "model.onnx").read_bytes()
    (pkg_dir / "model.onnx").write_bytes(data[: len(data) // 3])
    be = OnnxRuntimeBackend(load_package(pkg_dir))
    with pytest.raises(ModelError, match=r"ONNX file .*p/model.onnx cannot be loaded"):
        be.load()


def test_spec_that_disagrees_with_the_onnx_inputs_names_the_mismatch(tmp_path: Path,
                                                                      model_package: Path) -> None:  # noqa: F811
    pkg_dir = copy_package(model_package, tmp_path / "p")
    spec = json.loads((pkg_dir / "model.json").read_text())
    spec["inputs"][2]["shape"] = ["batch", 80, 100]  # says 80 mels; the graph takes 64
    (pkg_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=r"model.onnx: input 'logmel' has shape \['batch', 64, 100\], "
                                         r"model.json says \['batch', 80, 100\]"):
        OnnxRuntimeBackend(load_package(pkg_dir)).load()
    spec["inputs"][2]["shape"] = ["batch", 64, 100]
    spec["inputs"][4]["name"] = "token_ids"
    (pkg_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=r"inputs .* do not match model.json inputs"):
        OnnxRuntimeBackend(load_package(pkg_dir)).load()


def test_unavailable_provider_is_a_backend_error(model_package: Path) -> None:  # noqa: F811
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(BackendError, match="no CUDAExecutionProvider"):
        OnnxRuntimeBackend(load_package(model_package), device="cuda").load()


def test_bad_feed_is_a_backend_error(model_package: Path) -> None:  # noqa: F811
    be = OnnxRuntimeBackend(load_package(model_package))
    be.load()
    feed = be.package.dummy_feed(1)
    feed["logmel"] = np.zeros((1, 80, 100), np.float32)
    with pytest.raises(BackendError, match="onnxruntime .* failed on"):
        be.infer(feed)
