"""Publishes synthetic frames, audio and text at fixed rates — for demos, tests and benchmarks.

Frames carry their index painted as a 32-bit bar code in the first row (see ``frame_index``),
audio is a sine tone, text a counter sentence.
"""

from __future__ import annotations

import numpy as np

from mmstream.messages import AudioChunk, ImageFrame, TextUtterance
from mmstream.node import Node, Param, run_node

PARAMS = [
    Param("fps", 30.0, min=0.0, max=1000.0, doc="frame rate (0: no frames)"),
    Param("width", 320, min=16), Param("height", 240, min=16),
    Param("sample_rate_hz", 16000, min=1000), Param("block_s", 0.02, min=0.001, doc="audio chunk duration"),
    Param("audio", True), Param("tone_hz", 440.0, min=1.0),
    Param("text_period_s", 1.0, min=0.0, doc="seconds between utterances (0: no text)"),
    Param("count", 0, min=0, doc="stop after this many frames (0: run until stopped)"),
    Param("wait_for_subscribers", 0, min=0, doc="wait for this many subscribers on each topic before publishing"),
]


def paint_index(img: np.ndarray, index: int) -> None:
    """Write ``index`` into the first row as 32 blocks of black/white (read back by frame_index)."""
    w = img.shape[1] // 32
    for bit in range(32):
        img[:4, bit * w:(bit + 1) * w] = 255 if (index >> bit) & 1 else 0


def frame_index(img: np.ndarray) -> int:
    w = img.shape[1] // 32
    return sum(1 << bit for bit in range(32) if img[:4, bit * w:(bit + 1) * w].mean() > 127)


def setup(node: Node) -> None:
    p = node.params
    base = np.zeros((p["height"], p["width"], 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, p["width"], dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(0, 255, p["height"], dtype=np.uint8)[:, None]
    frames = node.create_publisher(ImageFrame, "/camera/image")
    audio = node.create_publisher(AudioChunk, "/microphone/audio") if p["audio"] else None
    text = node.create_publisher(TextUtterance, "/text/utterance") if p["text_period_s"] > 0 else None
    if p["wait_for_subscribers"]:
        for pub in filter(None, (frames, audio, text)):
            pub.wait_for_subscribers(p["wait_for_subscribers"], timeout_s=10.0)
    state = {"frame": 0, "sample": 0, "utt": 0, "t0": node.now_ns()}

    def on_frame() -> None:
        img = base.copy()
        paint_index(img, state["frame"])
        frames.publish(ImageFrame(encoding="bgr8", height=p["height"], width=p["width"], data=img))
        state["frame"] += 1
        if p["count"] and state["frame"] >= p["count"]:
            node.shutdown()

    def on_audio() -> None:
        n = int(round(p["block_s"] * p["sample_rate_hz"]))
        t = (state["sample"] + np.arange(n)) / p["sample_rate_hz"]
        samples = (0.3 * np.sin(2 * np.pi * p["tone_hz"] * t)).astype(np.float32)[:, None]
        stamp = state["t0"] + state["sample"] * 1_000_000_000 // p["sample_rate_hz"]
        msg = AudioChunk(sample_rate_hz=p["sample_rate_hz"], channels=1, samples=samples)
        msg.header.stamp_ns = stamp
        audio.publish(msg)  # type: ignore[union-attr]
        state["sample"] += n

    def on_text() -> None:
        now = node.now_ns()
        state["utt"] += 1
        text.publish(TextUtterance(start_ns=now - 500_000_000, end_ns=now,  # type: ignore[union-attr]
                                   text=f"test utterance number {state['utt']}", source="test_pattern"))

    if p["fps"] > 0:
        node.create_timer(1.0 / p["fps"], on_frame)
    if audio is not None:
        node.create_timer(p["block_s"], on_audio)
    if text is not None:
        node.create_timer(p["text_period_s"], on_text)


def main(argv: list[str] | None = None) -> int:
    return run_node("test_pattern", PARAMS, setup, argv)


if __name__ == "__main__":
    raise SystemExit(main())
