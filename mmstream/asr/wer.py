"""Word error rate: (substitutions + deletions + insertions) / reference words, on normalized words."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation (``"Hello, Robot!"`` -> ``["hello", "robot"]``)."""
    return _WORD.findall(text.lower().replace("-", " "))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words), Levenshtein over normalized words."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)], len(ref)


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER of (reference, hypothesis) pairs: total errors over total reference words."""
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors, words = errors + e, words + n
    return errors / words if words else 0.0
