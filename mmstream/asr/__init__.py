"""Offline speech recognition: pocketsphinx (model inside its wheel) on segments found by Silero VAD.

    recognizer.py  PocketsphinxRecognizer: one utterance at a time, streaming, with a confidence
    stream.py      SpeechStream: a pure object, audio chunks in -> Recognized utterances out (audio clock)
    files.py       transcribe_file: the same on a wav/flac file (``mmstream perceive``, the benchmark)
    wer.py         word error rate

Used by the ``speech`` node (nodes/speech.py). No torch: numpy, pocketsphinx and ONNX Runtime.
"""

from mmstream.asr.recognizer import PocketsphinxRecognizer, Transcript
from mmstream.asr.stream import Recognized, SegmenterConfig, SpeechStream
from mmstream.asr.wer import normalize_words, word_error_rate, word_errors

__all__ = ["PocketsphinxRecognizer", "Recognized", "SegmenterConfig", "SpeechStream", "Transcript",
           "normalize_words", "word_error_rate", "word_errors", "open_speech_stream"]


def open_speech_stream(config: SegmenterConfig | None = None, *, second_pass: bool = False) -> SpeechStream:
    """A SpeechStream on pocketsphinx's en-us model and the default model's Silero VAD file."""
    from mmstream.pretrained.vad import SileroVad

    return SpeechStream(PocketsphinxRecognizer(second_pass=second_pass), SileroVad(), config)
