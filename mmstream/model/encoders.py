"""Per-modality encoders: each maps its inputs (+ mask) to a B×D embedding.

frames B×T×3×S×S + frame_mask B×T -> FrameEncoder (shared CNN per frame, masked mean over T)
logmel B×M×F + audio_mask B×F      -> AudioEncoder (2-D CNN on the log-mel image, masked mean over time)
tokens B×L (0 = padding)            -> TextEncoder (embedding + GRU or transformer, masked mean)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmstream.model.attention import TransformerBlock, masked_mean
from mmstream.model.config import AudioConfig, TextConfig, VideoConfig


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FrameEncoder(nn.Module):
    def __init__(self, cfg: VideoConfig, dim: int) -> None:
        super().__init__()
        chans = (3, *cfg.channels)
        self.cnn = nn.Sequential(*[_conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.proj = nn.Linear(chans[-1], dim)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        x = self.cnn(frames.flatten(0, 1))  # (B·T)×C×s×s
        x = x.mean(dim=(2, 3)).reshape(b, t, -1)  # B×T×C
        return self.proj(masked_mean(x, frame_mask, dim=1))  # B×D


class AudioEncoder(nn.Module):
    def __init__(self, cfg: AudioConfig, dim: int) -> None:
        super().__init__()
        chans = (1, *cfg.channels)
        self.blocks = nn.ModuleList([_conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.proj = nn.Linear(chans[-1], dim)

    def forward(self, logmel: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        x = logmel.unsqueeze(1)  # B×1×M×F
        m = audio_mask.unsqueeze(1)  # B×1×F
        for block in self.blocks:
            x = block(x)
            m = F.max_pool1d(m, kernel_size=2, stride=2, ceil_mode=True)  # follows the stride-2 conv in time
        x = x.mean(dim=2).transpose(1, 2)  # B×F'×C
        return self.proj(masked_mean(x, m.squeeze(1), dim=1))  # B×D


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextConfig, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.kind = cfg.encoder
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
        if self.kind == "gru":
            # Unidirectional: outputs at real (leading) positions never see the trailing padding.
            self.gru = nn.GRU(cfg.embed_dim, cfg.embed_dim, num_layers=cfg.layers, batch_first=True)
        else:
            self.pos = nn.Parameter(torch.zeros(1, cfg.max_tokens, cfg.embed_dim))
            nn.init.normal_(self.pos, std=0.02)
            self.layers = nn.ModuleList([TransformerBlock(cfg.embed_dim, cfg.attention_heads, dropout)
                                         for _ in range(cfg.layers)])
        self.proj = nn.Linear(cfg.embed_dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens > 0).to(torch.float32)  # B×L
        x = self.embed(tokens)  # B×L×E
        if self.kind == "gru":
            x, _ = self.gru(x)
        else:
            x = x + self.pos[:, : x.shape[1]]
            for layer in self.layers:
                x, _ = layer(x, mask)
        return self.proj(masked_mean(x, mask.to(x.dtype), dim=1))  # B×D
