"""Speech node: offline speech recognition of the microphone's AudioChunk stream -> TextUtterance.

    python -m nodes.speech                                        # /microphone/audio -> /text/utterance
    python -m nodes.speech --param partial_period_s=0.5           # also partial hypotheses on /speech/partial

Silero VAD (the default model's, 32 ms frames) finds speech; pocketsphinx (en-us model from its
wheel) decodes each segment as it comes in. Each utterance is published with ``source: asr``,
``start_ns`` / ``end_ns`` the first / last sample of the speech on the audio clock, and
``header.stamp_ns`` = ``end_ns``. Nothing is dropped: every chunk is queued and decoded in order
(up to ``max_backlog_s`` of audio); when the queue holds more than ``behind_s`` the node warns that
it is falling behind real time, and says when it has caught up. Gaps in the input (the
microphone's ``gap_samples``, a stamp jump) end the segment there.
"""

from __future__ import annotations

import collections

from mmstream.asr import SegmenterConfig, open_speech_stream
from mmstream.asr.stream import Recognized
from mmstream.clock import NS_PER_S
from mmstream.messages import AudioChunk, Header, TextUtterance
from mmstream.node import IDLE, NOW, Component, Node, Param, Wait, run_node

_D = SegmenterConfig()
PARAMS = [
    Param("audio_topic", "/microphone/audio", doc="AudioChunk input"),
    Param("topic", "/text/utterance", doc="recognized utterances (TextUtterance, source 'asr')"),
    Param("partial_topic", "/speech/partial", doc="partial hypotheses (source 'asr_partial')"),
    Param("partial_period_s", _D.partial_period_s, min=0.0, doc="a partial hypothesis every this much speech (0: off)"),
    Param("speech_threshold", _D.speech_threshold, min=0.01, max=0.99, doc="VAD probability that starts speech"),
    Param("silence_threshold", _D.silence_threshold, min=0.01, max=0.99, doc="VAD probability below which it is silence"),
    Param("min_silence_s", _D.min_silence_s, min=0.0, max=5.0, doc="silence that ends an utterance"),
    Param("min_speech_s", _D.min_speech_s, min=0.0, max=5.0, doc="shorter speech is ignored"),
    Param("pad_s", _D.pad_s, min=0.0, max=1.0, doc="audio before the onset given to the recognizer"),
    Param("max_segment_s", _D.max_segment_s, min=1.0, max=120.0, doc="longer speech is cut into segments"),
    Param("min_confidence", 0.0, min=0.0, max=1.0, doc="utterances below this confidence are not published"),
    Param("second_pass", False, doc="pocketsphinx's flat-lexicon second pass (+0.27 s per utterance)"),
    Param("behind_s", 1.0, min=0.1, doc="queued audio above this: warn that recognition falls behind"),
    Param("max_backlog_s", 120.0, min=1.0, doc="queued audio above this is dropped (counted, logged)"),
    Param("frame_id", "asr", doc="header.frame_id of the utterances"),
    Param("language", "en", doc="language tag of the utterances (the model is en-us)"),
    Param("reliable", False, doc="wait for slow subscribers instead of dropping"),
]


