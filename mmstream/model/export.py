"""ONNX export of a FusedModel into a model package, checked against torch.

``export_package(model, vocab, out_dir)`` writes model.onnx (fp32), model_fp16.onnx (fp16 weights
and compute, float32 inputs/outputs: for GPUs), model.pt (checkpoint), vocab.txt, golden.npz
(golden inputs and torch outputs, for backend parity tests without torch) and model.json (the
spec). Each ONNX file passes onnx.checker and ONNX Runtime-vs-torch parity on the golden inputs
(batch 1 and 8, with missing modalities): max abs diff <= atol (1e-4 for fp32) or ModelError.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstream.errors import MissingExtraError, ModelError, optional_dependency
from mmstream.model.checkpoint import PREPROCESSING_KIND, save_checkpoint
from mmstream.model.config import FusedModelConfig
from mmstream.model.fused import INPUT_NAMES, FusedModel, InferenceWrapper
from mmstream.preprocess.tokenizer import Vocab

log = logging.getLogger("mmstream.model.export")

OPSET = 18
FP32_ATOL = 1e-4
FP16_ATOL = 5e-2
PACKAGE_FORMAT = "mmstream-model-package"


def input_specs(cfg: FusedModelConfig) -> list[dict[str, Any]]:
    v, a, t = cfg.video, cfg.audio, cfg.text
    return [
        {"name": "frames", "dtype": "float32", "shape": ["batch", v.frames, 3, v.size, v.size]},
        {"name": "frame_mask", "dtype": "float32", "shape": ["batch", v.frames]},
        {"name": "logmel", "dtype": "float32", "shape": ["batch", a.n_mels, a.n_frames]},
        {"name": "audio_mask", "dtype": "float32", "shape": ["batch", a.n_frames]},
        {"name": "tokens", "dtype": "int64", "shape": ["batch", t.max_tokens]},
        {"name": "presence", "dtype": "float32", "shape": ["batch", 3]},
    ]


def output_specs(model: FusedModel) -> list[dict[str, Any]]:
    sizes = {"emotion_probs": len(model.cfg.emotion_labels), "event_probs": len(model.cfg.event_labels),
             "contribution": 3, "modality_presence": 3}
    return [{"name": n, "dtype": "float32", "shape": ["batch", sizes[n]]} for n in model.output_names()]


def golden_inputs(cfg: FusedModelConfig, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs; row i has presence pattern i % 8 (bit 0 video, 1 audio, 2 text) after row 0 = all."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in input_specs(cfg):
        shape = [batch, *spec["shape"][1:]]
        if spec["name"] == "tokens":
            out["tokens"] = rng.integers(2, cfg.text.vocab_size, size=shape).astype(np.int64)
        else:
            out[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    out["frame_mask"] = (rng.random(out["frame_mask"].shape) > 0.3).astype(np.float32)
    out["audio_mask"] = (rng.random(out["audio_mask"].shape) > 0.2).astype(np.float32)
    out["presence"] = np.ones((batch, 3), np.float32)
    for i in range(batch):
        pattern = 7 if i == 0 else (7 - i) % 8
        bits = [(pattern >> k) & 1 for k in range(3)]
        out["presence"][i] = bits
        if not bits[0]:
            out["frames"][i], out["frame_mask"][i] = 0.0, 0.0
        if not bits[1]:
            out["logmel"][i], out["audio_mask"][i] = np.log(1e-6), 0.0
        if not bits[2]:
            out["tokens"][i] = 0
        else:
            out["tokens"][i, rng.integers(1, cfg.text.max_tokens):] = 0  # trailing padding
    out["frame_mask"][:, 0] = np.where(out["presence"][:, 0] > 0, 1.0, 0.0)
    return out


def golden_cases(cfg: FusedModelConfig) -> dict[str, dict[str, np.ndarray]]:
    """batch 1 all present, batch 1 video only, batch 8 with every presence pattern (incl. none)."""
    one_modality = golden_inputs(cfg, 8, seed=2)
    one_modality = {k: v[6:7] for k, v in one_modality.items()}  # row 6: pattern 1 = video only
    return {"b1": golden_inputs(cfg, 1, seed=1), "b1_missing": one_modality, "b8": golden_inputs(cfg, 8, seed=3)}


def torch_outputs(model: FusedModel, feed: dict[str, np.ndarray], half: bool = False) -> dict[str, np.ndarray]:
    wrapper = InferenceWrapper(model, half=half).eval()
    with torch.no_grad():
        outs = wrapper(*[torch.from_numpy(feed[n]) for n in INPUT_NAMES])
    return {n: o.numpy() for n, o in zip(model.output_names(), outs)}


def export_onnx(model: FusedModel, path: str | Path, *, half: bool = False, opset: int = OPSET) -> Path:
    """Trace ``model`` (eval mode) to ONNX with a dynamic batch axis; returns the path."""
    path = Path(path)
    model = copy.deepcopy(model).eval()
    if half:
        model = model.half()
    wrapper = InferenceWrapper(model, half=half).eval()
    example = golden_inputs(model.cfg, 2, seed=0)
    args = tuple(torch.from_numpy(example[n]) for n in INPUT_NAMES)
    batch = torch.export.Dim("batch", min=1, max=1024)
    t0 = time.perf_counter()
    noisy = [logging.getLogger(n) for n in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [lg.level for lg in noisy]
    for lg in noisy:  # the exporter logs every optimization pass at INFO
        lg.setLevel(logging.WARNING)
    try:
        with optional_dependency(f"ONNX export of {model.cfg.name}"), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, str(path), input_names=list(INPUT_NAMES),
                              output_names=list(model.output_names()), opset_version=opset, dynamo=True,
                              dynamic_shapes={n: {0: batch} for n in INPUT_NAMES}, external_data=False,
                              verbose=False)
    except MissingExtraError:  # onnxscript / onnx not installed: name the extra, not the exporter's traceback
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ModelError(f"ONNX export of {model.cfg.name} to {path} failed: {exc}") from exc
    finally:
        for lg, level in zip(noisy, levels):
            lg.setLevel(level)
    log.info("exported %s in %.1f s", path, time.perf_counter() - t0)
    return path


def check_onnx(path: str | Path) -> None:
    with optional_dependency(f"checking {path} with onnx.checker"):
        import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: onnx.checker failed: {exc}") from exc
    opset = max(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        raise ModelError(f"{path}: opset {opset} (expected >= 17)")


def check_parity(model: FusedModel, path: str | Path, *, half: bool = False, atol: float | None = None,
                 cases: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, float]:
    """Max abs diff (ORT CPU vs torch) per golden case; ModelError if any exceeds ``atol``."""
    import onnxruntime as ort

    atol = (FP16_ATOL if half else FP32_ATOL) if atol is None else atol
    cases = golden_cases(model.cfg) if cases is None else cases
    ref_model = copy.deepcopy(model).eval()
    if half:
        ref_model = ref_model.half()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    report: dict[str, float] = {}
    for case, feed in cases.items():
        ref = torch_outputs(ref_model, feed, half=half)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        diff = max(float(np.abs(got[n].astype(np.float32) - ref[n]).max()) for n in ref)
        if not np.isfinite(diff) or diff > atol:
            raise ModelError(f"{path}: ONNX Runtime differs from torch on golden case {case!r}: "
                             f"max abs diff {diff:.3g} > {atol:g}")
        report[case] = diff
    return report


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_package(model: FusedModel, vocab: Vocab, out_dir: str | Path, *, fp16: bool = True,
                   opset: int = OPSET, source: str = "") -> dict[str, Any]:
    """Write a complete, checked model package; returns its spec (also written as model.json)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.cfg
    vocab.save(out / "vocab.txt")
    save_checkpoint(out / "model.pt", model, vocab)
    cases = golden_cases(cfg)
    np.savez(out / "golden.npz", **{f"{c}/in/{k}": v for c, feed in cases.items() for k, v in feed.items()},
             **{f"{c}/out/{k}": v for c, feed in cases.items() for k, v in torch_outputs(model, feed).items()})

    files = {"onnx": "model.onnx", "checkpoint": "model.pt", "golden": "golden.npz"}
    export_onnx(model, out / "model.onnx", opset=opset)
    check_onnx(out / "model.onnx")
    parity = {"fp32": check_parity(model, out / "model.onnx", cases=cases)}
    if fp16:
        export_onnx(model, out / "model_fp16.onnx", half=True, opset=opset)
        check_onnx(out / "model_fp16.onnx")
        files["onnx_fp16"] = "model_fp16.onnx"
        try:
            parity["fp16"] = check_parity(model, out / "model_fp16.onnx", half=True, cases=cases)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. ORT CPU lacking an fp16 kernel
            log.warning("fp16 parity not checked on ONNX Runtime CPU: %s", exc)
            parity["fp16"] = {"skipped": str(exc)[:200]}

    import onnx

    spec = {
        "format": PACKAGE_FORMAT,
        "format_version": 1,
        "name": cfg.name,
        "variant": cfg.name,
        "heads": list(cfg.heads),
        "labels": {"emotion": list(cfg.emotion_labels) if "emotion" in cfg.heads else [],
                   "events": list(cfg.event_labels) if "detection" in cfg.heads else []},
        "inputs": input_specs(cfg),
        "outputs": output_specs(model),
        "preprocessing": {"kind": PREPROCESSING_KIND, "params": cfg.preprocessing_params()},
        "vocab": "vocab.txt",
        "files": files,
        "sha256": {k: sha256_file(out / v) for k, v in files.items() if k.startswith("onnx")},
        "opset": opset,
        "parity_max_abs_diff": parity,
        "config": cfg.to_dict(),
        "source": source or f"mmstream.model export of variant {cfg.name}",
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "python": platform.python_version()},
    }
    tmp = out / "model.json.tmp"
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    tmp.replace(out / "model.json")
    return spec


