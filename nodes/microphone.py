"""Microphone node: publishes AudioChunk from a PortAudio input device or a wav/flac file.

    python -m nodes.microphone                                   # default input, 16 kHz mono, 20 ms
    python -m nodes.microphone --param device=pulse --param sample_rate_hz=48000
    python -m nodes.microphone --param source=speech.wav --param realtime=false

Each chunk is stamped with the host time of its first sample; consecutive chunks are contiguous
and a gap (input overflow, dropped blocks) is marked with ``gap_samples`` on the next chunk.
The PortAudio callback only copies into a bounded queue; this node's main thread publishes.
Blocks dropped because the queue was full show up as ``drops`` in ``/<node>/stats``.
"""

from __future__ import annotations

from mmstream.messages import AudioChunk
from mmstream.node import DONE, NOW, Component, Node, Param, Wait, run_node
from mmstream.sensors.audio_source import AUDIO_DTYPES, AudioFileSource, MicrophoneSource

PARAMS = [
    Param("source", "device", type=str, doc="'device' (PortAudio input) or a wav/flac file path"),
    Param("device", "default", type=str, doc="input device by index or name ('default': the system default input)"),
    Param("sample_rate_hz", 16000, min=1000, max=384000, doc="device sample rate (files keep their own)"),
    Param("channels", 1, min=1, max=64, doc="channels (files: 1 downmixes, else the file's own)"),
    Param("block_s", 0.02, min=0.001, max=1.0, doc="chunk duration"),
    Param("dtype", "float32", choices=AUDIO_DTYPES, doc="sample type"),
    Param("latency", "low", type=str, doc="PortAudio latency: 'low', 'high' or seconds"),
    Param("queue_blocks", 50, min=2, doc="blocks buffered between the audio callback and the publisher"),
    Param("settle_s", 0.2, min=0.0, max=5.0, doc="start-up time used to anchor the device clock"),
    Param("gap_threshold_s", 0.1, min=0.001, doc="ADC time ahead of the contiguous stamp by more = a gap"),
    Param("frame_id", "microphone", doc="header.frame_id of every chunk"),
    Param("topic", "/microphone/audio", doc="topic to publish on"),
    Param("realtime", True, doc="files: pace in real time (false: as fast as possible)"),
    Param("loop", False, doc="files: start again at the end"),
    Param("reliable", False, doc="wait for slow subscribers instead of dropping"),
    Param("wait_for_subscribers", 0, min=0, doc="wait for this many subscribers before capturing"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="how long to wait for them"),
]


def _latency(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


class Microphone(Component):
    """Publishes each captured (or, from a file, due) chunk; sleeps on the capture pipe in between."""

    NAME = "microphone"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        if p["source"] not in ("device", "mic", "microphone", ""):
            self.source: AudioFileSource | MicrophoneSource = AudioFileSource(
                p["source"], block_s=p["block_s"], realtime=p["realtime"], loop=p["loop"],
                channels=p["channels"] if p["channels"] == 1 else 0, dtype=p["dtype"], frame_id=p["frame_id"],
                clock_ns=node.now_ns, should_stop=lambda: not node.ok())
        else:
            device = None if p["device"] in ("", "default") else p["device"]
            self.source = MicrophoneSource(
                device=device, sample_rate_hz=p["sample_rate_hz"], channels=p["channels"], block_s=p["block_s"],
                dtype=p["dtype"], queue_blocks=p["queue_blocks"], settle_s=p["settle_s"],
                gap_threshold_s=p["gap_threshold_s"], frame_id=p["frame_id"], clock_ns=node.now_ns, log=node.log,
                latency=_latency(p["latency"]))
        self.pub = node.create_publisher(AudioChunk, p["topic"], reliable=p["reliable"])
        if p["wait_for_subscribers"]:
            node.wait_for_subscribers([self.pub], p["wait_for_subscribers"], p["wait_timeout_s"])
        node.log.info("publishing %s on %s", self.source.description, self.pub.topic)
        if isinstance(self.source, AudioFileSource):
            self.source.restart_clock()
        else:
            self.source.start()

    def step(self) -> Wait:
        if not self.node.ok():
            return DONE
        if isinstance(self.source, AudioFileSource):
            wait = self.source.next_wait()
            if wait.timeout_s:
                return wait
            chunk = self.source.read()
            if chunk is None:
                return DONE
            self.pub.publish(chunk)
            return NOW
        while (chunk := self.source.read(timeout_s=0.0)) is not None:
            self.pub.publish(chunk)
        self.pub.stats.drops = self.source.dropped_blocks  # blocks lost before the socket, visible in NodeStats
        return self.source.next_wait()

    def close(self) -> None:
        if isinstance(self.source, MicrophoneSource):
            self.node.log.info("captured with %d dropped block(s), %d overflow(s), %d gap(s)",
                               self.source.dropped_blocks, self.source.overflows, self.source.gaps)
        self.source.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(Microphone, argv)


if __name__ == "__main__":
    raise SystemExit(main())
