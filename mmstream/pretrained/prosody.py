"""Prosody cues for arousal: loudness and pitch movement of the voiced part of a clip (numpy only).

These are hand-set cues, not a learned model: loud, pitch-varied speech reads as aroused
(angry, happy, surprised, afraid); quiet, flat speech as calm (neutral, sad). Without a speaker
baseline the absolute pitch says little, so only its variability is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.032
HOP_S = 0.016
F0_MIN_HZ = 70.0
F0_MAX_HZ = 400.0
LOUDNESS_FLOOR_DBFS = -45.0  # maps to 0
LOUDNESS_CEIL_DBFS = -10.0   # maps to 1
PITCH_VAR_CEIL_ST = 4.0      # std of F0 in semitones that maps to 1


@dataclass
class ProsodyCues:
    """loudness / pitch_var / arousal in [0, 1]; pitch_hz the median F0 of voiced frames (0 if none)."""

    loudness: float
    pitch_var: float
    arousal: float
    pitch_hz: float
    voiced_frac: float

    def as_array(self) -> np.ndarray:
        return np.array([self.arousal, self.loudness, self.pitch_var], np.float32)


def _frames(audio: np.ndarray, frame: int, hop: int) -> np.ndarray:
    if audio.size < frame:
        return np.zeros((0, frame), np.float32)
    n = 1 + (audio.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    return audio[idx]


def frame_pitch_hz(frames: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """F0 per frame by normalized autocorrelation (0 where unvoiced: peak below 0.5)."""
    if frames.shape[0] == 0:
        return np.zeros(0, np.float32)
    x = frames - frames.mean(axis=1, keepdims=True)
    n = x.shape[1]
    spec = np.fft.rfft(x, 2 * n, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lo = int(sample_rate_hz / F0_MAX_HZ)
    hi = min(n - 1, int(sample_rate_hz / F0_MIN_HZ))
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(ac.shape[0]), lag]
    return np.where(peak > 0.5, sample_rate_hz / lag, 0.0).astype(np.float32)


def prosody_cues(audio: np.ndarray, sample_rate_hz: int, speech_mask: np.ndarray | None = None) -> ProsodyCues:
    """Cues of a mono clip; ``speech_mask`` (per sample, optional) limits them to speech."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    frame, hop = int(FRAME_S * sample_rate_hz), int(HOP_S * sample_rate_hz)
    frames = _frames(audio, frame, hop)
    if frames.shape[0] == 0:
        return ProsodyCues(0.0, 0.0, 0.0, 0.0, 0.0)
    rms_db = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9)
    active = rms_db > LOUDNESS_FLOOR_DBFS
    if speech_mask is not None and speech_mask.size == audio.size:
        active &= _frames(speech_mask.astype(np.float32), frame, hop).mean(axis=1) > 0.5
    if not active.any():
        return ProsodyCues(0.0, 0.0, 0.0, 0.0, 0.0)
    loud_db = float(np.percentile(rms_db[active], 90))
    loudness = float(np.clip((loud_db - LOUDNESS_FLOOR_DBFS) / (LOUDNESS_CEIL_DBFS - LOUDNESS_FLOOR_DBFS), 0, 1))
    f0 = frame_pitch_hz(frames[active], sample_rate_hz)
    voiced = f0[f0 > 0]
    if voiced.size >= 3:
        semitones = 12 * np.log2(voiced / np.median(voiced))
        pitch_var = float(np.clip(semitones.std() / PITCH_VAR_CEIL_ST, 0, 1))
        pitch_hz = float(np.median(voiced))
    else:
        pitch_var, pitch_hz = 0.0, 0.0
    arousal = 0.5 * loudness + 0.5 * pitch_var
    return ProsodyCues(loudness, pitch_var, arousal, pitch_hz, float(voiced.size / max(1, frames.shape[0])))
