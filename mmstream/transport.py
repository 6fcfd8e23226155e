"""ZeroMQ transport: one publisher socket per topic, subscribers connect to it by name.

Two qualities of service, chosen per publisher and subscription:

* **sensor** (default): the publisher never blocks; each subscription keeps only the newest
  ``keep_last`` messages. ZeroMQ drops per subscriber at the high-water mark and we count those
  drops from gaps in ``seq``; overflow of the keep-last queue is counted too.
* **reliable** (``reliable=True`` / ``keep_last=None``): ``XPUB_NODROP`` makes a full subscriber
  queue push back on the publisher, which waits instead of dropping (bag replay as fast as
  possible). The subscription reads from the socket only as fast as its callback consumes.

Publishers are ``XPUB`` sockets so they see subscriptions arrive: ``wait_for_subscribers``
replaces the usual sleep against the slow-joiner problem.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np
import zmq

from mmstream import security, wire
from mmstream.errors import MessageError, MmstreamError, WireError
from mmstream.graph import bind_endpoint
from mmstream.messages import Message

M = TypeVar("M", bound=Message)

SENSOR_HWM = 64         # ZeroMQ queue per subscriber (sensor QoS); the receiver thread keeps it empty
RELIABLE_HWM = 64       # messages queued per subscriber before a reliable publisher waits
ZERO_COPY_MIN_BYTES = 65536
END_OF_STREAM = b"\x00mmstream-end-of-stream"  # a reliable publisher's last frame; never a valid header
_LATENCY_SAMPLES = 512


class TopicStats:
    """Counters for one topic end: count, bytes, drops, rejected, latency (receive − stamp)."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.drops = 0
        self.rejected = 0
        self.latency_ns: collections.deque[int] = collections.deque(maxlen=_LATENCY_SAMPLES)
        self._last_count = 0
        self._last_bytes = 0
        self._last_t = time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """Rates since the previous snapshot, plus totals and latency percentiles."""
        now = time.monotonic()
        dt = max(now - self._last_t, 1e-9)
        rate = (self.count - self._last_count) / dt
        bw = (self.bytes - self._last_bytes) / dt
        self._last_count, self._last_bytes, self._last_t = self.count, self.bytes, now
        out: dict[str, Any] = {"count": self.count, "rate_hz": round(rate, 3), "bytes_per_s": round(bw, 1),
                               "drops": self.drops, "rejected": self.rejected}
        if self.latency_ns:
            lat = np.asarray(self.latency_ns, dtype=np.float64) / 1e6
            out["latency_p50_ms"] = round(float(np.percentile(lat, 50)), 3)
            out["latency_p99_ms"] = round(float(np.percentile(lat, 99)), 3)
        return out


