"""Prosody arousal cues: loudness and pitch movement (numpy)."""

from __future__ import annotations

import numpy as np

from mmstream.pretrained.prosody import frame_pitch_hz, prosody_cues

SR = 16000


def _tone(f0_hz: np.ndarray, amp: float) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0_hz) / SR
    return (amp * (np.sin(phase) + 0.5 * np.sin(2 * phase))).astype(np.float32)


def test_pitch_of_a_harmonic_tone() -> None:
    x = _tone(np.full(SR, 180.0), 0.3)
    frames = np.stack([x[i:i + 512] for i in range(0, SR - 512, 256)])
    f0 = frame_pitch_hz(frames, SR)
    assert np.all(np.abs(f0 - 180) < 8)


def test_loud_varied_voice_is_more_aroused_than_quiet_flat_voice() -> None:
    t = np.arange(2 * SR) / SR
    lively = _tone(200 * 2 ** (np.sin(2 * np.pi * 1.5 * t) * 6 / 12), 0.5)  # ±6 semitones, loud
    flat = _tone(np.full(2 * SR, 120.0), 0.01)                               # monotone, quiet
    a, b = prosody_cues(lively, SR), prosody_cues(flat, SR)
    assert a.loudness > b.loudness + 0.4
    assert a.pitch_var > b.pitch_var + 0.4
    assert a.arousal > 0.7 > 0.3 > b.arousal


def test_silence_and_empty_give_zero_cues() -> None:
    for x in (np.zeros(SR, np.float32), np.zeros(10, np.float32)):
        c = prosody_cues(x, SR)
        assert c.arousal == 0 and c.loudness == 0 and c.pitch_hz == 0


def test_speech_mask_limits_the_cues() -> None:
    x = np.concatenate([_tone(np.full(SR, 150.0), 0.5), _tone(np.full(SR, 150.0), 0.02)])
    mask = np.zeros(x.size, bool)
    mask[SR:] = True
    assert prosody_cues(x, SR, mask).loudness < prosody_cues(x, SR).loudness - 0.3
