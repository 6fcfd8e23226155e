"""Silero VAD (ONNX, numpy + onnxruntime only) on real espeak-ng speech, silence and noise."""

from __future__ import annotations

import numpy as np
import pytest

from mmstream.pretrained.cache import require_file
from mmstream.pretrained.vad import FRAME_SAMPLES, SileroVad
from pretrained_support import espeak, fetched_models


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad(require_file("speech_activity", root=fetched_models()))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return espeak("The quick brown fox jumps over the lazy dog, and then it runs away.", tmp_path_factory.mktemp("vad"))


def test_speech_is_speech(vad: SileroVad, speech: np.ndarray) -> None:
    p = vad.probabilities(speech)
    assert p.size == -(-speech.size // FRAME_SAMPLES)
    assert np.percentile(p, 80) > 0.9
    assert (p > 0.5).mean() > 0.5


def test_silence_and_noise_are_not_speech(vad: SileroVad) -> None:
    rng = np.random.default_rng(1)
    silence = np.zeros(3 * 16000, np.float32)
    white = rng.normal(0, 0.1, 3 * 16000).astype(np.float32)
    hum = (0.2 * np.sin(2 * np.pi * 50 * np.arange(3 * 16000) / 16000)).astype(np.float32)
    for audio in (silence, white, hum):
        assert vad.probabilities(audio).max() < 0.3


def test_speech_in_noise_is_still_found(vad: SileroVad, speech: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    noisy = speech + rng.normal(0, 0.01, speech.size).astype(np.float32)
    assert np.percentile(vad.probabilities(noisy), 80) > 0.8


def test_streaming_in_odd_chunks_equals_one_clip(vad: SileroVad, speech: np.ndarray) -> None:
    clip = speech[: 40 * FRAME_SAMPLES]
    whole = vad.probabilities(clip)
    vad.reset()
    parts, i = [], 0
    for n in (100, 700, 1500, 333, 5000, 10_000, 10_000):
        parts.append(vad.push(clip[i:i + n]))
        i += n
    parts.append(vad.push(clip[i:]))
    vad.reset()
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def test_48k_input_is_resampled(vad: SileroVad, speech: np.ndarray) -> None:
    up = np.interp(np.arange(speech.size * 3) / 3, np.arange(speech.size), speech).astype(np.float32)
    assert np.percentile(vad.probabilities(up, 48000), 80) > 0.9


def test_frame_size_is_checked(vad: SileroVad) -> None:
    with pytest.raises(ValueError, match="expected \\(512,\\)"):
        vad.frame_probability(np.zeros(256, np.float32))
