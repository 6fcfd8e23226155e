"""Text valence with VADER (package ``vadersentiment``, MIT): a lexicon and rules, no weights to fetch.

VADER gives neg/neu/pos proportions and a ``compound`` score in [-1, 1]; it knows valence only
(good vs bad), not which negative emotion (angry vs sad vs afraid) a sentence expresses.
"""

from __future__ import annotations

import numpy as np

from mmstream.errors import ModelError

TEXT_SCORE_NAMES = ("neg", "neu", "pos", "compound")


class TextSentiment:
    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise ModelError("text valence needs the package vadersentiment: pip install 'vadersentiment>=3.3'") from e
        self._analyzer = SentimentIntensityAnalyzer()

    def scores(self, text: str) -> np.ndarray:
        """float32 [neg, neu, pos, compound] of ``text`` (empty text: neutral, compound 0)."""
        if not text.strip():
            return np.array([0.0, 1.0, 0.0, 0.0], np.float32)
        s = self._analyzer.polarity_scores(text)
        return np.array([s[k] for k in TEXT_SCORE_NAMES], np.float32)

    def valence(self, text: str) -> float:
        """VADER's compound score in [-1, 1]."""
        return float(self.scores(text)[3])
