"""Checkpoints that carry their own config, labels, preprocessing params and vocabulary.

Layout (a torch.save'd dict): format, format_version, config (FusedModelConfig.to_dict()),
labels {emotion, events}, preprocessing {kind, params}, vocab [tokens], state_dict,
optional extra (optimizer state, step, metrics: whatever a training loop wants to keep).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmstream.errors import ModelError
from mmstream.model.config import FusedModelConfig
from mmstream.model.fused import FusedModel
from mmstream.preprocess.tokenizer import Vocab

FORMAT = "mmstream-checkpoint"
FORMAT_VERSION = 1
PREPROCESSING_KIND = "fused_v1"


def checkpoint_dict(model: FusedModel, vocab: Vocab, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = model.cfg
    if len(vocab) > cfg.text.vocab_size:
        raise ModelError(f"vocab has {len(vocab)} tokens but the model's text.vocab_size is {cfg.text.vocab_size}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "labels": {"emotion": list(cfg.emotion_labels), "events": list(cfg.event_labels)},
        "preprocessing": {"kind": PREPROCESSING_KIND, "params": cfg.preprocessing_params()},
        "vocab": list(vocab.tokens),
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }


def save_checkpoint(path: str | Path, model: FusedModel, vocab: Vocab, extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint_dict(model, vocab, extra), tmp)
    tmp.replace(path)  # atomic: a crash never leaves half a checkpoint under the real name
    return path


def load_checkpoint(path: str | Path) -> tuple[FusedModel, Vocab, dict[str, Any]]:
    """(model in eval mode, vocab, the whole checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise ModelError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"checkpoint {path}: not an {FORMAT} file")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"checkpoint {path}: format_version {ckpt.get('format_version')} (expected {FORMAT_VERSION})")
    try:
        cfg = FusedModelConfig.from_dict(ckpt["config"])
        model = FusedModel(cfg)
        model.load_state_dict(ckpt["state_dict"])
        vocab = Vocab(ckpt["vocab"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"checkpoint {path} does not match its config: {exc}") from exc
    return model.eval(), vocab, ckpt
