"""Log-mel front end, numpy only; the one implementation every backend's inputs come from.

Frames: the signal is zero-padded by n_fft//2 on both sides, then framed with ``hop_length``
(like torch.stft(center=True, pad_mode="constant")), Hann-windowed (periodic), |rfft|², projected
on an HTK-mel triangular filterbank and ``log(mel + eps)``. The result is padded/cropped to
``n_frames`` columns; the frame mask says which columns hold enough real (non-gap) audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

LOG_EPS = 1e-6


@dataclass(frozen=True)
class LogMelParams:
    sample_rate_hz: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 64
    n_frames: int = 100
    f_min_hz: float = 50.0
    f_max_hz: float = 7600.0


def hz_to_mel(f_hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(p: LogMelParams) -> np.ndarray:
    """n_mels × (n_fft//2+1) float32 HTK triangles (peak 1, no area normalization)."""
    n_bins = p.n_fft // 2 + 1
    freqs = np.linspace(0.0, p.sample_rate_hz / 2.0, n_bins)
    edges = mel_to_hz(np.linspace(hz_to_mel(p.f_min_hz), hz_to_mel(p.f_max_hz), p.n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lower) / (center - lower)
    down = (upper - freqs[None, :]) / (upper - center)
    return np.clip(np.minimum(up, down), 0.0, None).astype(np.float32)


@lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def log_mel(signal: np.ndarray, p: LogMelParams) -> np.ndarray:
    """1-D float32 signal at ``p.sample_rate_hz`` -> n_mels × n_frames float32 (uncropped frames count)."""
    x = np.asarray(signal, dtype=np.float32).reshape(-1)
    half = p.n_fft // 2
    x = np.pad(x, (half, half))
    n = 1 + max(0, (x.shape[0] - p.n_fft) // p.hop_length)
    idx = np.arange(p.n_fft)[None, :] + p.hop_length * np.arange(n)[:, None]
    frames = x[np.minimum(idx, x.shape[0] - 1)] * hann_window(p.n_fft)  # n × n_fft
    power = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) ** 2  # n × bins
    mel = power @ mel_filterbank(p).T  # n × n_mels
    return np.log(mel + LOG_EPS).T.astype(np.float32)  # n_mels × n


def frame_mask(sample_mask: np.ndarray, p: LogMelParams, n_frames: int) -> np.ndarray:
    """Per-frame validity: the frame's centre sample is real audio (not a zero-filled gap)."""
    m = np.asarray(sample_mask, dtype=bool).reshape(-1)
    if m.size == 0:
        return np.zeros(n_frames, np.float32)
    centres = np.arange(n_frames) * p.hop_length
    valid = centres < m.size
    out = np.zeros(n_frames, np.float32)
    out[valid] = m[centres[valid]]
    return out


def fit_frames(mel: np.ndarray, mask: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop (keep the newest) or right-pad (silence, mask 0) to exactly ``n_frames`` columns."""
    n = mel.shape[1]
    if n >= n_frames:
        return mel[:, n - n_frames:], mask[n - n_frames:]
    pad = n_frames - n
    mel = np.pad(mel, ((0, 0), (0, pad)), constant_values=np.log(LOG_EPS))
    return mel, np.pad(mask, (0, pad))


def resample_linear(signal: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for a 16 kHz speech front end)."""
    if from_hz == to_hz or signal.size == 0:
        return signal.astype(np.float32, copy=False)
    n_out = int(round(signal.shape[0] * to_hz / from_hz))
    t = np.arange(n_out) * (from_hz / to_hz)
    return np.interp(t, np.arange(signal.shape[0]), signal).astype(np.float32)
