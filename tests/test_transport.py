"""Publisher/subscription semantics over real ZeroMQ sockets (in one process, two nodes)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from mmstream.messages import ImageFrame, TextUtterance
from mmstream.node import Node
from tests.conftest import wait_for


def _frame(i: int, side: int = 2) -> ImageFrame:
    return ImageFrame(height=side, width=side, data=np.full((side, side, 3), i % 256, np.uint8))


def _spin_until(node: Node, pred, timeout_s: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        node.spin_once(0.01)


def test_handshake_then_every_message_in_order(run_dir: Path) -> None:
    with Node("pub", run_dir=run_dir) as a, Node("sub", run_dir=run_dir) as b:
        got: list[TextUtterance] = []
        b.create_subscription(TextUtterance, "/chat", got.append, keep_last=None)
        pub = a.create_publisher(TextUtterance, "/chat")
        assert pub.wait_for_subscribers(1, timeout_s=5)
        for i in range(50):
            pub.publish(TextUtterance(text=str(i), start_ns=i, end_ns=i + 1))
        _spin_until(b, lambda: len(got) == 50)
        assert [m.text for m in got] == [str(i) for i in range(50)]
        assert [m.header.seq for m in got] == list(range(1, 51))
        assert all(m.header.stamp_ns > 0 for m in got)


def test_wait_for_subscribers_times_out_without_one(run_dir: Path) -> None:
    with Node("lonely", run_dir=run_dir) as a:
        pub = a.create_publisher(TextUtterance, "/nobody")
        t0 = time.monotonic()
        assert not pub.wait_for_subscribers(1, timeout_s=0.3)
        assert 0.25 < time.monotonic() - t0 < 2


def test_keep_last_keeps_newest_and_counts_drops(run_dir: Path) -> None:
    with Node("pub", run_dir=run_dir) as a, Node("sub", run_dir=run_dir) as b:
        got: list[ImageFrame] = []
        sub = b.create_subscription(ImageFrame, "/cam", got.append, keep_last=2)
        pub = a.create_publisher(ImageFrame, "/cam")
        assert pub.wait_for_subscribers(1)
        for i in range(1, 101):  # the subscriber's callbacks are not running: a stalled consumer
            pub.publish(_frame(i))
            time.sleep(0.001)
        time.sleep(0.2)
        for _ in range(5):
            b.spin_once(0.02)
        seqs = [m.header.seq for m in got]
        assert len(seqs) == 2  # only the newest keep_last survive a consumer that was not spinning
        assert seqs[-1] == 100  # the newest always arrives
        assert sub.stats.drops == 100 - len(seqs)  # every message is delivered or counted as dropped


def test_reliable_publisher_waits_instead_of_dropping(run_dir: Path) -> None:
    with Node("pub", run_dir=run_dir) as a, Node("sub", run_dir=run_dir) as b:
        got: list[int] = []

        def slow(m: ImageFrame) -> None:
            got.append(m.header.seq)
            time.sleep(0.001)

        sub = b.create_subscription(ImageFrame, "/replay", slow, keep_last=None)
        pub = a.create_publisher(ImageFrame, "/replay", reliable=True)
        assert pub.wait_for_subscribers(1)
        # 600 x 30 KB: several times what the high-water marks on both sides (3 x 64 messages)
        # and the kernel's socket buffers can hold, so the producer must wait.
        n = 600
        done = threading.Event()

        def produce() -> None:
            for i in range(n):
                pub.publish(_frame(i, side=100))
            done.set()

        t = threading.Thread(target=produce)
        t.start()
        time.sleep(0.3)
        assert not done.is_set(), "publisher did not wait for the slow subscriber"
        _spin_until(b, lambda: len(got) == n, timeout_s=30)
        t.join(5)
        assert got == list(range(1, n + 1))
        assert sub.stats.drops == 0 and pub.stats.drops == 0


def test_subscriber_picks_up_a_restarted_publisher(run_dir: Path) -> None:
    with Node("sub", run_dir=run_dir) as b:
        got: list[TextUtterance] = []
        b.create_subscription(TextUtterance, "/chat", got.append, keep_last=None)
        for generation in range(2):
            with Node("pub", run_dir=run_dir) as a:
                pub = a.create_publisher(TextUtterance, "/chat")
                assert pub.wait_for_subscribers(1, timeout_s=5), f"no reconnect in generation {generation}"
                pub.publish(TextUtterance(text=f"gen{generation}"))
                _spin_until(b, lambda: len(got) == generation + 1)
        assert [m.text for m in got] == ["gen0", "gen1"]


def test_garbage_on_a_subscription_is_counted_and_dropped(run_dir: Path) -> None:
    with Node("sub", run_dir=run_dir) as b:
        got: list[TextUtterance] = []
        sub = b.create_subscription(TextUtterance, "/chat", got.append, keep_last=None)
        ctx = zmq.Context.instance()
        raw = ctx.socket(zmq.XPUB)
        raw.bind(sub.endpoint)
        assert raw.poll(5000)  # the subscription arrives
        raw.recv()
        raw.send_multipart([b"/chat", b"\x93\x01\x02"])
        raw.send_multipart([b"/chat"])
        raw.send_multipart([b"/chat", b"\x00" * 10, b"x"])
        from mmstream import wire
        raw.send_multipart(wire.encode("/chat", TextUtterance(text="ok")))
        raw.send_multipart(wire.encode("/chat", _frame(1)))  # right topic, wrong type
        _spin_until(b, lambda: len(got) == 1 and sub.stats.rejected == 4)
        assert b.rejected == {"bad-header": 2, "truncated": 1, "wrong-type": 1}
        raw.close(0)


def test_publishing_the_wrong_type_is_a_programming_error(run_dir: Path) -> None:
    with Node("pub", run_dir=run_dir) as a:
        pub = a.create_publisher(TextUtterance, "/chat")
        with pytest.raises(TypeError, match="TextUtterance"):
            pub.publish(_frame(0))  # type: ignore[arg-type]


def test_timers_fire_on_schedule(run_dir: Path) -> None:
    with Node("t", run_dir=run_dir) as a:
        ticks: list[int] = []
        a.create_timer(0.02, lambda: ticks.append(time.monotonic_ns()))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            a.spin_once(0.1)
        assert 18 <= len(ticks) <= 26
        assert np.median(np.diff(ticks)) == pytest.approx(20e6, rel=0.25)


def test_stats_are_published_and_registry_lists_the_node(run_dir: Path) -> None:
    from mmstream import graph
    from mmstream.messages import NodeStats

    with Node("worker", run_dir=run_dir, params={"stats_period_s": 0.1}) as a, Node("mon", run_dir=run_dir) as b:
        stats: list[NodeStats] = []
        b.create_subscription(NodeStats, "/worker/stats", stats.append)
        a.create_publisher(TextUtterance, "/x")
        t0 = time.monotonic()
        while not stats and time.monotonic() - t0 < 5:
            a.spin_once(0.02)
            b.spin_once(0.02)
        assert stats and stats[-1].node == "worker"
        assert {t["topic"] for t in stats[-1].topics} >= {"/x", "/worker/stats"}
        names = {n["name"] for n in graph.list_nodes(run_dir)}
        assert {"worker", "mon"} <= names
    wait_for(lambda: not graph.list_nodes(run_dir), 2, "node records removed at close")


def test_keep_last_overflow_is_not_counted_twice(run_dir: Path) -> None:
    import threading as th

    with Node("pub", run_dir=run_dir) as a, Node("sub", run_dir=run_dir) as b:
        got: list[int] = []
        release = th.Event()

        def slow(m: ImageFrame) -> None:  # the first callback stalls while 50 more arrive
            got.append(m.header.seq)
            if len(got) == 1:
                release.wait(5)

        sub = b.create_subscription(ImageFrame, "/cam", slow, keep_last=3)
        pub = a.create_publisher(ImageFrame, "/cam")
        assert pub.wait_for_subscribers(1)
        spinner = th.Thread(target=lambda: [b.spin_once(0.02) for _ in range(150)])
        spinner.start()
        for i in range(51):
            pub.publish(_frame(i))
            time.sleep(0.002)
        time.sleep(0.2)
        release.set()
        spinner.join(10)
        assert got[-1] == 51
        assert sub.stats.drops == 51 - len(got)  # each lost message counted exactly once
