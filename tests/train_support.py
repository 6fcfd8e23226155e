"""Shared helpers for the tests of mmstream.train: tiny synthetic recordings and a tiny model config."""

from __future__ import annotations

from pathlib import Path

from mmstream.train.config import TrainConfig
from mmstream.train.synthetic import EVENTS, LABELS, SynthConfig, generate

TINY_MODEL = {"embed_dim": 16, "attention_heads": 2, "dropout": 0.0,
              "video": {"frames": 2, "size": 16, "channels": [8, 16]},
              "audio": {"n_mels": 16, "n_frames": 50, "n_fft": 400, "hop_length": 320, "channels": [8, 16]},
              "text": {"embed_dim": 16, "vocab_size": 64, "max_tokens": 12}}


def tiny_synth(out: Path, *, sessions: int = 6, segments: int = 8, clean: bool = True, seed: int = 0) -> Path:
    """A small benchmark; ``clean`` removes the label noise so a few epochs learn it."""
    cfg = SynthConfig(sessions=sessions, segments_per_session=segments, fps=4, frame_size=32, seed=seed,
                      video_flip=0.0 if clean else 0.1, audio_flip=0.0 if clean else 0.1,
                      text_informative=1.0 if clean else 0.5, text_absent=0.0 if clean else 0.2)
    generate(out, cfg)
    return out / "manifest.json"


def tiny_config(manifest: Path, out_dir: Path, **train: object) -> TrainConfig:
    return TrainConfig.from_dict({
        "out_dir": str(out_dir), "seed": 0, "device": "cpu",
        "data": {"manifest": str(manifest), "dataset_dir": str(manifest.parent / "ds"),
                 "sync": {"window_s": 1.0, "hop_s": 1.0, "frames_per_window": 2},
                 "emotion_labels": list(LABELS), "event_labels": list(EVENTS),
                 "split_fractions": [0.5, 0.25, 0.25]},
        "model": {"overrides": TINY_MODEL},
        "train": {"epochs": 6, "batch_size": 16, "lr": 0.01, "patience": 100, **train},
        "eval": {"fusions": ["gated"], "trained_subsets": False, "dropout_ablation": False},
    })
