"""Run a node's :class:`~mmstream.node.Component` in-process, without sockets or processes.

What dora's MockNode is: feed the component messages and clock ticks, advance its time, collect
what it publishes. The component gets a :class:`FakeNode` with the same surface it uses on a real
:class:`~mmstream.node.Node` (params, publishers, subscriptions, timers, ``now_ns``, ``ok``,
``count_rejected``), so node logic is tested without timing.

    h = NodeHarness(Synchronizer, params={"window_s": 1.0, "streams": ["video"]})
    h.send("/camera/image", frame)              # runs the subscription callback
    h.advance(0.5)                              # node time +0.5 s: timers fire
    windows = h.published("/sync/window")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmstream.errors import MessageError, ParameterError
from mmstream.executor import DONE, Wait
from mmstream.messages import Message
from mmstream.params import resolve


@dataclass
class _Stats:
    count: int = 0
    drops: int = 0


@dataclass
class FakePublisher:
    topic: str
    msg_type: type
    reliable: bool
    sent: list[Message] = field(default_factory=list)
    stats: _Stats = field(default_factory=_Stats)
    clock: Callable[[], int] = lambda: 0

    @property
    def seq(self) -> int:
        return len(self.sent)

    @property
    def subscription_count(self) -> int:
        return 1

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        return True

    def publish(self, msg: Message) -> bool:
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"publisher of {self.topic!r} sends {self.msg_type.__name__}, got {type(msg).__name__}")
        validate = getattr(msg, "validate", None)
        try:
            if validate is not None:
                validate()
        except ValueError as exc:
            raise MessageError(f"publisher of {self.topic!r}: invalid {type(msg).__name__} not sent: {exc}") from None
        msg.header.seq = len(self.sent) + 1
        if msg.header.stamp_ns == 0:
            msg.header.stamp_ns = self.clock()
        self.sent.append(msg)
        self.stats.count += 1
        return True


@dataclass
class FakeSubscription:
    topic: str
    msg_type: type
    callback: Callable[[Any], None]
    keep_last: int | None
    stats: _Stats = field(default_factory=_Stats)


@dataclass
class _FakeTimer:
    period_ns: int
    callback: Callable[[], None]
    next_ns: int
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeNode:
    """The part of :class:`~mmstream.node.Node` a component uses, on a manual clock."""

    def __init__(self, name: str, declared: Iterable[Any], params: Mapping[str, Any], *, start_ns: int,
                 run_dir: Path | None = None) -> None:
        self.name = name
        self.params: dict[str, Any] = resolve(name, declared, params)
        self.log = logging.getLogger(name)
        self.run_dir = run_dir or Path(".")
        self.publishers: dict[str, FakePublisher] = {}
        self.subscriptions: dict[str, list[FakeSubscription]] = {}
        self.timers: list[_FakeTimer] = []
        self.rejected: dict[str, int] = {}
        self._now_ns = start_ns
        self._shutdown = False

    # time and lifecycle
    def now_ns(self) -> int:
        return self._now_ns

    @property
    def uses_sim_time(self) -> bool:
        return bool(self.params["use_sim_time"])

    def ok(self) -> bool:
        return not self._shutdown

    def shutdown(self) -> None:
        self._shutdown = True

    # factory
    def resolve_topic(self, topic: str) -> str:
        return "/" + topic.strip("/")

    def create_publisher(self, msg_type: type, topic: str, *, reliable: bool = False, **_: Any) -> FakePublisher:
        topic = self.resolve_topic(topic)
        pub = FakePublisher(topic, msg_type, reliable, clock=self.now_ns)
        self.publishers[topic] = pub
        return pub

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None], *,
                            keep_last: int | None = 4) -> FakeSubscription:
        sub = FakeSubscription(self.resolve_topic(topic), msg_type, callback, keep_last)
        self.subscriptions.setdefault(sub.topic, []).append(sub)
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> _FakeTimer:
        if period_s <= 0:
            raise ParameterError(f"node {self.name!r}: timer period_s must be > 0, got {period_s}")
        period_ns = int(period_s * 1e9)
        timer = _FakeTimer(period_ns, callback, self._now_ns + period_ns)
        self.timers.append(timer)
        return timer

    def create_socket(self, socket_type: int) -> Any:
        raise NotImplementedError("FakeNode has no sockets: test socket-owning nodes with real processes")

    def wait_for_subscribers(self, pubs: Iterable[Any], count: int, timeout_s: float) -> bool:
        return True

    def on_shutdown(self, fn: Callable[[], None]) -> None:
        raise NotImplementedError("components release what they own in close()")

    def count_rejected(self, reason: str, detail: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    # driving
    def set_time(self, now_ns: int) -> None:
        self._now_ns = now_ns
        for timer in list(self.timers):
            if timer.cancelled:
                self.timers.remove(timer)
                continue
            if now_ns >= timer.next_ns:
                timer.next_ns += timer.period_ns
                if timer.next_ns <= now_ns:
                    timer.next_ns = now_ns + timer.period_ns
                timer.callback()


class NodeHarness:
    """Builds ``component`` on a :class:`FakeNode` and drives it: ``send``, ``advance``, ``step``."""

    def __init__(self, component: type, params: Mapping[str, Any] | None = None, *, name: str | None = None,
                 start_ns: int = 1_000_000_000_000) -> None:
        self.node = FakeNode(name or component.NAME or component.__name__.lower(), component.PARAMS, params or {},
                             start_ns=start_ns)
        self.component = component(self.node)
        self.last_wait: Wait | None = None
        self.closed = False

    def send(self, topic: str, msg: Message, *, step: bool = True) -> None:
        """Deliver ``msg`` to every subscription of ``topic`` (at the current node time), then step."""
        subs = self.node.subscriptions.get("/" + topic.strip("/"), [])
        if not subs:
            raise KeyError(f"{self.node.name} does not subscribe to {topic!r}; it subscribes to "
                           f"{sorted(self.node.subscriptions)}")
        for sub in subs:
            if not isinstance(msg, sub.msg_type):
                raise TypeError(f"{topic!r} carries {sub.msg_type.__name__}, got {type(msg).__name__}")
            sub.stats.count += 1
            sub.callback(msg)
        if step:
            self.step()

    def advance(self, seconds: float) -> None:
        """Move node time forward (timers fire in order), then step."""
        self.set_time(self.node.now_ns() + int(round(seconds * 1e9)))

    def set_time(self, now_ns: int) -> None:
        self.node.set_time(now_ns)
        self.step()

    def step(self, max_steps: int = 10_000) -> Wait:
        """Call ``step()`` until the component has no ready work (it returns something but NOW)."""
        for _ in range(max_steps):
            wait = self.component.step()
            self.last_wait = wait
            if wait.done or wait.timeout_s != 0 or wait.on:
                return wait
        raise RuntimeError(f"{self.node.name}: step() returned NOW {max_steps} times in a row")

    def published(self, topic: str) -> list[Message]:
        pub = self.node.publishers.get("/" + topic.strip("/"))
        return [] if pub is None else list(pub.sent)

    def close(self) -> None:
        """Shut the component down as run_node does: drain steps, then ``close()``."""
        if self.closed:
            return
        self.node.shutdown()
        self.step()
        self.component.close()
        self.closed = True

    @property
    def done(self) -> bool:
        return self.last_wait is DONE or bool(self.last_wait and self.last_wait.done)