class Publisher(Generic[M]):
    """Publishes messages of one type on one topic. Create it with ``Node.create_publisher``."""

    def __init__(self, ctx: zmq.Context, topic: str, msg_type: type[M], *, endpoint: str,
                 reliable: bool = False, hwm: int | None = None,
                 max_message_bytes: int = wire.DEFAULT_MAX_MESSAGE_BYTES,
                 clock: Callable[[], int], is_shutdown: Callable[[], bool] = lambda: False,
                 hold_first_for: int = 0, hold_timeout_s: float = 10.0,
                 log: logging.Logger | None = None) -> None:
        self.topic = topic
        self.msg_type = msg_type
        self.endpoint = endpoint
        self.reliable = reliable
        self.stats = TopicStats()
        self._seq = 0
        self._clock = clock
        self._is_shutdown = is_shutdown
        self._max_bytes = max_message_bytes
        self._subscribers = 0
        # hold the first message until this many subscribers are connected (a replayed graph whose
        # consumer starts late loses nothing); once only, so a consumer leaving later changes nothing
        self._hold_first_for = hold_first_for
        self._hold_timeout_s = hold_timeout_s
        self._log = log or logging.getLogger("mmstream.transport")
        self._sock = ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm or (RELIABLE_HWM if reliable else SENSOR_HWM))
        self._sock.setsockopt(zmq.LINGER, 1000 if reliable else 200)  # flush what is queued at close
        self._sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        if reliable:
            self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        try:  # CURVE server on tcp when the graph has security; plaintext tcp only on loopback otherwise
            self._security = security.secure_server(self._sock, endpoint, domain=topic,
                                                    what=f"publisher of {topic!r}")
            self._sock.bind(bind_endpoint(endpoint))
        except (zmq.ZMQError, MmstreamError) as exc:
            self._sock.close(0)
            if isinstance(exc, MmstreamError):
                raise
            raise MmstreamError(f"cannot publish {topic!r}: bind {endpoint} failed ({exc}); "
                                f"is another publisher of this topic running?") from None

    @property
    def seq(self) -> int:
        """Sequence number of the last message published (0 before the first)."""
        return self._seq

    @property
    def subscription_count(self) -> int:
        self._read_subscriptions(0)
        return self._subscribers

    def _read_subscriptions(self, timeout_ms: int) -> int:
        """Apply (un)subscription events; returns how many unsubscriptions were read."""
        left = 0
        while self._sock.poll(timeout_ms, zmq.POLLIN):
            event = self._sock.recv()
            if event[:1] == b"\x01":
                self._subscribers += 1
            elif event[:1] == b"\x00":
                self._subscribers = max(0, self._subscribers - 1)
                left += 1
            timeout_ms = 0
        return left

    def finish(self, timeout_s: float) -> bool:
        """End of stream, before closing: send the end marker and wait (at most ``timeout_s``) until
        every connected subscriber has confirmed it received everything before it.

        libzmq drops what a slow subscriber has not read yet when its publisher's connection goes away
        (even with LINGER; tests/test_transport_end.py), so a reliable publisher that exits must first
        know its subscribers have everything. A subscription confirms by unsubscribing (and subscribing
        again at once, for a publisher that restarts). False if some did not confirm in time.
        """
        self._read_subscriptions(0)
        waiting = self._subscribers
        if waiting == 0:
            return True
        deadline = time.monotonic() + timeout_s
        frames = [self.topic.encode(), END_OF_STREAM]
        while True:
            try:
                self._sock.send_multipart(frames, flags=zmq.NOBLOCK)
                break
            except zmq.Again:  # behind the last messages, in the same queue
                if time.monotonic() >= deadline:
                    return False
                self._sock.poll(50, zmq.POLLOUT)
        while waiting > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._log.warning("%s: %d subscriber(s) did not confirm the end of the stream within %.1f s; "
                                  "what they had not read yet may be lost", self.topic, waiting, timeout_s)
                return False
            waiting -= self._read_subscriptions(int(min(remaining, 0.05) * 1000))
        return True

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until ``count`` subscriptions are connected (handshake, not a sleep)."""
        deadline = time.monotonic() + timeout_s
        while self.subscription_count < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._is_shutdown():
                return False
            self._read_subscriptions(int(min(remaining, 0.05) * 1000))
        return True

    def publish(self, msg: M) -> bool:
        """Send ``msg``; sets ``header.seq`` (and the stamp if it is 0). False if it was dropped."""
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"publisher of {self.topic!r} sends {self.msg_type.__name__}, "
                            f"got {type(msg).__name__}")
        validate = getattr(msg, "validate", None)
        try:
            if validate is not None:
                validate()  # reject at the sender: every subscriber would drop it as bad-fields
        except ValueError as exc:
            raise MessageError(f"publisher of {self.topic!r}: invalid {type(msg).__name__} not sent: {exc}") from None
        if self._hold_first_for:
            want, self._hold_first_for = self._hold_first_for, 0
            if not self.wait_for_subscribers(want, self._hold_timeout_s):
                self._log.warning("%s: publishing without waiting further: %d of %d subscriber(s) connected "
                                  "after %.1f s", self.topic, self._subscribers, want, self._hold_timeout_s)
        self._seq += 1
        msg.header.seq = self._seq
        if msg.header.stamp_ns == 0:
            msg.header.stamp_ns = self._clock()
        frames = wire.encode(self.topic, msg, max_message_bytes=self._max_bytes)
        copy = msg.nbytes() < ZERO_COPY_MIN_BYTES
        if self.reliable:
            while True:
                try:
                    self._sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=copy)
                    break
                except zmq.Again:  # a subscriber's queue is full: wait for it (backpressure)
                    if self._is_shutdown():
                        self.stats.drops += 1
                        return False
                    self._sock.poll(50, zmq.POLLOUT)
        else:
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=copy)
        if self._sock.get(zmq.EVENTS) & zmq.POLLIN:  # (un)subscriptions: after the send, off its path
            self._read_subscriptions(0)
        self.stats.count += 1
        self.stats.bytes += sum(len(f) if isinstance(f, bytes) else f.nbytes for f in frames)
        return True

    def close(self, *, linger_s: float | None = None) -> None:
        """Close; ``linger_s`` overrides how long queued messages may still take to leave."""
        if linger_s is not None:
            self._sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
        self._sock.close()
        self._security.release()


class Subscription(Generic[M]):
    """Receives one topic; the owning node's executor drains it and calls ``callback(msg)``."""

    def __init__(self, ctx: zmq.Context, topic: str, msg_type: type[M], callback: Callable[[M], None], *,
                 endpoint: str, keep_last: int | None = 4,
                 max_message_bytes: int = wire.DEFAULT_MAX_MESSAGE_BYTES,
                 clock: Callable[[], int], on_reject: Callable[[str, str], None],
                 log: logging.Logger) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"subscription {topic!r}: keep_last must be >= 1 or None (reliable), got {keep_last}")
        self.topic = topic
        self.msg_type = msg_type
        self.callback = callback
        self.endpoint = endpoint
        self.keep_last = keep_last
        self.stats = TopicStats()
        self.last_seq = 0
        self._clock = clock
        self._on_reject = on_reject
        self._log = log
        self._max_bytes = max_message_bytes
        self._queue: collections.deque[list[zmq.Frame]] = collections.deque(maxlen=keep_last)
        self._lock = threading.Lock()
        self._overflowed = 0  # keep-last overflow since the last take()
        self.socket = ctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, RELIABLE_HWM if keep_last is None else max(keep_last, SENSOR_HWM))
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RECONNECT_IVL, 50)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:  # CURVE client trusting only the policy's publisher key, on tcp with graph security
            self.security = security.secure_client(self.socket, endpoint, domain=topic,
                                                   what=f"subscription to {topic!r}")
        except MmstreamError:
            self.socket.close(0)
            raise
        # Connection events let the receiver thread re-dial a publisher that was killed and
        # restarted, in case ZeroMQ's own reconnect does not get through (stale ipc path).
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._redial_at: float | None = None
        self.publisher_connected = False
        self.ended = 0  # end-of-stream markers received (a reliable publisher finished)
        self.socket.connect(endpoint)

    @property
    def reliable(self) -> bool:
        return self.keep_last is None

    def receive_available(self) -> None:
        """Move what the socket holds into the queue. Called only by the node's receiver thread.

        Sensor QoS reads everything so ZeroMQ's own queue never fills (it would drop the *newest*);
        the keep-last deque then drops the oldest, and counts it. Reliable QoS stops reading when
        its queue is full, so the socket's high-water mark pushes back on the publisher.
        """
        while True:
            if self.reliable and len(self._queue) >= RELIABLE_HWM:
                return
            # ask before reading: a failed non-blocking recv raises, and building that exception
            # costs more than the whole receive on the latency path
            if not self.socket.get(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) == 2 and frames[1].bytes == END_OF_STREAM:
                # everything the publisher sent is queued here: confirm, and stay subscribed for a restart
                self.socket.setsockopt(zmq.UNSUBSCRIBE, self.topic.encode())
                self.socket.setsockopt(zmq.SUBSCRIBE, self.topic.encode())
                self.ended += 1
                continue
            with self._lock:
                if self.keep_last is not None and len(self._queue) == self.keep_last:
                    self.stats.drops += 1  # the oldest is pushed out: keep-last overflow
                    self._overflowed += 1
                self._queue.append(frames)

    def on_monitor_event(self) -> None:
        """Handle connection events (receiver thread only)."""
        from zmq.utils.monitor import recv_monitor_message

        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self._redial_at = time.monotonic() + 1.0
                self.publisher_connected = False  # what it sent before going away has been received
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._redial_at = None
                self.publisher_connected = True

    def redial_in_s(self) -> float | None:
        """Seconds until :meth:`redial_if_stuck` wants to run (None: connected, nothing due)."""
        return None if self._redial_at is None else max(0.0, self._redial_at - time.monotonic())

    def redial_if_stuck(self) -> None:
        """Re-dial once a second while disconnected (receiver thread only)."""
        if self._redial_at is not None and time.monotonic() >= self._redial_at:
            self._log.info("re-dialing publisher of %s at %s", self.topic, self.endpoint)
            self.socket.disconnect(self.endpoint)
            self.socket.connect(self.endpoint)
            self._redial_at = time.monotonic() + 1.0

    def wants_data(self) -> bool:
        return not self.reliable or len(self._queue) < RELIABLE_HWM

    def pending(self) -> int:
        return len(self._queue)

    def peek_seq(self) -> int | None:
        """``header.seq`` of the oldest queued message without decoding it (None if empty or unreadable)."""
        with self._lock:
            if not self._queue:
                return None
            frames = self._queue[0]
        found = wire.peek_stamp(frames)
        return None if found is None else found[1]

    def take(self) -> M | None:
        """Decode the oldest queued message; None (counted, logged) if it is malformed."""
        with self._lock:
            frames = self._queue.popleft()
            overflowed, self._overflowed = self._overflowed, 0
        try:
            _, msg = wire.decode(frames, max_message_bytes=self._max_bytes)
        except WireError as exc:
            self.stats.rejected += 1
            self._on_reject(exc.reason, f"{self.topic}: {exc.detail}")
            return None
        if not isinstance(msg, self.msg_type):
            self.stats.rejected += 1
            self._on_reject("wrong-type", f"{self.topic}: got {msg.SCHEMA}, expected {self.msg_type.SCHEMA}")
            return None
        seq = msg.header.seq
        if self.last_seq and seq > self.last_seq + 1:
            # lost in transport (high-water mark); keep-last overflow was counted when it happened
            self.stats.drops += max(0, seq - self.last_seq - 1 - overflowed)
        elif self.last_seq and seq <= self.last_seq:
            self._log.info("publisher of %s restarted (seq %d after %d)", self.topic, seq, self.last_seq)
        self.last_seq = seq
        self.stats.count += 1
        self.stats.bytes += sum(len(f) for f in frames)
        if msg.header.stamp_ns:
            self.stats.latency_ns.append(self._clock() - msg.header.stamp_ns)  # node clock: bag time on replay
        return msg

    def close(self) -> None:
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)
