"""Output heads on the fused B×D representation."""

from __future__ import annotations

import torch
from torch import nn


class EmotionHead(nn.Module):
    """Single-label emotion classes: logits B×C (softmax at inference)."""

    def __init__(self, dim: int, labels: tuple[str, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.labels = tuple(labels)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, len(labels)))

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.net(fused)


class DetectionHead(nn.Module):
    """Multi-label window events (face_present, speech_present, ...): logits B×E (sigmoid at inference)."""

    def __init__(self, dim: int, labels: tuple[str, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.labels = tuple(labels)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, len(labels)))

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.net(fused)
