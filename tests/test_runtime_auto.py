"""Backend selection (auto), the torch reference backend, and the inference pipeline (fallback,
start-up checks) on a real exported package."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mmstream.errors import BackendError, ModelError
from mmstream.messages import TextUtterance
from mmstream.runtime.auto import create_backend
from mmstream.runtime.base import Backend
from mmstream.runtime.package import load_package
from mmstream.runtime.pipeline import InferencePipeline, synthetic_window
from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason
from tests.model_package_support import copy_package, model_package  # noqa: F401 - fixture


def test_auto_logs_what_it_chose_and_why(model_package: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger="mmstream.runtime.auto")
    be = create_backend("auto", load_package(model_package))
    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT is usable here; auto would pick it")
    assert be.name == "onnxruntime"
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "backend auto: using onnxruntime" in msg
    assert "tensorrt:" in msg and "onnxruntime-cuda:" in msg
    assert be.selection["chosen"] in ("onnxruntime", "onnxruntime-cuda")  # type: ignore[attr-defined]


def test_torch_reference_matches_onnxruntime(model_package: Path) -> None:  # noqa: F811
    pkg = load_package(model_package)
    ref, ort_be = create_backend("torch", pkg), create_backend("onnxruntime", pkg)
    feed = pkg.golden()["b8"]["in"]
    a, b = ref.infer(feed), ort_be.infer(feed)
    assert set(a) == set(b)
    for name in a:
        assert np.abs(a[name] - b[name]).max() <= 1e-4


def test_unknown_backend_and_tensorrt_without_gpu(model_package: Path) -> None:  # noqa: F811
    pkg = load_package(model_package)
    with pytest.raises(BackendError, match="unknown backend 'tvm'"):
        create_backend("tvm", pkg)
    reason = tensorrt_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(BackendError, match="tensorrt backend unavailable"):
        create_backend("tensorrt", pkg)


def _window(text: str = "what a wonderful day") -> object:
    w = synthetic_window()
    w.utterances = [TextUtterance(start_ns=0, end_ns=10, text=text)]
    w.presence["text"] = True
    return w


def test_pipeline_builds_messages_with_latency_and_presence(model_package: Path) -> None:  # noqa: F811
    pl = InferencePipeline.open(model_package, "onnxruntime")
    no_audio = synthetic_window()
    no_audio.presence["audio"] = False
    out = pl.run([_window(), no_audio])
    est, det = out.estimates[0], out.detections[0]
    assert est.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert abs(sum(est.probs) - 1) < 1e-5 and est.top_prob == max(est.probs)
    assert est.presence == {"video": True, "audio": True, "text": True}
    assert set(est.latency_ms) >= {"preprocess", "infer", "total"} and est.latency_ms["total"] > 0
    assert est.backend == "onnxruntime" and est.window_end_ns == 1_000_000_000
    assert out.estimates[1].presence == {"video": True, "audio": False, "text": False}
    assert out.estimates[1].contribution["audio"] == 0.0
    assert det.event_labels == ["face_present", "speech_present", "active_speaker"] and len(det.event_scores) == 3
    est.validate()
    det.validate()


class _FailingBackend(Backend):
    """Stands in for a GPU runtime that dies mid-run (a real one cannot be made to fail here)."""

    name = "tensorrt"

    def load(self) -> None:
        self.loaded = True

    def infer(self, feed):  # noqa: ANN001
        raise BackendError("CUDA error: an illegal memory access was encountered")

    input_names = property(lambda self: self.package.input_names)
    output_names = property(lambda self: self.package.output_names)


def test_runtime_failure_falls_back_once_and_says_so(model_package: Path,  # noqa: F811
                                                     caplog: pytest.LogCaptureFixture) -> None:
    pl = InferencePipeline.open(model_package, "onnxruntime")
    pl.backend = _FailingBackend(pl.package)
    with caplog.at_level(logging.ERROR, logger="mmstream.runtime.pipeline"):
        first = pl.run([_window()])
        second = pl.run([_window()])
    assert first.estimates[0].backend == "onnxruntime" and second.estimates[0].backend == "onnxruntime"
    falls = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(falls) == 1 and "backend tensorrt failed" in falls[0].getMessage()

    strict = InferencePipeline.open(model_package, "onnxruntime", fallback="none")
    strict.backend = _FailingBackend(strict.package)
    with pytest.raises(BackendError, match="illegal memory access"):
        strict.run([_window()])


def test_weights_that_do_not_match_the_golden_outputs_fail_at_start(tmp_path: Path,
                                                                    model_package: Path) -> None:  # noqa: F811
    pkg_dir = copy_package(model_package, tmp_path / "p")
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(pkg_dir / "model.onnx"))
    bias = next(t for t in m.graph.initializer if list(t.dims) == [7])  # the emotion head's bias
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + np.arange(7, dtype=np.float32), bias.name))
    onnx.save(m, str(pkg_dir / "model.onnx"))  # valid ONNX, same inputs, different weights
    with pytest.raises(ModelError, match=r"p/model.onnx: output '.*' differs from golden.npz"):
        InferencePipeline.open(pkg_dir, "onnxruntime")


def test_preprocessing_that_disagrees_with_the_spec_fails_at_start(tmp_path: Path,
                                                                   model_package: Path) -> None:  # noqa: F811
    pkg_dir = copy_package(model_package, tmp_path / "p")
    spec = json.loads((pkg_dir / "model.json").read_text())
    spec["preprocessing"]["params"]["audio"]["n_mels"] = 80
    (pkg_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=r"model.json: input 'logmel' from preprocessor fused_v1 is "
                                         r"float32\[2, 80, 100\], model.json declares float32\[2, 64, 100\]"):
        InferencePipeline.open(pkg_dir, "onnxruntime")
