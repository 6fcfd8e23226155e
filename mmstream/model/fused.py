"""FusedModel: encoders -> fusion -> heads, driven by one FusedModelConfig.

``forward(batch)`` takes a dict of tensors (the same names as the ONNX inputs):
    frames      B×T×3×S×S float32   frame_mask B×T float32 (1 = real frame)
    logmel      B×M×F float32       audio_mask B×F float32 (1 = real audio frame)
    tokens      B×L int64 (0 = pad) presence   B×3 float32 (video, audio, text)
and returns a dict: emotion_logits B×C and/or event_logits B×E, contribution B×3,
fused B×D and embeddings {modality: B×D} (for training losses and probes).
A modality counts as present only if ``presence`` says so and its mask has a real element.
"""

from __future__ import annotations

import torch
from torch import nn

from mmstream.messages import MODALITIES
from mmstream.model.config import FusedModelConfig
from mmstream.model.encoders import AudioEncoder, FrameEncoder, TextEncoder
from mmstream.model.fusion import build_fusion
from mmstream.model.heads import DetectionHead, EmotionHead

INPUT_NAMES = ("frames", "frame_mask", "logmel", "audio_mask", "tokens", "presence")


class FusedModel(nn.Module):
    def __init__(self, cfg: FusedModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.video = FrameEncoder(cfg.video, d)
        self.audio = AudioEncoder(cfg.audio, d)
        self.text = TextEncoder(cfg.text, d, cfg.dropout)
        self.fusion = build_fusion(cfg.fusion, d, len(MODALITIES), cfg.attention_heads, cfg.dropout)
        self.emotion_head = EmotionHead(d, cfg.emotion_labels, cfg.dropout) if "emotion" in cfg.heads else None
        self.detection_head = DetectionHead(d, cfg.event_labels, cfg.dropout) if "detection" in cfg.heads else None

    def effective_presence(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        has = torch.stack([
            (batch["frame_mask"] > 0.5).any(dim=1),
            (batch["audio_mask"] > 0.5).any(dim=1),
            (batch["tokens"] > 0).any(dim=1),
        ], dim=1).to(batch["presence"].dtype)
        return (batch["presence"] > 0.5).to(has.dtype) * has  # B×3

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        presence = self.effective_presence(batch)
        emb = {
            "video": self.video(batch["frames"], batch["frame_mask"]),
            "audio": self.audio(batch["logmel"], batch["audio_mask"]),
            "text": self.text(batch["tokens"]),
        }
        stacked = torch.stack([emb[m] for m in MODALITIES], dim=1)  # B×3×D
        fused, contribution = self.fusion(stacked, presence)
        out: dict[str, torch.Tensor | dict[str, torch.Tensor]] = {
            "fused": fused, "contribution": contribution, "presence": presence, "embeddings": emb}
        if self.emotion_head is not None:
            out["emotion_logits"] = self.emotion_head(fused)
        if self.detection_head is not None:
            out["event_logits"] = self.detection_head(fused)
        return out

    def output_names(self) -> tuple[str, ...]:
        """Names of the exported (inference) outputs, in order."""
        names: list[str] = []
        if self.emotion_head is not None:
            names.append("emotion_probs")
        if self.detection_head is not None:
            names.append("event_probs")
        return (*names, "contribution", "modality_presence")


class InferenceWrapper(nn.Module):
    """Positional inputs (INPUT_NAMES order) -> probabilities; what ONNX export traces.

    With ``half=True`` the weights run in fp16 while inputs and outputs stay float32
    (the graph casts), so every backend feeds the same arrays.
    """

    def __init__(self, model: FusedModel, half: bool = False) -> None:
        super().__init__()
        self.model = model
        self.half_ = half

    def forward(self, frames, frame_mask, logmel, audio_mask, tokens, presence):  # noqa: ANN001
        batch = {"frames": frames, "frame_mask": frame_mask, "logmel": logmel, "audio_mask": audio_mask,
                 "tokens": tokens, "presence": presence}
        if self.half_:
            batch = {k: (v.half() if v.is_floating_point() else v) for k, v in batch.items()}
        out = self.model(batch)
        results = []
        if "emotion_logits" in out:
            results.append(torch.softmax(out["emotion_logits"].float(), dim=-1))
        if "event_logits" in out:
            results.append(torch.sigmoid(out["event_logits"].float()))
        results += [out["contribution"].float(), out["presence"].float()]
        return tuple(results)
