"""The node's executor pieces: what a component waits on (:class:`Wait`), and the :class:`Receiver`.

The node thread sleeps in one ``zmq.Poller`` call on everything it can be woken by: its
subscription sockets, the file descriptors or sockets its component named (stdin, a device pipe,
a text socket), its wake-up pipe (signals, :meth:`Node.shutdown` from another thread), and a
timeout (the next timer, the next stats message, the component's own deadline). An idle node
therefore costs nothing: no loop wakes up to find nothing to do.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zmq

_TAKEOVER_S = 0.005  # the receiver thread drains sockets once the node thread is busy this long
_AWAY_POLL_S = 1.0  # while the node thread is away, the receiver thread waits this long at most per poll


@dataclass(frozen=True)
class Wait:
    """What a component's ``step()`` asks the executor to wait for before calling it again.

    ``timeout_s``: at most this long (None: no deadline of its own; timers and messages still wake
    the node). ``on``: file descriptors, objects with ``fileno()`` or ZeroMQ sockets whose readiness
    means there is work. ``done``: the component has finished; the node drains and exits.
    """

    timeout_s: float | None = None
    on: tuple[Any, ...] = ()
    done: bool = False

    @staticmethod
    def until_ready(*on: Any, timeout_s: float | None = None) -> Wait:
        return Wait(timeout_s=timeout_s, on=tuple(on))

    @staticmethod
    def seconds(timeout_s: float) -> Wait:
        return Wait(timeout_s=max(0.0, timeout_s))

    @staticmethod
    def finished() -> Wait:
        return Wait(done=True)


IDLE = Wait()  # nothing of its own to wait for: callbacks and timers only
NOW = Wait(timeout_s=0.0)  # more work is ready: come back at once
DONE = Wait(done=True)


class WakePipe:
    """A self-pipe: ``wake()`` (safe from signal handlers and other threads) makes a poll on ``fd`` return."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)

    @property
    def write_fd(self) -> int:
        return self._w

    def wake(self) -> None:
        try:
            os.write(self._w, b"\0")
        except (BlockingIOError, OSError):  # full: a wake-up is pending anyway; closed: nothing to wake
            pass

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self.fd, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


class Receiver:
    """Keeps subscription sockets drained into their keep-last queues.

    ZeroMQ drops the *newest* message when its queue is full; draining continuously lets the
    keep-last queue drop the *oldest* instead, which is what a live consumer wants. While the
    node's thread waits in :meth:`node_poll` it reads the sockets itself (no thread hand-off on
    the latency path); when it has been busy elsewhere for a few milliseconds (callbacks, a
    blocking device read) a background thread takes over, and hands the sockets back at once
    when the node thread returns (an inproc wake-up socket ends its poll). ``io_lock`` makes the
    two never touch a socket at once. Neither thread wakes up while nothing happens.
    """

    def __init__(self, ctx: zmq.Context) -> None:
        self.io_lock = threading.Lock()
        self._subs: list[Any] = []
        self._cond = threading.Condition()
        self._node_polling = False  # the node thread is reading the sockets itself (or wants to)
        self._bg_polling = False  # the background thread holds io_lock and polls
        self._stop = False
        self._thread: threading.Thread | None = None
        self._wake_addr = f"inproc://mmstream-receiver-{id(self):x}"
        self._wake_rx = ctx.socket(zmq.PAIR)
        self._wake_rx.bind(self._wake_addr)
        self._wake_tx = ctx.socket(zmq.PAIR)
        self._wake_tx.setsockopt(zmq.SNDHWM, 4)
        self._wake_tx.connect(self._wake_addr)

    def add(self, sub: Any) -> None:
        # copy on write: a poll in progress keeps its list; the next one (woken now) sees the new socket
        self._subs = [*self._subs, sub]
        self._wake_background()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mmstream-receiver", daemon=True)
            self._thread.start()

    def any_pending(self) -> bool:
        return any(sub.pending() for sub in self._subs)

    def _poll(self, timeout_s: float, extra: Iterable[Any] = (), *, wake: bool = False) -> set[Any]:
        """Wait up to ``timeout_s`` for data and move it into the queues (hold ``io_lock``).

        Returns the members of ``extra`` that are ready (and the wake socket, when ``wake``)."""
        poller = zmq.Poller()
        for sub in self._subs:
            poller.register(sub.monitor, zmq.POLLIN)
            if sub.wants_data():
                poller.register(sub.socket, zmq.POLLIN)
            redial_in = sub.redial_in_s()
            if redial_in is not None:
                timeout_s = min(timeout_s, redial_in)
        extra = tuple(extra)
        for item in extra:
            poller.register(item, zmq.POLLIN)
        if wake:
            poller.register(self._wake_rx, zmq.POLLIN)
        timeout_ms = -1 if math.isinf(timeout_s) else max(0, int(math.ceil(timeout_s * 1000)))
        try:
            events = dict(poller.poll(timeout_ms))
        except zmq.ZMQError:
            return set()  # context terminated
        for sub in self._subs:
            if sub.monitor in events:
                sub.on_monitor_event()
            sub.redial_if_stuck()
            if sub.socket in events:
                sub.receive_available()
        ready = {item for item in extra if item in events or _fileno(item) in events}
        if wake and self._wake_rx in events:
            while self._wake_rx.poll(0):
                self._wake_rx.recv()
            ready.add(self._wake_rx)
        return ready

    def node_poll(self, timeout_s: float, extra: Iterable[Any] = (), *, queued_is_held: bool = False) -> set[Any]:
        """Called by the node thread when it has nothing to do: wait on the sockets and ``extra``.

        ``queued_is_held``: what is queued waits for something else to arrive, so wait anyway."""
        with self._cond:
            self._node_polling = True
        self._wake_background()
        try:
            with self.io_lock:
                # the background thread may have queued something while we waited for the lock
                waiting = not queued_is_held and self.any_pending()
                return self._poll(0.0 if waiting else timeout_s, extra)
        finally:
            with self._cond:
                self._node_polling = False
                self._cond.notify_all()

    def _run(self) -> None:
        # Take over only when the node thread has been away from its poll for a while: most
        # callbacks are short, and waking up for each would compete for the interpreter lock
        # on the latency path.
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or not self._node_polling)
                if self._stop:
                    return
                if self._cond.wait_for(lambda: self._stop or self._node_polling, timeout=_TAKEOVER_S):
                    continue  # back already (or stopping)
                self._bg_polling = True
            try:
                with self.io_lock:
                    while not self._stop and not self._node_polling:
                        if self._wake_rx in self._poll(_AWAY_POLL_S, wake=True):
                            break
            finally:
                with self._cond:
                    self._bg_polling = False

    def _wake_background(self) -> None:
        with self._cond:
            if self._bg_polling:
                try:
                    self._wake_tx.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    pass  # a wake-up is already queued
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
        self._wake_background()
        if self._thread is not None:
            self._thread.join(2.0)
        self._wake_tx.close(0)
        self._wake_rx.close(0)


def _fileno(item: Any) -> Any:
    if isinstance(item, int) or isinstance(item, zmq.Socket):
        return item
    fileno = getattr(item, "fileno", None)
    return fileno() if fileno is not None else item


def sleep_until(deadline_s: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline_s`` (one sleep, no polling)."""
    remaining = deadline_s - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
