"""The node API: components run in-process by the harness; publish-time validation; waits and wake-ups.

Node logic is tested here without processes (mmstream.testing.NodeHarness); transport, launch and
end-to-end behaviour have their real-process tests elsewhere.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmstream.errors import MessageError, ParameterError
from mmstream.executor import DONE, IDLE, NOW, Wait
from mmstream.messages import AudioChunk, EmotionEstimate, Header, ImageFrame, TextUtterance
from mmstream.node import Component, Node
from mmstream.testing import NodeHarness
from nodes.console import Console, summary_line
from nodes.synchronizer import PARAMS as SYNC_PARAMS
from nodes.synchronizer import Synchronizer, config_from_node_params
from nodes.test_pattern import PatternPublisher, frame_index
from nodes.text import Text
from tests.conftest import REPO

T0 = 1_000_000_000_000


def _frame(stamp_ns: int) -> ImageFrame:
    return ImageFrame(Header(stamp_ns), "bgr8", 4, 4, np.zeros((4, 4, 3), np.uint8))


def test_synchronizer_node_cuts_windows_from_what_it_is_sent() -> None:
    h = NodeHarness(Synchronizer, {"streams": ["video", "audio"], "window_s": 1.0, "hop_s": 0.5},
                    start_ns=T0)
    for i in range(40):  # 2 s of 20 Hz frames and 50 ms audio chunks, sent as they "happen"
        t = T0 + i * 50_000_000
        h.set_time(t)
        h.send("/camera/image", _frame(t))
        h.send("/microphone/audio", AudioChunk(Header(t), samples=np.zeros((800, 1), np.float32)))
    windows = h.published("/sync/window")
    assert [w.start_ns - T0 for w in windows[:3]] == [-500_000_000, 0, 500_000_000]  # windows on the hop grid
    assert all(w.end_ns - w.start_ns == 1_000_000_000 for w in windows)
    assert not windows[0].frame_mask[:3].any() and windows[0].frame_mask[3:].all()  # before the first frame: masked
    assert windows[1].frame_mask.all() and windows[1].audio_mask.all()
    h.close()


def test_synchronizer_parameters_are_the_config_fields() -> None:
    names = {p.name for p in SYNC_PARAMS}
    assert {"window_s", "hop_s", "max_delay_s", "streams", "emit_empty"} <= names
    cfg = config_from_node_params({p.name: p.default for p in SYNC_PARAMS} | {"window_s": 2.0, "max_delay_s": 0.1})
    assert cfg.window_ns == 2_000_000_000 and cfg.max_delay_ns == 100_000_000
    with pytest.raises(ParameterError, match="streams"):
        NodeHarness(Synchronizer, {"streams": ["video", "smell"]})


def test_bad_input_is_counted_by_the_node() -> None:
    h = NodeHarness(Synchronizer, {"streams": ["audio"], "sample_rate_hz": 16000})
    h.send("/microphone/audio", AudioChunk(Header(h.node.now_ns()), sample_rate_hz=8000,
                                           samples=np.zeros((160, 1), np.float32)))
    assert sum(h.node.rejected.values()) == 1, h.node.rejected


def test_pattern_publisher_follows_its_timers() -> None:
    h = NodeHarness(PatternPublisher, {"fps": 10.0, "width": 64, "height": 32, "audio": True, "block_s": 0.1,
                                       "text_period_s": 0.5})
    for _ in range(10):
        h.advance(0.1)
    frames = h.published("/camera/image")
    assert [frame_index(f.data) for f in frames] == list(range(10))
    chunks = h.published("/microphone/audio")
    assert len(chunks) == 10 and all(c.samples.shape == (1600, 1) for c in chunks)
    stamps = [c.header.stamp_ns for c in chunks]
    assert np.all(np.diff(stamps) == 100_000_000)  # contiguous audio: stamps from sample counts
    assert [u.text for u in h.published("/text/utterance")] == ["test utterance number 1", "test utterance number 2"]


def test_text_node_publishes_a_subtitle_file_then_reports_done() -> None:
    h = NodeHarness(Text, {"source": str(REPO / "mmstream/data/sample.srt"), "realtime": False})
    h.step()
    assert h.done
    texts = [u.text for u in h.published("/text/utterance")]
    assert len(texts) >= 2 and all(texts)
    idle = NodeHarness(Text, {"source": str(REPO / "mmstream/data/sample.srt"), "realtime": False,
                              "exit_on_end": False})
    idle.step()
    assert idle.last_wait is IDLE  # finished but staying up: nothing to wait for, no spinning


def test_console_prints_a_summary_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    h = NodeHarness(Console, {"topics": ["/perception/emotion"]})
    for label, ms in (("happy", 10.0), ("happy", 30.0), ("sad", 20.0)):
        h.send("/perception/emotion", EmotionEstimate(labels=["happy", "sad"], probs=[0.5, 0.5], top_label=label,
                                                      top_prob=0.5, latency_ms={"total": ms}))
    h.close()
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 4
    assert out[-1] == "summary: 3 windows, happy 2 sad 1, model latency p50 20.0 ms p99 30.0 ms, 0 dropped"
    assert summary_line({"/x": 2}, {}, [], 3) == "summary: 2 on /x, 3 dropped"


def test_harness_rejects_an_invalid_message_like_a_real_publisher() -> None:
    class Bad(Component):
        NAME = "bad"

        def __init__(self, node: Node) -> None:
            super().__init__(node)
            self.pub = node.create_publisher(ImageFrame, "/camera/image")

    h = NodeHarness(Bad)
    with pytest.raises(MessageError, match=r"ImageFrame.data shape \(4, 4, 3\) does not match bgr8 10x10x3"):
        h.component.pub.publish(ImageFrame(Header(1), "bgr8", 10, 10, np.zeros((4, 4, 3), np.uint8)))


def test_publish_validates_at_the_sender(run_dir: Path) -> None:
    with Node("sender") as node:
        pub = node.create_publisher(ImageFrame, "/camera/image")
        with pytest.raises(MessageError) as err:
            pub.publish(ImageFrame(Header(1), "bgr8", 10, 10, np.zeros((4, 4, 3), np.uint8)))
        assert "'/camera/image'" in str(err.value) and "ImageFrame" in str(err.value) and "10x10x3" in str(err.value)
        assert pub.seq == 0 and pub.stats.count == 0  # nothing went out
        with pytest.raises(MessageError, match="end_ns"):
            node.create_publisher(TextUtterance, "/t").publish(TextUtterance(start_ns=5, end_ns=1, text="x"))


class _Ticker(Component):
    """Finishes after three steps; each waits on a pipe the test writes to."""

    NAME = "ticker"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        import os

        self.r, self.w = os.pipe()
        self.steps = 0

    def step(self) -> Wait:
        import os

        self.steps += 1
        if self.steps > 3:
            return DONE
        if self.steps > 1:
            os.read(self.r, 1)
        return Wait.until_ready(self.r)


def test_spin_sleeps_until_the_component_fd_is_ready(run_dir: Path) -> None:
    import os

    with Node("ticker") as node:
        comp = _Ticker(node)
        t = threading.Thread(target=node.spin, args=(comp,))
        t.start()
        time.sleep(0.3)  # nothing written: the node sleeps in its poll
        assert comp.steps == 1
        os.write(comp.w, b"x")
        os.write(comp.w, b"x")
        t.join(5)
        assert not t.is_alive() and comp.steps == 5  # 3 waits, DONE, and DONE again while draining


def test_shutdown_from_another_thread_ends_a_long_poll_at_once(run_dir: Path) -> None:
    with Node("sleeper") as node:
        t = threading.Thread(target=node.spin)
        t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        node.shutdown()
        t.join(2)
        assert not t.is_alive() and time.monotonic() - t0 < 0.5


def test_now_means_come_back_at_once() -> None:
    assert NOW.timeout_s == 0 and not NOW.done and IDLE.timeout_s is None and DONE.done
