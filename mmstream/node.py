"""The node: the one factory for publishers, subscriptions, timers and parameters.

A node owns everything it creates and tears it down on :meth:`Node.close`. Its executor is
single-threaded: :meth:`spin_once` polls every subscription socket, keeps the newest
``keep_last`` messages of sensor topics, calls callbacks, fires due timers and publishes
:class:`~mmstream.messages.NodeStats` on ``/<node>/stats``. SIGINT/SIGTERM end :meth:`spin`.

With ``use_sim_time`` the node follows the bag player's ``/clock``: :meth:`now_ns` returns bag
time and timers fire on it. A clock tick is applied only once the messages the player sent
before it (``Clock.published_seq``) have been received, so replays are deterministic.

    PARAMS = [Param("rate_hz", 10.0, min=0.1)]

    def setup(node: Node) -> None:
        pub = node.create_publisher(TextUtterance, "/chatter")
        node.create_timer(1 / node.params["rate_hz"], lambda: pub.publish(TextUtterance(text="hi")))

    def main(argv=None) -> int:
        return run_node("talker", PARAMS, setup, argv)
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import zmq

from mmstream import graph
from mmstream.clock import HostClock, SimClock, host_now_ns
from mmstream.errors import MmstreamError, ParameterError
from mmstream.messages import Clock, Message, NodeStats
from mmstream.params import Param, load_params_file, resolve
from mmstream.transport import Publisher, Subscription

M = TypeVar("M", bound=Message)

CLOCK_TOPIC = "/clock"
_TAKEOVER_S = 0.005  # the receiver thread drains sockets once the node thread is busy this long
# On sim time a message waits for the clock tick the player sent after it, and a tick waits for the
# messages sent before it. On a reliable subscription (replay) neither can be lost, only late: a
# player held up by a slow consumer's backpressure stalls everything for a while, and handling a
# message before its tick would change what the node computes. So reliable subscriptions wait long;
# lossy ones (sensor QoS, where a message may really be gone) wait briefly.
_SIM_WAIT_RELIABLE_S = 10.0
_SIM_WAIT_LOSSY_S = 0.5
_SIM_WAIT_JOINING_S = 2.0  # a subscription that has received nothing yet may have joined late
_SIM_WAIT_FIRST_TICK_S = 0.2  # before any tick: how long a message waits for the player's first tick
_HELD_POLL_S = 0.005  # while messages wait for their tick, the node waits on its sockets this long at a time


def _sim_wait_s(sub: Subscription[Any]) -> float:
    return _SIM_WAIT_RELIABLE_S if sub.reliable else _SIM_WAIT_LOSSY_S


class Timer:
    """Calls ``callback`` every ``period_ns`` of node time. Create it with ``Node.create_timer``."""

    def __init__(self, period_ns: int, callback: Callable[[], None], next_ns: int) -> None:
        self.period_ns = period_ns
        self.callback = callback
        self.next_ns = next_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Receiver:
    """Keeps subscription sockets drained into their keep-last queues.

    ZeroMQ drops the *newest* message when its queue is full; draining continuously lets the
    keep-last queue drop the *oldest* instead, which is what a live consumer wants. While the
    node's thread waits in :meth:`Node.spin_once` it reads the sockets itself (no thread
    hand-off on the latency path); whenever it is busy elsewhere (callbacks, a sensor loop) a
    background thread takes over. ``io_lock`` makes the two never touch a socket at once.
    """

    def __init__(self) -> None:
        self.io_lock = threading.Lock()
        self._subs: list[Subscription[Any]] = []
        self._node_polling = False  # the node thread is reading the sockets itself
        self._node_left_poll_s = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, sub: Subscription[Any]) -> None:
        with self.io_lock:
            self._subs.append(sub)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mmstream-receiver", daemon=True)
            self._thread.start()

    def poll(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for data and move it into the queues (hold ``io_lock``)."""
        poller = zmq.Poller()
        for sub in self._subs:
            poller.register(sub.monitor, zmq.POLLIN)
            if sub.wants_data():
                poller.register(sub.socket, zmq.POLLIN)
        try:
            events = dict(poller.poll(timeout_ms))
        except zmq.ZMQError:
            return False  # context terminated
        got = False
        for sub in self._subs:
            if sub.monitor in events:
                sub.on_monitor_event()
            sub.redial_if_stuck()
            if sub.socket in events:
                sub.receive_available()
                got = True
        return got

    def node_poll(self, timeout_s: float, *, queued_is_held: bool = False) -> None:
        """Called by the node thread when it has nothing to do (``queued_is_held``: what is queued
        waits for something else to arrive, so wait for the sockets anyway)."""
        self._node_polling = True
        try:
            with self.io_lock:
                # the background thread may have queued something while we waited for the lock
                waiting = not queued_is_held and any(sub.pending() for sub in self._subs)
                self.poll(0 if waiting else max(0, int(timeout_s * 1000)))
        finally:
            self._node_left_poll_s = time.monotonic()
            self._node_polling = False

    def _run(self) -> None:
        # Take over only when the node thread has been away from its poll for a while: most
        # callbacks are short, and waking up for each would compete for the interpreter lock
        # on the latency path.
        while not self._stop.wait(_TAKEOVER_S):
            if self._node_polling or time.monotonic() - self._node_left_poll_s < _TAKEOVER_S:
                continue
            with self.io_lock:
                self.poll(2)  # short: the node thread may want the sockets back

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)


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
        self._host_clock = HostClock()
        self._sim_clock = SimClock() if self.params["use_sim_time"] else None
        self._pending_ticks: list[tuple[Clock, float]] = []
        self._held: dict[str, tuple[int, float]] = {}
        self._player_topics: set[str] = set()  # topics the clock source publishes (in published_seq)
        self._unclocked_topics: set[str] = set()  # topics seen before any tick whose short wait ran out
        self._ticks_seen = False
        self._holding = False  # the last dispatch left messages or ticks waiting for each other
        self._publishers: list[Publisher[Any]] = []
        self._subscriptions: list[Subscription[Any]] = []
        self._timers: list[Timer] = []
        self._receiver = _Receiver()
        self._shutdown_hooks: list[Callable[[], None]] = []
        self._rejected_kinds: dict[str, int] = {}
        self._shutdown = False
        self._closed = False
        self._registered = False
        self._started_s = time.monotonic()
        self._stats_pub: Publisher[NodeStats] = self.create_publisher(NodeStats, f"/{self.name}/stats")
        self._next_stats_s = time.monotonic() + self.params["stats_period_s"]
        if self._sim_clock is not None:
            self._clock_sub = self.create_subscription(Clock, CLOCK_TOPIC, self._on_clock, keep_last=None)
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
                                      clock=self.now_ns, is_shutdown=lambda: self._shutdown,
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

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` every ``period_s`` seconds of node time."""
        if period_s <= 0:
            raise ParameterError(f"node {self.name!r}: timer period_s must be > 0, got {period_s}")
        period_ns = int(period_s * 1e9)
        timer = Timer(period_ns, callback, self.now_ns() + period_ns)
        self._timers.append(timer)
        return timer

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
        """Ask :meth:`spin` to return (safe from signal handlers)."""
        self._shutdown = True

    def spin_once(self, timeout_s: float = 0.05) -> None:
        """Wait up to ``timeout_s`` for messages, dispatch them, fire due timers and stats."""
        timeout_s = min(timeout_s, self._time_to_next_timer_s())
        if self._holding:  # queued messages wait for their clock tick: wait for sockets, don't spin
            self._receiver.node_poll(min(timeout_s, _HELD_POLL_S), queued_is_held=True)
        elif not any(sub.pending() for sub in self._subscriptions):
            if self._subscriptions:
                self._receiver.node_poll(timeout_s)
            elif timeout_s > 0:
                time.sleep(timeout_s)
        self._holding = False
        self._dispatch()
        self._apply_clock_ticks()
        self._fire_timers()
        self._publish_stats()

    def spin(self) -> None:
        """Run until :meth:`shutdown` (SIGINT/SIGTERM when started by :func:`run_node`)."""
        while not self._shutdown:
            self.spin_once(0.1)
        self._shutdown = False  # deliver what already arrived, then stop
        self._dispatch()
        self._shutdown = True

    def _dispatch(self) -> None:
        if self._sim_clock is not None:
            self._dispatch_in_send_order()
            return
        # Round-robin so one busy topic cannot starve the others.
        progressed = True
        while progressed and not self._shutdown:
            progressed = False
            for sub in self._subscriptions:
                if sub.pending():
                    msg = sub.take()
                    if msg is not None:
                        sub.callback(msg)
                    progressed = True

    def _time_to_next_timer_s(self) -> float:
        live = [t.next_ns for t in self._timers if not t.cancelled]
        if not live or self._sim_clock is not None:
            return 0.1 if not live else 0.02
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

    # ------------------------------------------------------------------ sim time
    def _dispatch_in_send_order(self) -> None:
        """On sim time, interleave data and clock ticks in the order the player sent them.

        A tick lists the seq of the last message the player had sent on each topic, so message
        (topic, seq) was sent before tick T iff seq <= T.published_seq[topic]. A message runs its
        callback only once the tick that follows it has arrived (so every tick sent before it has
        been applied and now_ns() is the same at any replay rate); after a short wait it runs anyway
        (a clock source that is not our player, or a lost tick).
        """
        clock_sub = self._clock_sub
        progressed = True
        while progressed and not self._shutdown:
            progressed = False
            while clock_sub.pending():
                tick = clock_sub.take()
                if tick is not None:
                    clock_sub.callback(tick)
            for sub in self._subscriptions:
                if sub is clock_sub or not sub.pending():
                    continue
                seq = sub.peek_seq()
                if seq is None:  # unreadable: take() counts and logs it
                    sub.take()
                    progressed = True
                    continue
                # apply the ticks sent before this message
                while self._pending_ticks and self._pending_ticks[0][0].published_seq.get(sub.topic, 0) < seq:
                    if not self._apply_one_tick():
                        break
                if self._pending_ticks and self._pending_ticks[0][0].published_seq.get(sub.topic, 0) < seq:
                    continue  # a tick before it waits for other topics' messages
                covered = any(t.published_seq.get(sub.topic, 0) >= seq for t, _ in self._pending_ticks)
                # wait for the tick that follows it: on a topic the player publishes, or briefly on any
                # topic while no tick has come at all (the player's first tick, sent before its first
                # message, may still be on its way on the other socket)
                before_first_tick = not self._ticks_seen and sub.topic not in self._unclocked_topics
                if not covered and (sub.topic in self._player_topics or before_first_tick):
                    wait_s = _sim_wait_s(sub) if sub.topic in self._player_topics else _SIM_WAIT_FIRST_TICK_S
                    first_seen = self._held.setdefault(sub.topic, (seq, time.monotonic()))
                    if first_seen[0] != seq:
                        first_seen = self._held[sub.topic] = (seq, time.monotonic())
                    if time.monotonic() - first_seen[1] < wait_s:
                        self._holding = True
                        continue  # the tick that follows it is on its way
                    if sub.topic in self._player_topics:
                        self.log.warning("%s seq %d: no clock tick after %.1f s; handled on the current clock "
                                         "(replay order not guaranteed)", sub.topic, seq, wait_s)
                    else:
                        self._unclocked_topics.add(sub.topic)  # no player (yet): don't hold this topic again
                self._held.pop(sub.topic, None)
                msg = sub.take()
                if msg is not None:
                    sub.callback(msg)
                progressed = True

    def _apply_one_tick(self) -> bool:
        """Apply the oldest pending tick if every message sent before it has been handled."""
        tick, arrived_s = self._pending_ticks[0]
        for sub in self._subscriptions:
            target = tick.published_seq.get(sub.topic)
            # (a subscription that has received nothing yet may have joined after those messages
            # were sent: it waits only briefly)
            wait_s = _sim_wait_s(sub) if sub.last_seq else _SIM_WAIT_JOINING_S
            if target is not None and sub.last_seq < target:
                if time.monotonic() - arrived_s < wait_s:
                    self._holding = True
                    return False
                self.log.warning("clock tick at %d applied before %s seq %d arrived (waited %.1f s; replay order not "
                                 "guaranteed)", tick.header.stamp_ns, sub.topic, target, wait_s)
        self._pending_ticks.pop(0)
        assert self._sim_clock is not None
        if tick.header.stamp_ns < self._sim_clock.now_ns():
            self.log.info("sim clock restarted at %d (bag looped or seeked)", tick.header.stamp_ns)
            for timer in self._timers:
                timer.next_ns = tick.header.stamp_ns + timer.period_ns
        self._sim_clock.set(tick.header.stamp_ns)
        self._fire_timers()
        return True

    def _on_clock(self, msg: Clock) -> None:
        self._ticks_seen = True
        self._player_topics.update(msg.published_seq)
        self._pending_ticks.append((msg, time.monotonic()))

    def _apply_clock_ticks(self) -> None:
        """Apply every pending tick whose messages (those sent before it) have all been handled."""
        assert self._sim_clock is not None or not self._pending_ticks
        while self._pending_ticks and self._apply_one_tick():
            pass

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
        }, self.run_dir)

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
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
        for pub in self._publishers:
            pub.close()
        graph.remove_node_record(self.name, self.run_dir)
        self._ctx.term()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- process entry point


def _parse_assignments(items: Sequence[str], sep: str, what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key:
            raise ParameterError(f"{what} {item!r}: expected NAME{sep}VALUE")
        out[key] = value
    return out


def node_arg_parser(default_name: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"mmstream run {default_name}", description=f"the {default_name} node")
    ap.add_argument("--name", default=default_name, help="node name (default: %(default)s)")
    ap.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                    help="set a parameter (YAML value); repeatable")
    ap.add_argument("--params-file", action="append", default=[], help="YAML parameter file; repeatable")
    ap.add_argument("--remap", "-r", action="append", default=[], metavar="FROM:=TO", help="rename a topic")
    ap.add_argument("--run-dir", default=None, help="graph run directory (default: $MMSTREAM_RUN_DIR)")
    ap.add_argument("--list-params", action="store_true", help="print the declared parameters and exit")
    return ap


def parse_node_args(default_name: str, declared: Sequence[Param],
                    argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict[str, Any], dict[str, str]]:
    args = node_arg_parser(default_name).parse_args(argv)
    given: dict[str, Any] = {}
    for path in args.params_file:
        given.update(load_params_file(path, args.name))
    from mmstream.params import _parse_scalar

    given.update({k: _parse_scalar(v) for k, v in _parse_assignments(args.param, "=", "--param").items()})
    remap = _parse_assignments(args.remap, ":=", "--remap")
    return args, given, remap


def setup_logging(name: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(levelname)s [%(name)s] %(message)s", datefmt="%H:%M:%S")


def run_node(default_name: str, declared: Sequence[Param], setup: Callable[[Node], Any],
             argv: Sequence[str] | None = None, *, loop: Callable[[Node], None] | None = None) -> int:
    """Parse the command line, build the node, call ``setup(node)``, then spin (or ``loop(node)``).

    Exit codes: 0 clean stop, 1 runtime failure, 2 bad parameters or arguments.
    """
    setup_logging(default_name)
    try:
        args, given, remap = parse_node_args(default_name, declared, argv)
        if args.list_params:
            for p in declared:
                print(f"{p.name}: {p.value_type.__name__} = {p.default!r}  {p.doc}")
            return 0
        node = Node(args.name, params=given, declared=declared, remap=remap, run_dir=args.run_dir)
    except ParameterError as exc:
        logging.getLogger(default_name).error("%s", exc)
        return 2
    except MmstreamError as exc:
        logging.getLogger(default_name).error("%s", exc)
        return 1

    def _stop(signum: int, _frame: object) -> None:
        node.log.info("received %s, shutting down", signal.Signals(signum).name)
        node.shutdown()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        setup(node)
        if loop is not None:
            loop(node)
        else:
            node.spin()
        return 0
    except ParameterError as exc:
        node.log.error("%s", exc)
        return 2
    except MmstreamError as exc:
        node.log.error("%s", exc)
        return 1
    finally:
        node.close()
