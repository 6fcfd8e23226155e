"""Why a finished publisher must outlive its slow subscribers (the player's linger_s).

Raw pyzmq, no mmstream code: a reliable (XPUB_NODROP) publisher that closes with a long LINGER
while its subscriber is behind loses the tail of the stream: libzmq drops what the subscriber's
session has not read when the connection ends. This test pins that behaviour of the libzmq we
ship; if it ever stops losing, the player could exit at once instead of waiting for its subscribers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import zmq


def test_a_publisher_that_exits_while_its_subscriber_is_behind_loses_the_tail(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/end.sock"
    total = 2000
    got = [0]
    ready = threading.Event()

    def subscriber() -> None:
        ctx = zmq.Context()
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.RCVHWM, 64)
        s.setsockopt(zmq.SUBSCRIBE, b"t")
        s.connect(endpoint)
        ready.set()
        last = time.monotonic()
        while time.monotonic() - last < 1.5:
            if s.poll(100):
                s.recv_multipart()
                got[0] += 1
                last = time.monotonic()
                time.sleep(0.002)  # a slow consumer
        s.close(0)
        ctx.term()

    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 64)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.bind(endpoint)
    t = threading.Thread(target=subscriber)
    t.start()
    assert ready.wait(5) and pub.poll(5000)
    pub.recv()  # the subscription
    for i in range(total):
        while True:
            try:
                pub.send_multipart([b"t", str(i).encode(), b"x" * 3000], zmq.NOBLOCK)
                break
            except zmq.Again:
                pub.poll(50, zmq.POLLOUT)
    pub.setsockopt(zmq.LINGER, 5000)
    pub.close()
    ctx.term()  # returns while the subscriber is still behind
    t.join(30)
    assert 0 < got[0] < total, got[0]
