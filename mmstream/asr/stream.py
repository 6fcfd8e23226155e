"""Speech recognition over an audio *stream*: Silero VAD segments it, pocketsphinx decodes each segment.

:class:`SpeechStream` is a pure object (no sockets, no threads, no clock of its own): ``push`` the
samples of each chunk with the stamp of its first sample, get back the :class:`Recognized`
utterances (and, optionally, partial hypotheses) that this audio completed. Stamps are on the
audio clock: ``start_ns`` is the first sample of the first 32 ms VAD frame of speech, ``end_ns`` the
last sample of the last one, so the synchronizer lines the words up with the face and voice.

Segmentation (per 32 ms frame at 16 kHz, the frames the default model's VAD uses): speech starts
at a frame with probability >= ``speech_threshold``; the decoder gets ``pad_s`` of audio from before
it. Speech goes on while frames stay >= ``silence_threshold`` (hysteresis) and ends after
``min_silence_s`` below it; the decoder is fed as the audio comes in, so ending costs only the
final search. A segment reaching ``max_segment_s`` is ended there and a new one starts at once
(nothing is lost). Segments with less than ``min_speech_s`` of speech, or no words, are dropped.

Input at another rate is resampled to 16 kHz (linear interpolation carried across chunks); more
than one channel is averaged. A gap (``gap_samples``, or a stamp that does not follow the previous
chunk, or a new sample rate) ends the current segment and restarts the VAD, so stamps stay exact.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np

from mmstream.asr.recognizer import SAMPLE_RATE_HZ, PocketsphinxRecognizer
from mmstream.clock import NS_PER_S

FRAME_SAMPLES = 512  # Silero VAD's frame at 16 kHz (32 ms)
STAMP_TOLERANCE_NS = 50_000_000  # a chunk stamped further from where the previous one ended starts a new run


@dataclass(frozen=True)
class SegmenterConfig:
    speech_threshold: float = 0.5   # VAD probability that starts speech
    silence_threshold: float = 0.35  # ... below which a frame counts as silence once speech started
    min_silence_s: float = 0.3      # silence that ends an utterance (most of the end-of-speech latency)
    min_speech_s: float = 0.15      # shorter bursts are not decoded into utterances
    pad_s: float = 0.2              # audio before the onset given to the decoder
    max_segment_s: float = 15.0     # longer speech is cut into segments of this length
    partial_period_s: float = 0.0   # a partial hypothesis every this much speech (0: none)

    def __post_init__(self) -> None:
        if not 0.0 < self.silence_threshold <= self.speech_threshold < 1.0:
            raise ValueError(f"thresholds: expected 0 < silence_threshold {self.silence_threshold} <= "
                             f"speech_threshold {self.speech_threshold} < 1")
        if min(self.min_silence_s, self.min_speech_s, self.pad_s, self.partial_period_s) < 0:
            raise ValueError("min_silence_s, min_speech_s, pad_s and partial_period_s must be >= 0")
        if self.max_segment_s < 1.0:
            raise ValueError(f"max_segment_s {self.max_segment_s} must be >= 1 s")


@dataclass(frozen=True)
class Recognized:
    start_ns: int       # first sample of the speech
    end_ns: int         # last sample of the speech (the partial's: of the audio decoded so far)
    text: str
    confidence: float   # 0..1 (see recognizer.Transcript); 0 for partials
    final: bool         # False: a partial hypothesis of a segment still going on


class _Resampler:
    """Linear-interpolation resampling of a stream, continuous across chunks."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.step = from_hz / to_hz
        self.identity = from_hz == to_hz
        self.last: np.ndarray | None = None
        self.pos = 0.0  # position of the next output sample, in the coordinates of the next buffer

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.identity or x.size == 0:
            return x
        buf = x if self.last is None else np.concatenate([self.last, x])
        n = int(np.floor((buf.size - 1 - self.pos) / self.step)) + 1 if buf.size - 1 >= self.pos else 0
        positions = self.pos + np.arange(n) * self.step
        out = np.interp(positions, np.arange(buf.size), buf).astype(np.float32)
        self.pos = self.pos + n * self.step - (buf.size - 1)
        self.last = buf[-1:]
        return out