class Speech(Component):
    """Queues every audio chunk (callback); step() decodes one chunk at a time and publishes."""

    NAME = "speech"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        config = SegmenterConfig(speech_threshold=p["speech_threshold"],
                                 silence_threshold=min(p["silence_threshold"], p["speech_threshold"]),
                                 min_silence_s=p["min_silence_s"], min_speech_s=p["min_speech_s"], pad_s=p["pad_s"],
                                 max_segment_s=p["max_segment_s"], partial_period_s=p["partial_period_s"])
        self.stream = open_speech_stream(config, second_pass=p["second_pass"])
        self.pub = node.create_publisher(TextUtterance, p["topic"], reliable=p["reliable"])
        self.partial_pub = node.create_publisher(TextUtterance, p["partial_topic"]) if p["partial_period_s"] else None
        self.queue: collections.deque[AudioChunk] = collections.deque()
        self.queued_s = 0.0
        self.behind = False
        self.behind_episodes = 0
        self.dropped_chunks = 0
        self.utterances = 0
        self.formats: set[tuple[int, int]] = set()
        # keep-last deep enough for the backlog at 10 ms chunks: this node never lets the transport drop
        self.sub = node.create_subscription(AudioChunk, p["audio_topic"], self.on_audio,
                                            keep_last=int(p["max_backlog_s"] * 100))
        node.log.info("speech recognition (pocketsphinx en-us, Silero VAD) of %s -> %s%s", self.sub.topic,
                      self.pub.topic, f", partials on {self.partial_pub.topic}" if self.partial_pub else "")

    def on_audio(self, chunk: AudioChunk) -> None:
        self.queue.append(chunk)
        self.queued_s += chunk.num_samples / chunk.sample_rate_hz
        limit = self.node.params["max_backlog_s"]
        while self.queued_s > limit and len(self.queue) > 1:
            old = self.queue.popleft()
            self.queued_s -= old.num_samples / old.sample_rate_hz
            self.dropped_chunks += 1
            self.sub.stats.drops += 1
            if self.dropped_chunks == 1:
                self.node.log.error("recognition is more than %.0f s behind: dropping the oldest audio "
                                    "(counted in drops)", limit)

    def step(self) -> Wait:
        if not self.queue:
            if not self.node.ok():
                self._publish(self.stream.flush())
            return IDLE
        chunk = self.queue.popleft()
        self.queued_s = max(0.0, self.queued_s - chunk.num_samples / chunk.sample_rate_hz)
        fmt = (chunk.sample_rate_hz, chunk.channels)
        if fmt not in self.formats:
            self.formats.add(fmt)
            if fmt != (16000, 1):
                self.node.log.info("audio at %d Hz × %d channel(s): recognized at 16000 Hz mono (resampled, "
                                   "channels averaged)", *fmt)
        self._publish(self.stream.push(chunk.samples, chunk.header.stamp_ns, chunk.sample_rate_hz,
                                       gap=chunk.gap_samples > 0))
        self._check_backlog()
        return NOW if self.queue else IDLE

    def _check_backlog(self) -> None:
        p = self.node.params
        if not self.behind and self.queued_s > p["behind_s"]:
            self.behind = True
            self.behind_episodes += 1
            self.node.log.warning("falling behind real time: %.1f s of audio queued (recognition %.2f CPU-s per "
                                  "audio second); nothing is dropped until %.0f s", self.queued_s,
                                  self.stream.real_time_factor, p["max_backlog_s"])
        elif self.behind and self.queued_s < p["behind_s"] / 2:
            self.behind = False
            self.node.log.info("caught up: %.2f s of audio queued", self.queued_s)

    def _publish(self, results: list[Recognized]) -> None:
        p = self.node.params
        for r in results:
            if r.final and r.confidence < p["min_confidence"]:
                self.node.log.info("not published (confidence %.2f < %.2f): %r", r.confidence, p["min_confidence"],
                                   r.text)
                continue
            msg = TextUtterance(header=Header(stamp_ns=r.end_ns, frame_id=p["frame_id"]), start_ns=r.start_ns,
                                end_ns=r.end_ns, text=r.text, source="asr" if r.final else "asr_partial",
                                language=p["language"])
            if r.final:
                self.utterances += 1
                lag_s = (self.node.now_ns() - r.end_ns) / NS_PER_S
                self.node.log.info("heard %r (%.2f-%.2f s ago, confidence %.2f)", r.text,
                                   lag_s + (r.end_ns - r.start_ns) / NS_PER_S, lag_s, r.confidence)
                self.pub.publish(msg)
            elif self.partial_pub is not None:
                self.partial_pub.publish(msg)

    def close(self) -> None:
        self.node.log.info("%d utterance(s) from %.1f s of audio, %.2f CPU-s per audio second, fell behind %d "
                           "time(s), %d chunk(s) dropped", self.utterances, self.stream.audio_s,
                           self.stream.real_time_factor, self.behind_episodes, self.dropped_chunks)


def main(argv: list[str] | None = None) -> int:
    return run_node(Speech, argv)


if __name__ == "__main__":
    raise SystemExit(main())