def export_from(out_dir: str | Path, *, variant: str = "fused_v1", checkpoint: str | Path | None = None,
                vocab_path: str | Path | None = None, fp16: bool = True, opset: int = OPSET,
                seed: int = 0, crop: str | None = None) -> dict[str, Any]:
    """Export a trained checkpoint, or (without one) a freshly initialized ``variant`` with ``seed``.

    ``crop`` ("center" or "face") overrides how the package's preprocessing crops frames.
    """
    from mmstream.model.checkpoint import load_checkpoint
    from mmstream.model.registry import create_model

    if checkpoint:
        model, vocab, _ = load_checkpoint(checkpoint)
        source = f"checkpoint {Path(checkpoint).resolve()}"
    else:
        torch.manual_seed(seed)
        model = create_model(variant)
        vocab = Vocab.load(vocab_path) if vocab_path else Vocab.default()
        source = f"variant {variant}, untrained (seed {seed})"
        if len(vocab) > model.cfg.text.vocab_size:
            raise ModelError(f"vocabulary {vocab_path} has {len(vocab)} tokens; variant {variant} takes at most "
                             f"{model.cfg.text.vocab_size}")
    if crop is not None and crop != model.cfg.video.crop:
        import dataclasses

        try:
            model.cfg = dataclasses.replace(model.cfg, video=dataclasses.replace(model.cfg.video, crop=crop))
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
    return export_package(model.eval(), vocab, out_dir, fp16=fp16, opset=opset, source=source)
