"""Masked multi-head self-attention that never attends to padding and never yields NaN.

Written out (not nn.MultiheadAttention) so the exported graph is plain MatMul/Softmax and
fully-masked rows stay finite (fill -1e4, which fp16 also represents).
"""

from __future__ import annotations

import torch
from torch import nn

MASK_FILL = -1.0e4


class MaskedSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: B×N×D, key_mask: B×N (1 = real token) -> (B×N×D, attention B×H×N×N)
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each B×H×N×d
        scores = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5  # B×H×N×N
        keep = key_mask[:, None, None, :] > 0.5
        attn = torch.softmax(scores.masked_fill(~keep, MASK_FILL), dim=-1)
        attn = attn * keep.to(attn.dtype)  # exactly 0 on padding, even when a row has no real key
        y = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(y), attn


class TransformerBlock(nn.Module):
    """Pre-norm transformer block over a masked token sequence."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MaskedSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, attn = self.attn(self.norm1(x), mask)
        x = x + self.drop(y)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, attn


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of x over ``dim`` where mask (same shape as x without the trailing feature dim) is 1; 0 if none."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)
