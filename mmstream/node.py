"""The node: the one factory for publishers, subscriptions, timers and parameters.

A node's behaviour is a :class:`Component`: a class whose constructor sets the node up (creates
publishers, subscriptions, timers, opens its sources), whose ``step()`` does the work that is not
a callback (read a device, run a batch) and says how long the node may sleep, and whose
``close()`` releases what it opened. :func:`run_node` parses the command line, builds the
:class:`Node`, constructs the component and runs it; every node in ``nodes/`` has this shape.

    class Talker(Component):
        NAME = "talker"
        PARAMS = [Param("rate_hz", 10.0, min=0.1)]

        def __init__(self, node: Node) -> None:
            self.pub = node.create_publisher(TextUtterance, "/chatter")
            node.create_timer(1 / node.params["rate_hz"], self.tick)

        def tick(self) -> None:
            self.pub.publish(TextUtterance(text="hi"))

    if __name__ == "__main__":
        raise SystemExit(run_node(Talker))

The executor is single-threaded: :meth:`Node.spin_once` sleeps in one poll on the subscription
sockets, whatever the component's :class:`~mmstream.executor.Wait` names and the next timer,
then calls callbacks, fires due timers and publishes :class:`~mmstream.messages.NodeStats` on
``/<node>/stats``. With ``use_sim_time`` the node follows the bag player's ``/clock`` through a
:class:`~mmstream.sim_order.SimTimeGate`. ``mmstream.testing.NodeHarness`` runs a component
without processes or sockets.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import zmq

from mmstream import graph
from mmstream.clock import HostClock, SimClock, host_now_ns
from mmstream.errors import ParameterError
from mmstream.executor import DONE, IDLE, NOW, Receiver, Wait, WakePipe
from mmstream.messages import CLOCK_TOPIC, Clock, Message, NodeStats
from mmstream.params import Param, resolve
from mmstream.sim_order import SimTimeGate, SimWaits
from mmstream.transport import Publisher, Subscription

__all__ = ["Component", "Node", "Param", "Timer", "Wait", "IDLE", "NOW", "DONE", "run_node"]

M = TypeVar("M", bound=Message)

_HELD_POLL_S = 0.005  # while messages wait for their clock tick, the node waits on its sockets this long at a time
_DRAIN_QUIET_S = 0.1  # draining at shutdown ends once nothing has arrived for this long (publishers gone)
_DRAIN_QUIET_LIVE_S = 0.5  # ... or this long while a publisher is still connected


class Component:
    """A node's behaviour. Subclass it; :func:`run_node` and the test harness run it.

    ``NAME`` is the default node name, ``PARAMS`` the declared parameters (``node.params`` holds
    their validated values). The constructor is the setup. ``step()`` runs after every round of
    callbacks, also while the node drains after a shutdown request (``node.ok()`` is False then: a
    source stops reading and returns ``DONE``; a processor finishes its queue and returns ``NOW``
    while work is left). It returns a :class:`Wait`: ``IDLE`` (only callbacks and timers),
    ``NOW``, ``Wait.seconds(s)``, ``Wait.until_ready(fd_or_socket, timeout_s=...)`` or ``DONE``.
    """

    NAME: ClassVar[str] = ""
    PARAMS: ClassVar[Sequence[Param]] = ()

    def __init__(self, node: Node) -> None:
        self.node = node

    def step(self) -> Wait:
        return IDLE

    def close(self) -> None:
        """Release what the constructor opened (called once, before the node's sockets close)."""


class Timer:
    """Calls ``callback`` every ``period_ns`` of node time. Create it with ``Node.create_timer``."""

    def __init__(self, period_ns: int, callback: Callable[[], None], next_ns: int) -> None:
        self.period_ns = period_ns
        self.callback = callback
        self.next_ns = next_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Node:
    """A named process-level participant in the graph."""

    def __init__(self, name: str, *, params: Mapping[str, Any] | None = None,
                 declared: Iterable[Param] = (), remap: Mapping[str, str] | None = None,
                 run_dir: str | Path | None = None) -> None:
        self.name = name.strip("/") or "node"
        self.params: dict[str, Any] = resolve(self.name, declared, params or {})
        self.log = logging.getLogger(self.name)
        self.log.setLevel(self.params["log_level"].upper())
        self.run_dir = Path(run_dir) if run_dir else graph.default_run_dir()
        self._remap = {graph.normalize_topic(k): graph.normalize_topic(v) for k, v in (remap or {}).items()}
        self._ctx = zmq.Context()
        self._wake = WakePipe()
        self._host_clock = HostClock()
        self._sim_clock = SimClock() if self.params["use_sim_time"] else None
        self._gate = SimTimeGate(log=self.log) if self._sim_clock is not None else None
        self._publishers: list[Publisher[Any]] = []
        self._subscriptions: list[Subscription[Any]] = []
        self._timers: list[Timer] = []
        self._sockets: list[zmq.Socket] = []
        self._receiver = Receiver(self._ctx)
        self._shutdown_hooks: list[Callable[[], None]] = []
        self._rejected_kinds: dict[str, int] = {}
        self._shutdown = False
        self._abort = False
        self._drain_deadline: float | None = None
        self._closed = False
        self._registered = False
        self._state = "running"
        self._started_s = time.monotonic()
        self._stats_pub: Publisher[NodeStats] = self.create_publisher(NodeStats, f"/{self.name}/stats")
        self._next_stats_s = time.monotonic() + self.params["stats_period_s"]
        self._clock_sub: Subscription[Clock] | None = None
        if self._gate is not None:
            self._clock_sub = self.create_subscription(Clock, CLOCK_TOPIC, self._gate.on_tick, keep_last=None)
        self._registered = True
        self._write_record()

    # ------------------------------------------------------------------ time
    def now_ns(self) -> int:
        """Node time: the host clock, or the bag clock with ``use_sim_time``."""
        return self._sim_clock.now_ns() if self._sim_clock is not None else self._host_clock.now_ns()

    @property
    def uses_sim_time(self) -> bool:
        return self._sim_clock is not None

    # ------------------------------------------------------------------ factory
    def resolve_topic(self, topic: str) -> str:
        topic = graph.normalize_topic(topic)
        return self._remap.get(topic, topic)

    def create_publisher(self, msg_type: type[M], topic: str, *, reliable: bool = False,
                         hwm: int | None = None, hold_first_for: int = 0,
                         hold_timeout_s: float = 10.0) -> Publisher[M]:
        """A publisher of ``msg_type`` on ``topic`` (after remapping). ``reliable``: wait, never drop.

        ``hold_first_for=N``: the first :meth:`~Publisher.publish` waits (up to ``hold_timeout_s``)
        until N subscribers are connected, so a consumer that starts later loses nothing (replay).
        """
        topic = self.resolve_topic(topic)
        pub: Publisher[M] = Publisher(self._ctx, topic, msg_type, endpoint=graph.topic_endpoint(topic, self.run_dir),
                                      reliable=reliable, hwm=hwm, max_message_bytes=self.params["max_message_bytes"],
                                      clock=self.now_ns, is_shutdown=self._must_stop_now,
                                      hold_first_for=hold_first_for, hold_timeout_s=hold_timeout_s, log=self.log)
        self._publishers.append(pub)
        if self._registered:
            self._write_record()
        return pub

    def create_subscription(self, msg_type: type[M], topic: str, callback: Callable[[M], None], *,
                            keep_last: int | None = 4) -> Subscription[M]:
        """Call ``callback(msg)`` for messages on ``topic``. ``keep_last=None``: reliable (no drops)."""
        topic = self.resolve_topic(topic)
        sub: Subscription[M] = Subscription(
            self._ctx, topic, msg_type, callback, endpoint=graph.topic_endpoint(topic, self.run_dir),
            keep_last=keep_last, max_message_bytes=self.params["max_message_bytes"], clock=self.now_ns,
            on_reject=self.count_rejected, log=self.log)
        self._subscriptions.append(sub)
        self._receiver.add(sub)
        if self._registered:
            self._write_record()
        return sub

    def create_socket(self, socket_type: int) -> zmq.Socket:
        """A ZeroMQ socket on the node's context (a control or request socket), closed with the node."""
        sock = self._ctx.socket(socket_type)
        sock.setsockopt(zmq.LINGER, 0)
        self._sockets.append(sock)
        return sock

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` every ``period_s`` seconds of node time."""
        if period_s <= 0:
            raise ParameterError(f"node {self.name!r}: timer period_s must be > 0, got {period_s}")
        period_ns = int(period_s * 1e9)
        timer = Timer(period_ns, callback, self.now_ns() + period_ns)
        self._timers.append(timer)
        return timer

    def wait_for_subscribers(self, pubs: Iterable[Publisher[Any]], count: int, timeout_s: float) -> bool:
        """Wait until each of ``pubs`` has ``count`` subscribers (a handshake, not a sleep); warn if not."""
        ok = True
        deadline = time.monotonic() + timeout_s
        for pub in pubs:
            if not pub.wait_for_subscribers(count, max(0.0, deadline - time.monotonic())):
                self.log.warning("%s: only %d of %d subscriber(s) after %.1f s; publishing anyway",
                                 pub.topic, pub.subscription_count, count, timeout_s)
                ok = False
        return ok

    def on_shutdown(self, fn: Callable[[], None]) -> None:
        self._shutdown_hooks.append(fn)

    def count_rejected(self, reason: str, detail: str) -> None:
        """Count a bad input; log the first of each kind as a warning, later ones at debug level."""
        n = self._rejected_kinds.get(reason, 0) + 1
        self._rejected_kinds[reason] = n
        if n == 1:
            self.log.warning("dropped bad input (%s): %s — further '%s' drops are counted in stats",
                             reason, detail, reason)
        else:
            self.log.debug("dropped bad input (%s) #%d: %s", reason, n, detail)

    @property
    def rejected(self) -> dict[str, int]:
        return dict(self._rejected_kinds)

    # ------------------------------------------------------------------ executor
    def ok(self) -> bool:
        return not self._shutdown

    def shutdown(self) -> None:
        """Ask :meth:`spin` to return (safe from signal handlers and other threads). The node drains
        first; asked a second time, it stops at once (a reliable publisher waiting gives up)."""
        if self._shutdown:
            self._abort = True
        self._shutdown = True
        self._wake.wake()

    def _must_stop_now(self) -> bool:
        """What a reliable publisher waiting for a slow subscriber checks: stop, or drain time over."""
        return self._abort or self._closed or (self._drain_deadline is not None
                                               and time.monotonic() > self._drain_deadline)

    @property
    def wakeup_fd(self) -> int:
        """Write a byte here to wake the node's poll (``signal.set_wakeup_fd`` uses it)."""
        return self._wake.write_fd

    def spin_once(self, timeout_s: float = 0.05, *, wait_on: Iterable[Any] = ()) -> None:
        """Sleep until a message, one of ``wait_on``, a timer or ``timeout_s``; then dispatch and fire."""
        timeout_s = min(timeout_s, self._time_to_next_timer_s(), max(0.0, self._next_stats_s - time.monotonic()))
        extra = (self._wake.fd, *wait_on)
        if self._gate is not None and self._gate.holding:  # queued messages wait for their tick: wait on sockets
            self._receiver.node_poll(min(timeout_s, _HELD_POLL_S), extra, queued_is_held=True)
        elif not self._receiver.any_pending():
            self._receiver.node_poll(timeout_s, extra)
        self._wake.drain()
        self._dispatch()
        self._fire_timers()
        self._publish_stats()

    def spin(self, component: Component | None = None, *, drain_timeout_s: float = 5.0) -> None:
        """Run until :meth:`shutdown` (SIGINT/SIGTERM under :func:`run_node`) or the component is done,
        then drain: deliver what is queued or still arriving, and let the component finish its work."""
        while not self._shutdown:
            wait = component.step() if component is not None else IDLE
            if wait.done:
                break
            self.spin_once(math.inf if wait.timeout_s is None else wait.timeout_s, wait_on=wait.on)
        self.drain(component, timeout_s=drain_timeout_s)

    def drain(self, component: Component | None = None, *, timeout_s: float = 5.0) -> None:
        """After a shutdown request: handle what arrived and what is still arriving (until nothing
        comes for a moment), with the component's ``step()`` working off its queue."""
        self._shutdown = True
        deadline = self._drain_deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._abort:
            self._dispatch(draining=True)
            wait = component.step() if component is not None else DONE
            if not wait.done and wait.timeout_s == 0:
                continue  # the component has more queued work
            # messages held for their clock tick need the sockets read (the tick is in one of them)
            holding = self._gate is not None and self._gate.holding
            if self._receiver.any_pending() and not holding:
                continue
            if not self._subscriptions:
                break
            # done once the sockets are quiet: for a moment when every publisher has gone (it sent
            # everything before its socket closed), longer while one is still up (it may be behind)
            before = sum(sub.stats.count + sub.pending() for sub in self._subscriptions)
            live = any(sub.publisher_connected for sub in self._subscriptions)
            self._receiver.node_poll(_DRAIN_QUIET_LIVE_S if live else _DRAIN_QUIET_S, (self._wake.fd,),
                                     queued_is_held=holding)
            self._wake.drain()
            if sum(sub.stats.count + sub.pending() for sub in self._subscriptions) == before:
                if self._gate is None or not (self._gate.pending_ticks or self._gate.holding):
                    break
                self._flush_sim_order()  # what was held for a tick that will not come runs now
        self._fire_timers()
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("drain done in %.3f s: pending %s, gate ticks %s holding %s, connected %s, abort %s",
                          time.monotonic() - deadline + timeout_s, [s.pending() for s in self._subscriptions],
                          self._gate.pending_ticks if self._gate else None, self._gate.holding if self._gate else None,
                          [s.publisher_connected for s in self._subscriptions], self._abort)

    def _dispatch(self, *, draining: bool = False) -> None:
        if self._gate is not None:
            data = [s for s in self._subscriptions if s is not self._clock_sub]
            self._gate.dispatch(data, self._deliver, self._apply_tick, take_ticks=self._take_ticks,
                                should_stop=lambda: self._shutdown and not draining)
            return
        # Round-robin so one busy topic cannot starve the others.
        progressed = True
        while progressed and (draining or not self._shutdown):
            progressed = False
            for sub in self._subscriptions:
                if sub.pending():
                    msg = sub.take()
                    if msg is not None:
                        sub.callback(msg)
                    progressed = True

    def _flush_sim_order(self) -> None:
        assert self._gate is not None
        waits, self._gate.waits = self._gate.waits, SimWaits(0.0, 0.0, 0.0, 0.0)
        try:
            self._dispatch(draining=True)
        finally:
            self._gate.waits = waits

    @staticmethod
    def _deliver(sub: Any, msg: Any) -> None:
        sub.callback(msg)

    def _take_ticks(self) -> None:
        clock_sub = self._clock_sub
        while clock_sub is not None and clock_sub.pending():
            tick = clock_sub.take()
            if tick is not None:
                clock_sub.callback(tick)

    def _apply_tick(self, tick: Clock) -> None:
        assert self._sim_clock is not None
        if tick.header.stamp_ns < self._sim_clock.now_ns():
            self.log.info("sim clock restarted at %d (bag looped or seeked)", tick.header.stamp_ns)
            for timer in self._timers:
                timer.next_ns = tick.header.stamp_ns + timer.period_ns
        self._sim_clock.set(tick.header.stamp_ns)
        self._fire_timers()

    def _time_to_next_timer_s(self) -> float:
        live = [t.next_ns for t in self._timers if not t.cancelled]
        if not live or self._sim_clock is not None:
            return math.inf  # on sim time timers fire when a tick is applied, and ticks wake the poll
        return max(0.0, (min(live) - self.now_ns()) / 1e9)

    def _fire_timers(self) -> None:
        now = self.now_ns()
        for timer in list(self._timers):
            if timer.cancelled:
                self._timers.remove(timer)
                continue
            if now >= timer.next_ns:
                timer.next_ns += timer.period_ns
                if timer.next_ns <= now:  # fell behind (or sim time jumped): skip, don't burst
                    timer.next_ns = now + timer.period_ns
                timer.callback()

    # ------------------------------------------------------------------ stats, registry
    def stats(self) -> NodeStats:
        topics = []
        for direction, ends in (("pub", self._publishers), ("sub", self._subscriptions)):
            for end in ends:
                entry = {"topic": end.topic, "direction": direction, "type": end.msg_type.SCHEMA,
                         **end.stats.snapshot()}
                if direction == "pub":
                    entry["subscribers"] = end.subscription_count
                elif self._sim_clock is not None:
                    entry["clock"] = "sim"  # latency measured on the bag clock: ticks, not a delay
                topics.append(entry)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return NodeStats(node=self.name, pid=os.getpid(), state="running",
                         uptime_s=round(time.monotonic() - self._started_s, 3),
                         cpu_s=round(usage.ru_utime + usage.ru_stime, 3), topics=topics)

    def _publish_stats(self) -> None:
        now = time.monotonic()
        if now < self._next_stats_s:
            return
        self._next_stats_s = now + self.params["stats_period_s"]
        msg = self.stats()
        msg.header.stamp_ns = host_now_ns()
        self._stats_pub.publish(msg)

    def _write_record(self) -> None:
        graph.write_node_record(self.name, {
            "name": self.name, "pid": os.getpid(), "started_ns": host_now_ns(),
            "pub": [{"topic": p.topic, "type": p.msg_type.SCHEMA, "endpoint": p.endpoint} for p in self._publishers],
            "sub": [{"topic": s.topic, "type": s.msg_type.SCHEMA, "endpoint": s.endpoint}
                    for s in self._subscriptions],
            "state": self._state,
        }, self.run_dir)

    def set_state(self, state: str) -> None:
        """Say in the node's registry record what it is doing (``finished``: its work is done and it
        only waits for its subscribers to take what it sent; a launch then stops the graph)."""
        self._state = state
        self._write_record()

    # ------------------------------------------------------------------ teardown
    def close(self, *, linger_s: float | None = None) -> None:
        """Tear everything down. ``linger_s``: reliable publishers wait at most this long for what
        they still queue to reach their subscribers (they return as soon as it has)."""
        if self._closed:
            return
        self._closed = True
        self._shutdown = True
        for fn in reversed(self._shutdown_hooks):
            try:
                fn()
            except Exception:  # teardown must go on
                self.log.exception("shutdown hook failed")
        self._receiver.stop()
        for sub in self._subscriptions:
            sub.close()
        for sock in self._sockets:
            sock.close(0)
        deadline = time.monotonic() + (linger_s or 0.0)
        for pub in self._publishers:
            if pub.reliable and linger_s:
                pub.finish(max(0.0, deadline - time.monotonic()))  # its subscribers confirm they have it all
            pub.close(linger_s=linger_s if pub.reliable else None)
        graph.remove_node_record(self.name, self.run_dir)
        self._ctx.term()
        self._wake.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()




def run_node(component: type[Component], argv: Sequence[str] | None = None) -> int:
    """The process entry point of a node: parse the command line, build the node and run ``component``.

    Exit codes: 0 clean stop, 1 runtime failure, 2 bad parameters or arguments.
    """
    from mmstream.node_main import main

    return main(component, argv)