class SpeechStream:
    """Segments and decodes one audio stream; ``push`` chunks in time order, ``flush`` at the end."""

    def __init__(self, recognizer: PocketsphinxRecognizer, vad: object, config: SegmenterConfig | None = None
                 ) -> None:
        self.recognizer = recognizer
        self.vad = vad  # mmstream.pretrained.vad.SileroVad (frame_probability, reset)
        self.config = config or SegmenterConfig()
        c = self.config
        self._pad_frames = int(round(c.pad_s * SAMPLE_RATE_HZ / FRAME_SAMPLES))
        self._silence_frames = max(1, int(round(c.min_silence_s * SAMPLE_RATE_HZ / FRAME_SAMPLES)))
        self._max_samples = int(c.max_segment_s * SAMPLE_RATE_HZ)
        self.audio_s = 0.0      # audio pushed (input seconds)
        self.cpu_s = 0.0        # process CPU time spent in push/flush
        self.runs = 0           # contiguous runs (1 + breaks for gaps, jumps, rate changes)
        self._run_rate_hz = 0
        self._reset_run()

    # ------------------------------------------------------------------ input
    def push(self, samples: np.ndarray, stamp_ns: int, sample_rate_hz: int = SAMPLE_RATE_HZ,
             gap: bool = False) -> list[Recognized]:
        """Samples (N or N×channels, float in [-1, 1] or int16) whose first sample is at ``stamp_ns``."""
        t0 = time.process_time()
        x = np.asarray(samples)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = x.astype(np.float32, copy=False)
        if x.ndim == 2:
            x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        out: list[Recognized] = []
        if self._origin_ns is not None:
            expected = self._origin_ns + self._in_samples * NS_PER_S // self._run_rate_hz
            if gap or sample_rate_hz != self._run_rate_hz or abs(stamp_ns - expected) > STAMP_TOLERANCE_NS:
                out += self._end_segment()
                self._reset_run()
        if self._origin_ns is None:
            self._origin_ns, self._run_rate_hz = int(stamp_ns), int(sample_rate_hz)
            self._resampler = _Resampler(sample_rate_hz, SAMPLE_RATE_HZ)
            self.runs += 1
        self._in_samples += x.size
        self.audio_s += x.size / sample_rate_hz
        buf = np.concatenate([self._pending, self._resampler.push(x)])
        n = buf.size // FRAME_SAMPLES
        for i in range(n):
            out += self._frame(buf[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
        self._pending = buf[n * FRAME_SAMPLES:]
        self.cpu_s += time.process_time() - t0
        return out

    def flush(self) -> list[Recognized]:
        """End of the stream: decode what is still in a segment."""
        t0 = time.process_time()
        out = self._end_segment()
        self._reset_run()
        self.cpu_s += time.process_time() - t0
        return out

    @property
    def in_speech(self) -> bool:
        return self._seg_start is not None

    @property
    def real_time_factor(self) -> float:
        return self.cpu_s / self.audio_s if self.audio_s else 0.0

    # ------------------------------------------------------------------ segmentation
    def _reset_run(self) -> None:
        self.vad.reset()
        self._origin_ns: int | None = None
        self._in_samples = 0
        self._index = 0  # 16 kHz samples of this run already framed
        self._pending = np.zeros(0, np.float32)
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=max(1, self._pad_frames))
        self._seg_start: int | None = None  # 16 kHz index of the first speech sample
        self._speech_end = 0                # index one past the last speech sample
        self._silent = 0                    # consecutive silent frames since speech
        self._since_partial = 0
        self._resampler = _Resampler(SAMPLE_RATE_HZ, SAMPLE_RATE_HZ)

    def _stamp(self, index: int) -> int:
        assert self._origin_ns is not None
        return self._origin_ns + index * NS_PER_S // SAMPLE_RATE_HZ

    def _frame(self, frame: np.ndarray) -> list[Recognized]:
        c = self.config
        start, self._index = self._index, self._index + FRAME_SAMPLES
        prob = self.vad.frame_probability(frame)
        out: list[Recognized] = []
        if self._seg_start is None:
            if prob < c.speech_threshold:
                if self._pad_frames:
                    self._preroll.append(frame)
                return out
            self.recognizer.start()
            if self._pad_frames:
                self.recognizer.feed(np.concatenate(list(self._preroll)) if self._preroll else frame[:0])
                self._preroll.clear()
            self._seg_start, self._silent, self._since_partial = start, 0, 0
        self.recognizer.feed(frame)
        if prob >= c.silence_threshold:
            self._speech_end, self._silent = start + FRAME_SAMPLES, 0
        else:
            self._silent += 1
        self._since_partial += FRAME_SAMPLES
        if self._silent >= self._silence_frames:
            out += self._end_segment()
        elif self._index - self._seg_start >= self._max_samples:  # too long: cut here, go on at once
            out += self._end_segment()
            if prob >= c.silence_threshold:
                self.recognizer.start()
                self._seg_start, self._speech_end, self._silent, self._since_partial = self._index, self._index, 0, 0
        elif c.partial_period_s and self._since_partial >= c.partial_period_s * SAMPLE_RATE_HZ:
            self._since_partial = 0
            text = self.recognizer.partial()
            if text:
                out.append(Recognized(self._stamp(self._seg_start), self._stamp(self._index - 1), text, 0.0, False))
        return out

    def _end_segment(self) -> list[Recognized]:
        if self._seg_start is None:
            return []
        start, end = self._seg_start, max(self._speech_end, self._seg_start + 1)
        self._seg_start, self._silent = None, 0
        transcript = self.recognizer.finish()
        if (end - start) < self.config.min_speech_s * SAMPLE_RATE_HZ or not transcript.text:
            return []
        return [Recognized(self._stamp(start), self._stamp(end - 1), transcript.text, transcript.confidence, True)]
