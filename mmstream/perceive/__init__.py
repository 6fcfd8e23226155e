"""``mmstream perceive FILE...``: the default model's stages on images, videos, audio files and text.

One JSON object per input (per frame for a video, with ``frame`` and ``stamp_s``)::

    {"file": ..., "kind": "image"|"video"|"audio"|"text",
     "faces": [{"box": [x1, y1, x2, y2], "score": s, "landmarks": [[x, y] x5] | null,
                "expression": {label: prob}}],
     "speech": [{"start_s", "end_s", "text", "confidence"}],
     "text_emotion": {label: prob} | null, "estimate": {label: prob} | null}

Faces come from the default model's own detector (``preprocessor.detector``, whatever the package
uses) and each face's expression from the model run on a video-only window of a crop around that
face (with one face present the fused estimate is the face expert's distribution). Speech: the
speech node's recognizer (Silero VAD + pocketsphinx) on the audio. Text emotion: the model on a
text-only window (ASR text weighed as in the graph). ``estimate``: the model on everything the input has.
A file that cannot be read raises :class:`PerceiveError` naming it; the CLI reports it and goes on.
"""

from mmstream.perceive.run import AUDIO_SUFFIXES, IMAGE_SUFFIXES, TEXT_SUFFIXES, VIDEO_SUFFIXES, PerceiveError, \
    Perceiver

__all__ = ["AUDIO_SUFFIXES", "IMAGE_SUFFIXES", "TEXT_SUFFIXES", "VIDEO_SUFFIXES", "PerceiveError", "Perceiver"]
