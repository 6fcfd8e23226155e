"""Speech activity with Silero VAD's ONNX model (from the silero-vad wheel), numpy + ONNX Runtime only.

The model is stateful: each call takes 512 new samples at 16 kHz, prefixed by the last 64 samples
of the previous call (its *context*), and a 2×1×128 recurrent state; it returns the speech
probability of those 512 samples (32 ms) and the next state. This mirrors silero-vad's own
``OnnxWrapper`` without torch. Other sample rates are resampled to 16 kHz by linear interpolation.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from mmstream.errors import ModelError
from mmstream.preprocess.logmel import resample_linear

SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64


class SileroVad:
    """Streaming speech probability per 32 ms frame; ``reset()`` between unrelated streams."""

    def __init__(self, onnx_path: str | Path | None = None, *, threads: int = 1) -> None:
        import onnxruntime as ort

        if onnx_path is None:
            from mmstream.pretrained.cache import require_file

            onnx_path = require_file("speech_activity")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"ONNX Runtime could not load the Silero VAD model {onnx_path}: {e}") from e
        names = {i.name for i in self.session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise ModelError(f"{onnx_path}: inputs {sorted(names)}, expected input/state/sr (Silero VAD v5+)")
        self.reset()

    def fresh(self) -> "SileroVad":
        """Another stream on the same loaded model: its own recurrent state, this one's ONNX session."""
        other = copy.copy(self)
        other.reset()
        return other

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), np.float32)
        self._pending = np.zeros(0, np.float32)

    def frame_probability(self, frame: np.ndarray) -> float:
        """Speech probability of exactly 512 new 16 kHz samples (float32 in [-1, 1])."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"SileroVad frame has shape {frame.shape}, expected ({FRAME_SAMPLES},)")
        x = np.concatenate([self._context, frame[None, :].astype(np.float32)], axis=1)
        out, self._state = self.session.run(None, {"input": x, "state": self._state,
                                                   "sr": np.array(SAMPLE_RATE_HZ, np.int64)})
        self._context = x[:, -CONTEXT_SAMPLES:]
        return float(out[0, 0])

    def push(self, audio: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
        """Feed any number of samples (mono); return the probabilities of the frames completed."""
        audio = np.asarray(audio, np.float32).reshape(-1)
        audio = resample_linear(audio, sample_rate_hz, SAMPLE_RATE_HZ)
        buf = np.concatenate([self._pending, audio])
        n = buf.size // FRAME_SAMPLES
        probs = np.array([self.frame_probability(buf[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]) for i in range(n)],
                         np.float32)
        self._pending = buf[n * FRAME_SAMPLES:]
        return probs

    def probabilities(self, audio: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
        """Per-frame speech probabilities of one clip from a fresh state (last partial frame zero-padded)."""
        self.reset()
        audio = resample_linear(np.asarray(audio, np.float32).reshape(-1), sample_rate_hz, SAMPLE_RATE_HZ)
        pad = (-audio.size) % FRAME_SAMPLES
        probs = self.push(np.concatenate([audio, np.zeros(pad, np.float32)]))
        self.reset()
        return probs
