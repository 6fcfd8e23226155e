"""Fusion strategies over per-modality embeddings with presence masks.

Every strategy takes ``emb`` B×M×D (M modalities in MODALITIES order) and ``presence`` B×M
(1 = present) and returns (fused B×D, contribution B×M). A missing modality is zeroed before
fusing and gets contribution 0; contributions of the present ones sum to 1 (all 0 if none).
"""

from __future__ import annotations

import torch
from torch import nn

from mmstream.model.attention import MASK_FILL, TransformerBlock


def _normalize(w: torch.Tensor) -> torch.Tensor:
    return w / w.sum(dim=1, keepdim=True).clamp(min=1e-6)


class ConcatFusion(nn.Module):
    def __init__(self, dim: int, modalities: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim * modalities, dim), nn.ReLU(inplace=True))

    def forward(self, emb: torch.Tensor, presence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = emb * presence.unsqueeze(-1)
        return self.mlp(x.flatten(1)), _normalize(presence)


class AdditiveFusion(nn.Module):
    def __init__(self, dim: int, modalities: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, emb: torch.Tensor, presence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = _normalize(presence)
        return self.norm((emb * w.unsqueeze(-1)).sum(1)), w


class MultiplicativeFusion(nn.Module):
    """Elementwise product of (1 + tanh(e_m)) over present modalities (missing ones are the identity 1)."""

    def __init__(self, dim: int, modalities: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, emb: torch.Tensor, presence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = presence.unsqueeze(-1)
        factors = 1.0 + torch.tanh(emb) * p  # missing -> exactly 1
        return self.norm(torch.prod(factors, dim=1) - 1.0), _normalize(presence)


class GatedFusion(nn.Module):
    """Learned per-modality weights (a global prior plus a per-sample gate), softmax over present ones."""

    def __init__(self, dim: int, modalities: int) -> None:
        super().__init__()
        self.prior = nn.Parameter(torch.zeros(modalities))
        self.gate = nn.Linear(dim, 1)

    def forward(self, emb: torch.Tensor, presence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.gate(emb).squeeze(-1) + self.prior  # B×M
        w = torch.softmax(logits.masked_fill(presence < 0.5, MASK_FILL), dim=1) * presence
        w = _normalize(w)
        return (emb * w.unsqueeze(-1)).sum(1), w


class AttentionFusion(nn.Module):
    """A learned [FUSE] token attends over modality tokens (+ modality embeddings); padding is masked."""

    def __init__(self, dim: int, modalities: int, heads: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.fuse_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.modality_embed = nn.Parameter(torch.zeros(1, modalities, dim))
        nn.init.normal_(self.fuse_token, std=0.02)
        nn.init.normal_(self.modality_embed, std=0.02)
        self.block = TransformerBlock(dim, heads, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, emb: torch.Tensor, presence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = emb.shape[0]
        tokens = torch.cat([self.fuse_token.expand(b, -1, -1), emb + self.modality_embed], dim=1)  # B×(1+M)×D
        mask = torch.cat([torch.ones_like(presence[:, :1]), presence], dim=1)  # [FUSE] always valid
        x, attn = self.block(tokens, mask)
        contribution = _normalize(attn[:, :, 0, 1:].mean(dim=1) * presence)  # [FUSE]'s attention on modalities
        return self.norm(x[:, 0]), contribution


def build_fusion(kind: str, dim: int, modalities: int, heads: int = 2, dropout: float = 0.0) -> nn.Module:
    if kind == "attention":
        return AttentionFusion(dim, modalities, heads, dropout)
    classes = {"concat": ConcatFusion, "additive": AdditiveFusion, "multiplicative": MultiplicativeFusion,
               "gated": GatedFusion}
    if kind not in classes:
        raise ValueError(f"unknown fusion {kind!r} (expected one of {sorted([*classes, 'attention'])})")
    return classes[kind](dim, modalities)
