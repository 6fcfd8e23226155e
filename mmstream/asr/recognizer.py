"""Offline speech recognition with pocketsphinx 5.1.1 (its wheel ships the en-us model: nothing fetched).

One :class:`PocketsphinxRecognizer` decodes one utterance at a time: ``start()``, ``feed()`` 16 kHz
int16 samples as they arrive (decoding runs as audio comes in, so the end of an utterance costs
only the final search), ``partial()`` for the hypothesis so far, ``finish()`` for the
:class:`Transcript`. The second (flat-lexicon) search pass is off by default: measured here it
costs 0.27 s per utterance at the end (the whole end-of-speech latency budget) for no better
word error rate (docs/models.md, "Speech recognition").

Confidence is the hypothesis posterior from pocketsphinx's lattice taken per word (its geometric
mean, ``posterior ** (1 / words)``), in [0, 1]. It ranks hypotheses; it is not calibrated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mmstream.errors import ModelError

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.01  # pocketsphinx's feature frame period
_VARIANT = re.compile(r"\(\d+\)$")  # "to(2)": the second pronunciation of "to"


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float  # from the start of the utterance's audio
    end_s: float


@dataclass(frozen=True)
class Transcript:
    text: str            # recognized words, lower case, fillers removed ("" when nothing was recognized)
    confidence: float    # per-word geometric mean of the hypothesis posterior, 0..1 (0 for "")
    words: tuple[Word, ...] = ()


class PocketsphinxRecognizer:
    """Streaming decoder of one utterance at a time on pocketsphinx's bundled en-us model."""

    def __init__(self, *, second_pass: bool = False, **config: object) -> None:
        try:
            import pocketsphinx
        except ImportError as e:
            raise ModelError("speech recognition needs pocketsphinx==5.1.1 (a dependency of mmstream: "
                             "`pip install pocketsphinx==5.1.1`)") from e
        try:
            self.decoder = pocketsphinx.Decoder(loglevel="FATAL", samprate=SAMPLE_RATE_HZ, fwdflat=second_pass,
                                                bestpath=True, **config)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"pocketsphinx could not load its en-us model with {config or 'the defaults'}: {e}") \
                from e
        self.samples = 0
        self.active = False

    def start(self) -> None:
        if self.active:
            self.decoder.end_utt()
        self.decoder.start_utt()
        self.samples = 0
        self.active = True

    def feed(self, samples: np.ndarray) -> None:
        """16 kHz mono samples: int16, or float in [-1, 1]."""
        if not self.active:
            self.start()
        if samples.dtype != np.int16:
            samples = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        if samples.size:
            self.decoder.process_raw(samples.tobytes(), False, False)
            self.samples += samples.size


    def partial(self) -> str:
        """The best hypothesis of the audio fed so far ("" before any word)."""
        hyp = self.decoder.hyp() if self.active else None
        return _clean(hyp.hypstr) if hyp is not None else ""

    def finish(self) -> Transcript:
        """End the utterance and return what was said in it."""
        if not self.active:
            return Transcript("", 0.0)
        self.decoder.end_utt()
        self.active = False
        hyp = self.decoder.hyp()
        text = _clean(hyp.hypstr) if hyp is not None else ""
        if not text:
            return Transcript("", 0.0)
        words = tuple(Word(_VARIANT.sub("", s.word), s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S)
                      for s in self.decoder.seg() if _is_word(s.word))
        n = max(1, len(text.split()))
        confidence = float(min(1.0, max(0.0, hyp.prob)) ** (1.0 / n))
        return Transcript(text, round(confidence, 4), words)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """One whole utterance (16 kHz mono) at once."""
        self.start()
        self.feed(samples)
        return self.finish()


def _is_word(token: str) -> bool:
    return not (token.startswith("<") or token.startswith("[") or token.startswith("+"))


def _clean(hypstr: str) -> str:
    return " ".join(_VARIANT.sub("", w) for w in hypstr.split() if _is_word(w))
