"""Publishes synthetic frames, audio and text at fixed rates — for demos, tests and benchmarks.

Frames carry their index painted as a 32-bit bar code in the first row (see ``frame_index``),
audio is a sine tone, text a counter sentence.
"""

from __future__ import annotations

import numpy as np

from mmstream.messages import AudioChunk, ImageFrame, TextUtterance
from mmstream.clock import NS_PER_S
from mmstream.node import Component, Node, Param, run_node

PARAMS = [
    Param("fps", 30.0, min=0.0, max=1000.0, doc="frame rate (0: no frames)"),
    Param("width", 320, min=16), Param("height", 240, min=16),
    Param("sample_rate_hz", 16000, min=1000), Param("block_s", 0.02, min=0.001, doc="audio chunk duration"),
    Param("audio", True), Param("tone_hz", 440.0, min=1.0),
    Param("text_period_s", 1.0, min=0.0, doc="seconds between utterances (0: no text)"),
    Param("count", 0, min=0, doc="stop after this many frames (0: run until stopped)"),
    Param("wait_for_subscribers", 0, min=0, doc="wait for this many subscribers on each topic before publishing"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="how long to wait for them"),
]


def paint_index(img: np.ndarray, index: int) -> None:
    """Write ``index`` into the first row as 32 blocks of black/white (read back by frame_index)."""
    w = img.shape[1] // 32
    for bit in range(32):
        img[:4, bit * w:(bit + 1) * w] = 255 if (index >> bit) & 1 else 0


def frame_index(img: np.ndarray) -> int:
    w = img.shape[1] // 32
    return sum(1 << bit for bit in range(32) if img[:4, bit * w:(bit + 1) * w].mean() > 127)


class PatternPublisher(Component):
    NAME = "test_pattern"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.base = np.zeros((p["height"], p["width"], 3), np.uint8)
        self.base[..., 0] = np.linspace(0, 255, p["width"], dtype=np.uint8)[None, :]
        self.base[..., 1] = np.linspace(0, 255, p["height"], dtype=np.uint8)[:, None]
        self.frames = node.create_publisher(ImageFrame, "/camera/image")
        self.audio = node.create_publisher(AudioChunk, "/microphone/audio") if p["audio"] else None
        self.text = node.create_publisher(TextUtterance, "/text/utterance") if p["text_period_s"] > 0 else None
        if p["wait_for_subscribers"]:
            node.wait_for_subscribers(filter(None, (self.frames, self.audio, self.text)), p["wait_for_subscribers"],
                                      p["wait_timeout_s"])
        self.frame_index = 0
        self.samples_done = 0
        self.utterances = 0
        self.t0_ns = node.now_ns()
        if p["fps"] > 0:
            node.create_timer(1.0 / p["fps"], self.on_frame)
        if self.audio is not None:
            node.create_timer(p["block_s"], self.on_audio)
        if self.text is not None:
            node.create_timer(p["text_period_s"], self.on_text)

    def on_frame(self) -> None:
        p = self.node.params
        img = self.base.copy()
        paint_index(img, self.frame_index)
        self.frames.publish(ImageFrame(encoding="bgr8", height=p["height"], width=p["width"], data=img))
        self.frame_index += 1
        if p["count"] and self.frame_index >= p["count"]:
            self.node.shutdown()

    def on_audio(self) -> None:
        assert self.audio is not None
        rate = self.node.params["sample_rate_hz"]
        n = int(round(self.node.params["block_s"] * rate))
        t = (self.samples_done + np.arange(n)) / rate
        samples = (0.3 * np.sin(2 * np.pi * self.node.params["tone_hz"] * t)).astype(np.float32)[:, None]
        msg = AudioChunk(sample_rate_hz=rate, channels=1, samples=samples)
        msg.header.stamp_ns = self.t0_ns + self.samples_done * NS_PER_S // rate
        self.audio.publish(msg)
        self.samples_done += n

    def on_text(self) -> None:
        assert self.text is not None
        now = self.node.now_ns()
        self.utterances += 1
        self.text.publish(TextUtterance(start_ns=now - NS_PER_S // 2, end_ns=now,
                                        text=f"test utterance number {self.utterances}", source="test_pattern"))


def main(argv: list[str] | None = None) -> int:
    return run_node(PatternPublisher, argv)


if __name__ == "__main__":
    raise SystemExit(main())
