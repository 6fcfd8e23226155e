"""The default fused model: pretrained face CNN + hand-set audio and text experts, gated late fusion.

Inputs (B windows, T frame slots; names as in the ONNX graph and model.json)::

    faces         B×T×1×64×64 float32  main face of each frame slot, gray in [-1, 1]
    face_mask     B×T float32          1 where a face was found in that slot
    audio_cues    B×4 float32          [speech_prob, arousal, loudness, pitch_var], each in [0, 1]
    audio_present B float32            1 when the window has real (not gap-filled) audio
    text_scores   B×4 float32          VADER [neg, neu, pos, compound]
    text_present  B float32            1 when an utterance overlaps the window
    text_emotion  B×7 float32          MiniLM prototype emotion probabilities over EXPRESSION_LABELS
                                       (mmstream/pretrained/text_emotion.py); zeros when not available
    text_emotion_present B float32     1 when text_emotion holds MiniLM scores (encoder fetched, text present)

Outputs::

    emotion_probs B×7  fused probabilities over EXPRESSION_LABELS
    face_probs    B×7  the face expert alone (softmax of the ported CNN, averaged over faces)
    contribution  B×3  gate share of (video, audio, text); all 0 when nothing is present
    events        B×2  [face_present, speech_present] scores

Experts. Each present modality gives log-probabilities over the 7 expressions:
  face   log-softmax of the mini-Xception logits, averaged over the slots with a face;
  text   VADER part v = log-softmax(W_text · [neg, neu, pos, compound]) (valence only: positive ->
         happy, neutral -> neutral, negative -> spread over angry/sad/disgust/fear). With MiniLM
         scores q (text_emotion_present = 1): log-softmax((1 - a)·v + a·log max(q, q_floor)),
         a = TEXT_EMOTION_MIX, a geometric mix in which MiniLM says *which* emotion (angry vs sad
         vs afraid) and VADER's valence still counts; without them (0) exactly v;
  audio  softmax(W_audio · [arousal - 0.5, 1]) (arousal only: high -> angry/happy/surprise/fear,
         low -> sad/neutral).
Fusion (late, gated log-linear pooling): gates g = (w_face·face_present,
w_audio·audio_present·speech_prob, w_text·text_present); fused log-probs =
(Σ g_m·log p_m + ε·log prior) / (Σ g_m + ε), then softmax. So an absent modality has exactly zero
weight, silence turns the audio expert off, the face alone reproduces the CNN's distribution,
and nothing at all gives the prior (mostly neutral). The weights are set by hand (documented in
docs/models.md), not learned.

Imports torch: used at build/export time (``mmstream models fetch``), never by the runtime.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError
from mmstream.messages import MODALITIES
from mmstream.pretrained.build import built_with, staged_directory
from mmstream.pretrained.cache import TEXT_ENCODER_SUBDIR, load_manifest
from mmstream.pretrained.face_expression import EXPRESSION_LABELS, INPUT_SIZE, MiniXception, load_keras_mini_xception
from mmstream.pretrained.text_emotion import MAX_TOKENS, PROTOTYPE_SENTENCES, TEMPERATURE

BUILDER_VERSION = 7  # 7: MTCNN face detector and expression smoothing in the preprocessing params
MODEL_NAME = "pretrained_default"
EVENT_LABELS = ("face_present", "speech_present")
INPUT_NAMES = ("faces", "face_mask", "audio_cues", "audio_present", "text_scores", "text_present", "text_emotion",
               "text_emotion_present")
OUTPUT_NAMES = ("emotion_probs", "face_probs", "contribution", "events")
GATE_WEIGHTS = {"video": 1.0, "audio": 0.3, "text": 0.6}
PRIOR_EPS = 1e-3
# text expert with MiniLM: log-softmax((1 - a)·VADER log-probs + a·log max(q, floor)); a = 0.6 lets a
# confident MiniLM pick the emotion, the floor (log 1e-3 ≈ -6.9) keeps it from vetoing VADER outright.
TEXT_EMOTION_MIX = 0.6
TEXT_EMOTION_FLOOR = 1e-3
FACE_SLOTS = 4  # faces per window fed to the CNN (the ONNX graph itself accepts any number)

# rows: EXPRESSION_LABELS (angry, disgust, fear, happy, sad, surprise, neutral)
# text: columns VADER [neg, neu, pos, compound]
TEXT_WEIGHTS = np.array([
    [2.0, 0.0, -1.0, -1.0],   # angry
    [1.5, 0.0, -1.0, -1.0],   # disgust
    [1.5, 0.0, -1.0, -0.5],   # fear
    [-1.0, 0.0, 3.0, 2.0],    # happy
    [2.5, 0.0, -1.0, -1.0],   # sad
    [0.0, 0.0, 0.5, 0.0],     # surprise
    [0.0, 2.0, 0.0, 0.0],     # neutral
], np.float32)
# audio: columns [arousal - 0.5, 1]
AUDIO_WEIGHTS = np.array([
    [2.0, 0.0],    # angry
    [0.0, -1.0],   # disgust
    [1.0, 0.0],    # fear
    [1.5, 0.3],    # happy
    [-2.0, 0.0],   # sad
    [2.0, 0.0],    # surprise
    [-1.5, 0.5],   # neutral
], np.float32)
PRIOR_PROBS = np.array([0.05, 0.02, 0.05, 0.1, 0.05, 0.05, 0.68], np.float32)


class DefaultFusedModel(nn.Module):
    def __init__(self, face_cnn: MiniXception) -> None:
        super().__init__()
        self.face_cnn = face_cnn
        self.register_buffer("text_weights", torch.from_numpy(TEXT_WEIGHTS.copy()))
        self.register_buffer("audio_weights", torch.from_numpy(AUDIO_WEIGHTS.copy()))
        self.register_buffer("prior_logp", torch.from_numpy(np.log(PRIOR_PROBS / PRIOR_PROBS.sum())))
        self.register_buffer("gate_weights", torch.tensor([GATE_WEIGHTS[m] for m in MODALITIES]))

    def forward(self, faces: torch.Tensor, face_mask: torch.Tensor, audio_cues: torch.Tensor,
                audio_present: torch.Tensor, text_scores: torch.Tensor, text_present: torch.Tensor,
                text_emotion: torch.Tensor,
                text_emotion_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t = faces.shape[0], faces.shape[1]
        logits = self.face_cnn(faces.reshape(b * t, 1, INPUT_SIZE, INPUT_SIZE)).reshape(b, t, -1)
        face_logp_t = F.log_softmax(logits, dim=-1)                           # B×T×7
        n_faces = face_mask.sum(dim=1, keepdim=True)                           # B×1
        face_logp = (face_logp_t * face_mask.unsqueeze(-1)).sum(dim=1) / n_faces.clamp(min=1.0)
        face_present = (n_faces[:, 0] > 0).to(faces.dtype)                   # B

        vader_logp = F.log_softmax(text_scores @ self.text_weights.t(), dim=-1)             # B×7
        mix = TEXT_EMOTION_MIX * text_emotion_present.unsqueeze(-1)                          # B×1, 0 without MiniLM
        minilm_logp = torch.log(text_emotion.clamp(min=TEXT_EMOTION_FLOOR))                  # B×7
        text_logp = F.log_softmax((1.0 - mix) * vader_logp + mix * minilm_logp, dim=-1)
        arousal = audio_cues[:, 1:2] - 0.5
        audio_in = torch.cat([arousal, torch.ones_like(arousal)], dim=1)
        audio_logp = F.log_softmax(audio_in @ self.audio_weights.t(), dim=-1)
        speech_prob = audio_cues[:, 0] * audio_present

        gates = torch.stack([face_present, speech_prob, text_present], dim=1) * self.gate_weights  # B×3
        total = gates.sum(dim=1, keepdim=True)
        pooled = (gates[:, 0:1] * face_logp + gates[:, 1:2] * audio_logp + gates[:, 2:3] * text_logp
                  + PRIOR_EPS * self.prior_logp) / (total + PRIOR_EPS)
        emotion_probs = F.softmax(pooled, dim=-1)
        face_probs = F.softmax(face_logp, dim=-1) * face_present.unsqueeze(-1)
        contribution = gates / total.clamp(min=1e-6)
        events = torch.stack([face_present, speech_prob], dim=1)
        return emotion_probs, face_probs, contribution, events


def example_inputs(batch: int = 2, slots: int = 4) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, slots, 1, INPUT_SIZE, INPUT_SIZE, generator=g) * 2 - 1,
            torch.ones(batch, slots), torch.rand(batch, 4, generator=g), torch.ones(batch),
            torch.rand(batch, 4, generator=g), torch.ones(batch),
            F.softmax(torch.randn(batch, len(EXPRESSION_LABELS), generator=g) * 3, dim=-1), torch.ones(batch))


FP16_ATOL = 5e-2  # fp16 variant vs the fp32 torch model (as for `mmstream model export`)


class _HalfIO(nn.Module):
    """The model in fp16 with float32 inputs and outputs (casts at the edges), for GPUs."""

    def __init__(self, model: DefaultFusedModel) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(o.float() for o in self.model(*(x.half() for x in inputs)))


def export_onnx(model: DefaultFusedModel, path: Path, *, opset: int = 17, half: bool = False) -> None:
    """Export with dynamic batch and slot count; checks ONNX Runtime against the fp32 torch model on
    random inputs (max abs diff 1e-4; :data:`FP16_ATOL` for the fp16 variant, ``half=True``)."""
    import onnxruntime as ort

    args = example_inputs()
    dyn = {"faces": {0: "batch", 1: "slots"}, "face_mask": {0: "batch", 1: "slots"}, "audio_cues": {0: "batch"},
           "audio_present": {0: "batch"}, "text_scores": {0: "batch"}, "text_present": {0: "batch"},
           "text_emotion": {0: "batch"}, "text_emotion_present": {0: "batch"}}
    dyn.update({name: {0: "batch"} for name in OUTPUT_NAMES})
    tmp = path.with_suffix(".onnx.partial")
    exported = _HalfIO(model).eval() if half else model
    atol = FP16_ATOL if half else 1e-4
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant-folding notes about Slice; the output is checked below
        torch.onnx.export(exported, args, str(tmp), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)
        want = [o.numpy() for o in model(*args)]
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = sess.run(list(OUTPUT_NAMES), {n: a.numpy() for n, a in zip(INPUT_NAMES, args)})
    for name, w, g in zip(OUTPUT_NAMES, want, got):
        if not np.allclose(w, g, atol=atol):
            raise ModelError(f"ONNX export of the default model{' (fp16)' if half else ''}: output {name!r} differs "
                             f"from torch by {np.abs(w - g).max():.2e} (expected < {atol:g})")
    tmp.replace(path)


def golden_cases(model: DefaultFusedModel) -> dict[str, np.ndarray]:
    """golden.npz content (``<case>/in/<name>``, ``<case>/out/<name>``): every modality (text with MiniLM
    scores), text with VADER only (``no_minilm``), each modality missing, none."""
    args = list(example_inputs(batch=2, slots=FACE_SLOTS))
    cases = {"all": {}, "no_minilm": {6: 0.0, 7: 0.0}, "no_video": {1: 0.0}, "no_audio": {3: 0.0},
             "no_text": {5: 0.0, 6: 0.0, 7: 0.0}, "none": {1: 0.0, 3: 0.0, 5: 0.0, 6: 0.0, 7: 0.0}}
    out: dict[str, np.ndarray] = {}
    for case, zeroed in cases.items():
        feed = [a.clone() for a in args]
        for i, v in zeroed.items():
            feed[i].fill_(v)
        with torch.no_grad():
            res = model(*feed)
        out.update({f"{case}/in/{n}": a.numpy() for n, a in zip(INPUT_NAMES, feed)})
        out.update({f"{case}/out/{n}": r.numpy() for n, r in zip(OUTPUT_NAMES, res)})
    return out


def build_key(files: dict[str, Path]) -> str:
    """What the built package depends on: builder version, pretrained checksums, fusion constants."""
    manifest = load_manifest()
    h = hashlib.sha256(f"builder {BUILDER_VERSION} torch {torch.__version__}".encode())
    for name in sorted(manifest["files"]):
        h.update(f"{name}={manifest['files'][name]['sha256']}".encode())
    for arr in (TEXT_WEIGHTS, AUDIO_WEIGHTS, PRIOR_PROBS):
        h.update(arr.tobytes())
    h.update(json.dumps(GATE_WEIGHTS, sort_keys=True).encode())
    h.update(json.dumps({"mix": TEXT_EMOTION_MIX, "floor": TEXT_EMOTION_FLOOR, "temperature": TEMPERATURE,
                         "prototypes": PROTOTYPE_SENTENCES, "max_tokens": MAX_TOKENS}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def model_spec(key: str) -> dict:
    manifest = load_manifest()
    sources = {name: {"package": e["package"], "version": manifest["packages"][e["package"]]["version"],
                      "path_in_wheel": e["path_in_wheel"], "sha256": e["sha256"], "license": e["license"],
                      "optional": manifest["packages"][e["package"]].get("optional")}
               for name, e in manifest["files"].items()}
    from importlib.metadata import PackageNotFoundError, version

    try:
        vader_version = version("vadersentiment")
    except PackageNotFoundError:
        vader_version = "not installed"
    return {
        "name": MODEL_NAME,
        "variant": "pretrained",
        "labels": list(EXPRESSION_LABELS),
        "event_labels": list(EVENT_LABELS),
        "heads": ["emotion", "detection"],
        "files": {"onnx": "model.onnx", "onnx_fp16": "model_fp16.onnx"},
        "inputs": [
            {"name": "faces", "dtype": "float32", "shape": ["batch", FACE_SLOTS, 1, INPUT_SIZE, INPUT_SIZE]},
            {"name": "face_mask", "dtype": "float32", "shape": ["batch", FACE_SLOTS]},
            {"name": "audio_cues", "dtype": "float32", "shape": ["batch", 4]},
            {"name": "audio_present", "dtype": "float32", "shape": ["batch"]},
            {"name": "text_scores", "dtype": "float32", "shape": ["batch", 4]},
            {"name": "text_present", "dtype": "float32", "shape": ["batch"]},
            {"name": "text_emotion", "dtype": "float32", "shape": ["batch", len(EXPRESSION_LABELS)]},
            {"name": "text_emotion_present", "dtype": "float32", "shape": ["batch"]},
        ],
        "outputs": [
            {"name": "emotion_probs", "dtype": "float32", "shape": ["batch", len(EXPRESSION_LABELS)]},
            {"name": "face_probs", "dtype": "float32", "shape": ["batch", len(EXPRESSION_LABELS)]},
            {"name": "contribution", "dtype": "float32", "shape": ["batch", 3]},
            {"name": "events", "dtype": "float32", "shape": ["batch", len(EVENT_LABELS)]},
        ],
        "preprocessing": {"kind": "pretrained_default", "params": {
            "face_slots": FACE_SLOTS, "face_size": INPUT_SIZE, "face_margin": 0.1, "detect_side_px": 320,
            "face_detector": "mtcnn", "expression_smoothing_s": 1.0, "redetect_every": 10, "empty_rescan_every": 2, "speech_threshold": 0.5, "sample_rate_hz": 16000,
            # relative to the package directory; text_emotion is filled only when it holds the encoder
            "text_encoder_dir": f"../{TEXT_ENCODER_SUBDIR}"}},
        "fusion": {"kind": "gated_log_linear", "gate_weights": GATE_WEIGHTS, "prior_eps": PRIOR_EPS,
                   "prior_probs": PRIOR_PROBS.tolist(), "text_weights": TEXT_WEIGHTS.tolist(),
                   "audio_weights": AUDIO_WEIGHTS.tolist(), "text_emotion_mix": TEXT_EMOTION_MIX,
                   "text_emotion_floor": TEXT_EMOTION_FLOOR, "doc": "docs/models.md"},
        "text_emotion": {"encoder": "all-MiniLM-L6-v2 (optional; `mmstream models fetch` without --no-minilm)",
                         "scoring": "softmax(cos(embedding, prototype) / temperature)", "temperature": TEMPERATURE,
                         "max_tokens": MAX_TOKENS, "prototypes": {k: list(v) for k, v in PROTOTYPE_SENTENCES.items()}},
        "sources": {**sources, "vadersentiment": {"version": vader_version, "license": "MIT"}},
        "versions": {"torch": torch.__version__, "builder": BUILDER_VERSION},
        "build_key": key,
        "built_unix_s": int(time.time()),
    }


def build_default_package(out_dir: Path, *, files: dict[str, Path], force: bool = False,
                          progress: Callable[[str], None] = print) -> Path:
    """Port the face CNN, export the fused model to ONNX, write model.json; skipped when up to date."""
    if "face_expression" not in files:
        raise ModelError("building the default model needs the fer hdf5 (face_expression): fetch it first")
    key = build_key(files)
    out_dir = Path(out_dir)
    spec_path = out_dir / "model.json"
    if not force and built_with(spec_path, key, out_dir / "model.onnx"):
        progress(f"[models] default model: up to date ({out_dir})")
        return out_dir
    progress("[models] default model: porting the Keras face CNN to torch and exporting to ONNX ...")
    # build next to the target, then swap directories, so a reader never sees half a package
    with staged_directory(out_dir) as staging:
        model = DefaultFusedModel(load_keras_mini_xception(files["face_expression"])).eval()
        export_onnx(model, staging / "model.onnx")
        export_onnx(model, staging / "model_fp16.onnx", half=True)  # for TensorRT fp16 (strongly typed)
        np.savez(staging / "golden.npz", **golden_cases(model))
        (staging / "model.json").write_text(json.dumps(model_spec(key), indent=2) + "\n")
    progress(f"[models] default model: {out_dir / 'model.onnx'} + model_fp16.onnx + model.json + golden.npz "
             f"(ONNX checked against torch)")
    return out_dir
