"""Text emotion from sentence embeddings: all-MiniLM-L6-v2 (ONNX) vs 7 prototype embeddings.

Run time is numpy + ONNX Runtime + ``tokenizers`` only (no torch). The files are built by
``mmstream models fetch`` (``mmstream/pretrained/minilm_export.py``) into
``<models_dir>/text_encoder/``::

    minilm.onnx         BERT encoder, 6 layers × 384, mean pooling over the attention mask, L2 normalized
                        inputs input_ids, attention_mask (B×L int64) -> embedding (B×384 float32)
    tokenizer.json      the model's WordPiece tokenizer (lower-casing), truncated to 128 tokens
    text_emotion.json   labels, temperature, the prototype sentences and their normalized mean embeddings

Emotion scores: the utterance embedding e (unit length) and, per label k, the prototype p_k
(the mean of the unit embeddings of that label's sentences in :data:`PROTOTYPE_SENTENCES`,
normalized again); cos_k = e · p_k; probs = softmax(cos / :data:`TEMPERATURE`). This is
zero-shot nearest-prototype scoring, not a trained classifier: it works for sentences that say
the emotion plainly and is unreliable for sarcasm, negation ("I am not sad") and indirect text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import ModelError
from mmstream.model.config import EMOTION_LABELS
from mmstream.pretrained.cache import FETCH_COMMAND, TEXT_ENCODER_SUBDIR, models_dir

ENCODER_FILE = "minilm.onnx"
TOKENIZER_FILE = "tokenizer.json"
PROTOTYPES_FILE = "text_emotion.json"
LABELS = EMOTION_LABELS  # the face CNN's order; the prototypes below follow it
MAX_TOKENS = 128  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (longer text is truncated)
EMBEDDING_DIM = 384
# Cosines of MiniLM embeddings between related sentences differ by ~0.05-0.3; /0.05 turns a lead of
# 0.1 into a probability ratio of e^2 ≈ 7.4, sharp enough to name the emotion, soft enough to keep doubt.
TEMPERATURE = 0.05
# Recognized speech (TextUtterance.source "asr", from the speech node) is weighed less than typed text:
# pocketsphinx gets 27-32% of the words of real read speech wrong and 35-75% of synthetic speech
# (docs/models.md, "Speech recognition"), so the text expert's gate is scaled by this for ASR text.
ASR_SOURCES = ("asr",)
ASR_TEXT_WEIGHT = 0.5


def text_weight(sources: Sequence[str], lengths: Sequence[int]) -> float:
    """Weight of the text expert for utterances from ``sources`` with ``lengths`` characters: 1 for
    typed text, :data:`ASR_TEXT_WEIGHT` for recognized speech, the length-weighted mean for a mix."""
    total = sum(lengths)
    if total <= 0:
        return 0.0
    return sum((ASR_TEXT_WEIGHT if src in ASR_SOURCES else 1.0) * n for src, n in zip(sources, lengths)) / total

# Short, plain English sentences per label; their mean embedding is the label's prototype.
# Written for mmstream (not taken from a data set); the test sentences in tests/ are not among them.
PROTOTYPE_SENTENCES: dict[str, tuple[str, ...]] = {
    "angry": (
        "I am so angry right now.",
        "This makes me furious.",
        "I'm really mad at you.",
        "Stop it, you are making me so annoyed!",
        "It makes my blood boil when people lie to me.",
    ),
    "disgust": (
        "That is disgusting.",
        "This food is gross and it makes me sick.",
        "Ew, that smells revolting.",
        "I find this repulsive.",
        "What they did is vile and sickening.",
    ),
    "fear": (
        "I am scared.",
        "I'm afraid something bad is going to happen.",
        "This is frightening, I can't stop shaking.",
        "I'm so nervous and anxious about tomorrow.",
        "Please help me, I think I'm in danger.",
    ),
    "happy": (
        "I am so happy.",
        "This is great, I really enjoy it!",
        "What a lovely day, I feel joyful.",
        "I'm delighted to see you.",
        "That's fantastic news, thank you!",
    ),
    "sad": (
        "I am so unhappy.",
        "I feel miserable and depressed.",
        "I miss her so much, it hurts.",
        "I'm heartbroken and I want to cry.",
        "Everything feels hopeless.",
    ),
    "surprise": (
        "Wow, I did not expect that!",
        "What a surprise!",
        "I can't believe it, really?",
        "No way, that's unbelievable!",
        "That came completely out of nowhere.",
    ),
    "neutral": (
        "The meeting is at three o'clock.",
        "Please pass me the folder.",
        "The table has four legs.",
        "I will take the bus to work tomorrow.",
        "The report has twelve pages.",
    ),
}


def text_encoder_dir(root: str | Path | None = None) -> Path:
    """``<models_dir>/text_encoder`` (whether or not it is there)."""
    return Path(models_dir() if root is None else root) / TEXT_ENCODER_SUBDIR


def text_encoder_available(directory: str | Path) -> bool:
    d = Path(directory)
    return all((d / f).is_file() for f in (ENCODER_FILE, TOKENIZER_FILE, PROTOTYPES_FILE))


def load_tokenizer(path: str | Path):  # -> tokenizers.Tokenizer
    """The WordPiece tokenizer from tokenizer.json: no padding (done per batch), truncation to MAX_TOKENS."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise ModelError("the MiniLM text encoder needs the package tokenizers: pip install 'tokenizers>=0.15'") from e
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


def tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """input_ids and attention_mask (B×L int64, padded with 0 to the longest) of ``texts``."""
    encodings = tokenizer.encode_batch(list(texts))
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), length), np.int64)
    mask = np.zeros((len(encodings), length), np.int64)
    for i, e in enumerate(encodings):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def emotion_probs(embeddings: np.ndarray, prototypes: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """softmax(cos(embedding, prototype_k) / temperature) over the 7 labels; N×D, 7×D -> N×7 float32."""
    logits = embeddings.astype(np.float64) @ prototypes.astype(np.float64).T / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


class TextEmotion:
    """7-class emotion scores of English text with the MiniLM encoder built by ``mmstream models fetch``."""

    def __init__(self, directory: str | Path | None = None, *, threads: int = 1) -> None:
        d = Path(directory) if directory is not None else text_encoder_dir()
        if not text_encoder_available(d):
            missing = [f for f in (ENCODER_FILE, TOKENIZER_FILE, PROTOTYPES_FILE) if not (d / f).is_file()]
            raise ModelError(f"the MiniLM text encoder is not built at {d} (missing {', '.join(missing)}): run "
                             f"`{FETCH_COMMAND}` (without --no-minilm; set MMSTREAM_MODELS_DIR to use another "
                             f"cache directory)")
        import onnxruntime as ort

        self.directory = d
        try:
            meta = json.loads((d / PROTOTYPES_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read {d / PROTOTYPES_FILE}: {e}: delete {d} and run `{FETCH_COMMAND}`") from e
        if tuple(meta.get("labels", ())) != LABELS:
            raise ModelError(f"{d / PROTOTYPES_FILE}: labels {meta.get('labels')} differ from {list(LABELS)}: "
                             f"run `{FETCH_COMMAND}`")
        self.meta = meta
        self.labels = LABELS
        self.temperature = float(meta["temperature"])
        self.prototypes = np.asarray(meta["prototype_embeddings"], np.float32)
        if self.prototypes.shape != (len(LABELS), EMBEDDING_DIM):
            raise ModelError(f"{d / PROTOTYPES_FILE}: prototype_embeddings has shape {self.prototypes.shape}, "
                             f"expected {(len(LABELS), EMBEDDING_DIM)}: run `{FETCH_COMMAND}`")
        self.tokenizer = load_tokenizer(d / TOKENIZER_FILE)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(d / ENCODER_FILE), opts, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """N×384 float32 unit-length sentence embeddings."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return self.session.run(["embedding"], tokenize(self.tokenizer, texts))[0]

    def similarities(self, text: str) -> np.ndarray:
        """Cosine of ``text`` to each label's prototype (7, float32)."""
        return (self.embed([text]) @ self.prototypes.T)[0].astype(np.float32)

    def probs(self, text: str) -> np.ndarray:
        """7 probabilities over LABELS of ``text`` (uniform for empty text)."""
        return self.probs_batch([text])[0]

    def probs_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), len(LABELS)), 1.0 / len(LABELS), np.float32)
        real = [i for i, t in enumerate(texts) if t.strip()]
        if real:
            out[real] = emotion_probs(self.embed([texts[i] for i in real]), self.prototypes, self.temperature)
        return out
