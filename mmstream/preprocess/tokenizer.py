"""Deterministic word tokenizer and the vocabulary file that travels with a model.

vocab.txt: one token per line, line number = id; line 0 is ``<pad>``, line 1 is ``<unk>``.
Text is NFKC-normalized and lower-cased, then split into words (letters/digits/apostrophes)
and single punctuation marks. Ids are padded with 0 / truncated to ``max_tokens``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

PAD, UNK = "<pad>", "<unk>"
_TOKEN_RE = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)

# Seed vocabulary for an untrained model (training builds a real one with build_vocab).
DEFAULT_WORDS = (
    ". , ! ? ' i you he she it we they me my your our this that is are was were be been am not no yes "
    "the a an and or but so to of in on at for with about what why how when who do does did have has had "
    "can could will would should just very really too so much more less all some any nothing everything "
    "happy happiness glad joy joyful love lovely great good nice wonderful awesome amazing fun excited "
    "sad sadness sorry unhappy cry crying tears miss lonely depressed down upset hurt "
    "angry anger mad furious annoyed hate stupid terrible awful worst damn "
    "fear afraid scared scary terrified worried nervous anxious panic help "
    "surprise surprised wow whoa oh really unexpected shocked what "
    "disgust disgusting gross eww yuck nasty sick horrible "
    "okay ok fine well hello hi hey thanks thank please bye today now here there time day"
).split()


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(normalize(text))


class Vocab:
    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens = list(tokens)
        if self.tokens[:2] != [PAD, UNK]:
            raise ValueError(f"vocab must start with {PAD!r}, {UNK!r} (got {self.tokens[:2]})")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocab has duplicate tokens")
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, max_tokens: int) -> np.ndarray:
        """int64 ids of length ``max_tokens`` (0-padded on the right, truncated keeping the first)."""
        ids = [self.ids.get(t, 1) for t in tokenize(text)][:max_tokens]
        out = np.zeros(max_tokens, np.int64)
        out[: len(ids)] = ids
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(self.tokens) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines)

    @classmethod
    def default(cls) -> "Vocab":
        return cls([PAD, UNK, *dict.fromkeys(DEFAULT_WORDS)])


def build_vocab(texts: Iterable[str], max_size: int, min_count: int = 1) -> Vocab:
    """Most frequent tokens (ties broken alphabetically, so the result is deterministic)."""
    counts = Counter(t for text in texts for t in tokenize(text))
    ranked = sorted((c for c in counts.items() if c[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return Vocab([PAD, UNK, *[t for t, _ in ranked[: max(0, max_size - 2)]]])
