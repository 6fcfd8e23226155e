"""ONNX export: checker, opset, dynamic batch, ORT-vs-torch parity (missing modalities, batch 1/8), fp16."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mmstream.errors import ModelError
from mmstream.model.checkpoint import load_checkpoint
from mmstream.model.export import check_parity, golden_inputs, torch_outputs
from tests.model_package_support import model_package  # noqa: F401 - fixture


def test_package_files_and_spec(model_package: Path) -> None:  # noqa: F811
    spec = json.loads((model_package / "model.json").read_text())
    for name in ("model.onnx", "model_fp16.onnx", "model.pt", "vocab.txt", "golden.npz"):
        assert (model_package / name).is_file(), name
    assert spec["preprocessing"]["kind"] == "fused_v1"
    assert spec["labels"]["emotion"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [i["name"] for i in spec["inputs"]] == ["frames", "frame_mask", "logmel", "audio_mask", "tokens", "presence"]
    assert all(i["shape"][0] == "batch" for i in spec["inputs"])
    assert spec["opset"] >= 17
    assert max(spec["parity_max_abs_diff"]["fp32"].values()) <= 1e-4
    assert max(spec["parity_max_abs_diff"]["fp16"].values()) <= 5e-2
    assert set(spec["parity_max_abs_diff"]["fp32"]) == {"b1", "b1_missing", "b8"}


def test_onnx_checker_and_opset(model_package: Path) -> None:  # noqa: F811
    for name in ("model.onnx", "model_fp16.onnx"):
        onnx.checker.check_model(str(model_package / name), full_check=True)
        m = onnx.load(str(model_package / name))
        assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
        assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp16 graph takes fp32 too


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_ort_matches_torch_at_any_batch(model_package: Path, batch: int) -> None:  # noqa: F811
    model, _, _ = load_checkpoint(model_package / "model.pt")
    feed = golden_inputs(model.cfg, batch, seed=10 + batch)
    ref = torch_outputs(model, feed)
    sess = ort.InferenceSession(str(model_package / "model.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    for name, want in ref.items():
        assert got[name].shape == want.shape
        assert np.abs(got[name] - want).max() <= 1e-4, name
    if batch == 8:  # every presence pattern is in the batch: missing modalities get contribution 0
        assert np.all(got["contribution"][feed["presence"] == 0] == 0)


def test_golden_file_holds_torch_outputs(model_package: Path) -> None:  # noqa: F811
    model, _, _ = load_checkpoint(model_package / "model.pt")
    with np.load(model_package / "golden.npz") as z:
        feed = {k.split("/")[-1]: z[k] for k in z.files if k.startswith("b8/in/")}
        want = {k.split("/")[-1]: z[k] for k in z.files if k.startswith("b8/out/")}
    got = torch_outputs(model, feed)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_parity_check_catches_a_wrong_model(model_package: Path) -> None:  # noqa: F811
    model, _, _ = load_checkpoint(model_package / "model.pt")
    assert max(check_parity(model, model_package / "model.onnx").values()) <= 1e-4
    with torch.no_grad():
        model.emotion_head.net[1].bias.add_(0.5 * torch.arange(7.0))  # a model that is not the exported one
    with pytest.raises(ModelError, match="differs from torch on golden case"):
        check_parity(model, model_package / "model.onnx")
