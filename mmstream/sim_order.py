"""Replay order on sim time: data messages and clock ticks handled in the order the player sent them.

Transport-free (like message_filters): the node hands :class:`SimTimeGate` its inboxes (anything
with the :class:`Inbox` surface: a topic, a queue of received messages, the seq of the last one
taken) and two callbacks; the gate decides what runs next. No sockets, no threads; wall time comes
from ``monotonic`` (injectable), so tests drive it with shuffled arrival orders and a fake clock.

The rule: a tick lists the seq of the last message the player had sent on each topic before it
(``Clock.published_seq``), so message (topic, seq) was sent before tick T iff
``seq <= T.published_seq[topic]``.

* A tick is applied only once every message sent before it has been handled.
* A message is handled only once the tick that follows it has arrived (so every tick sent before
  it has been applied, and ``now_ns()`` in its callback is the same at any replay rate).

Neither can be lost on a reliable subscription (replay), only late, so those waits are long; on a
lossy subscription (sensor QoS) a message may really be gone, so they are short. After a wait runs
out the gate goes on and logs that the replay order is no longer guaranteed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mmstream.messages import Clock


class Inbox(Protocol):
    """What the gate needs of a subscription (``mmstream.transport.Subscription`` has it)."""

    topic: str
    last_seq: int  # seq of the last message taken (0 before the first)

    @property
    def reliable(self) -> bool: ...
    def pending(self) -> int: ...
    def peek_seq(self) -> int | None: ...
    def take(self) -> Any: ...


@dataclass(frozen=True)
class SimWaits:
    """How long (wall seconds) the gate waits for something that should arrive."""

    reliable_s: float = 10.0  # a message or tick on a reliable subscription: only late, never lost
    lossy_s: float = 0.5  # on sensor QoS it may be gone
    joining_s: float = 2.0  # a subscription that has received nothing yet may have joined late
    first_tick_s: float = 0.2  # before any tick: how long a message waits for the player's first tick

    def for_inbox(self, inbox: Inbox) -> float:
        return self.reliable_s if inbox.reliable else self.lossy_s


class SimTimeGate:
    """Interleaves data and ``/clock`` ticks in send order; see the module docstring."""

    def __init__(self, *, waits: SimWaits = SimWaits(), monotonic: Callable[[], float] = time.monotonic,
                 log: logging.Logger | None = None) -> None:
        self.waits = waits
        self._monotonic = monotonic
        self._log = log or logging.getLogger("mmstream.sim_order")
        self._pending: list[tuple[Clock, float]] = []  # ticks received, not applied, with their arrival time
        self._held: dict[str, tuple[int, float]] = {}  # topic -> (seq, first seen) of a message waiting for its tick
        self._player_topics: set[str] = set()  # topics the clock source publishes (named in published_seq)
        self._unclocked: set[str] = set()  # topics seen before any tick whose short wait ran out
        self._ticks_seen = False
        self.holding = False  # the last dispatch left messages or ticks waiting for each other

    @property
    def pending_ticks(self) -> int:
        return len(self._pending)

    def on_tick(self, tick: Clock) -> None:
        """A tick arrived (in the order ticks arrive; they travel on one socket)."""
        self._ticks_seen = True
        self._player_topics.update(tick.published_seq)
        self._pending.append((tick, self._monotonic()))

    def dispatch(self, inboxes: Sequence[Inbox], deliver: Callable[[Inbox, Any], None],
                 apply_tick: Callable[[Clock], None], *, take_ticks: Callable[[], None] = lambda: None,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        """Handle every queued message and tick that may run now, in send order.

        ``deliver(inbox, msg)`` runs a message's callback; ``apply_tick(tick)`` sets the clock;
        ``take_ticks()`` feeds ticks received meanwhile to :meth:`on_tick`. ``inboxes`` are the data
        subscriptions (not the clock's own).
        """
        self.holding = False
        progressed = True
        while progressed and not should_stop():
            progressed = False
            take_ticks()
            for inbox in inboxes:
                if not inbox.pending():
                    continue
                seq = inbox.peek_seq()
                if seq is None:  # unreadable: take() counts and logs it
                    inbox.take()
                    progressed = True
                    continue
                # apply the ticks sent before this message
                while self._pending and self._pending[0][0].published_seq.get(inbox.topic, 0) < seq:
                    if not self._apply_oldest(inboxes, apply_tick):
                        break
                if self._pending and self._pending[0][0].published_seq.get(inbox.topic, 0) < seq:
                    continue  # a tick before it waits for other topics' messages
                if self._must_wait_for_tick(inbox, seq):
                    self.holding = True
                    continue
                self._held.pop(inbox.topic, None)
                msg = inbox.take()
                if msg is not None:
                    deliver(inbox, msg)
                progressed = True
        self.apply_ready(inboxes, apply_tick)

    def apply_ready(self, inboxes: Sequence[Inbox], apply_tick: Callable[[Clock], None]) -> None:
        """Apply every pending tick whose messages (those sent before it) have all been handled."""
        while self._pending and self._apply_oldest(inboxes, apply_tick):
            pass

    def _must_wait_for_tick(self, inbox: Inbox, seq: int) -> bool:
        covered = any(t.published_seq.get(inbox.topic, 0) >= seq for t, _ in self._pending)
        if covered:
            return False
        # wait for the tick that follows it: on a topic the player publishes, or briefly on any topic
        # while no tick has come at all (the player's first tick, sent before its first message, may
        # still be on its way on the other socket)
        player_topic = inbox.topic in self._player_topics
        before_first_tick = not self._ticks_seen and inbox.topic not in self._unclocked
        if not (player_topic or before_first_tick):
            return False
        wait_s = self.waits.for_inbox(inbox) if player_topic else self.waits.first_tick_s
        first_seen = self._held.get(inbox.topic)
        if first_seen is None or first_seen[0] != seq:
            first_seen = self._held[inbox.topic] = (seq, self._monotonic())
        if self._monotonic() - first_seen[1] < wait_s:
            return True  # the tick that follows it is on its way
        if player_topic:
            self._log.warning("%s seq %d: no clock tick after %.1f s; handled on the current clock "
                              "(replay order not guaranteed)", inbox.topic, seq, wait_s)
        else:
            self._unclocked.add(inbox.topic)  # no player (yet): don't hold this topic again
        return False

    def _apply_oldest(self, inboxes: Sequence[Inbox], apply_tick: Callable[[Clock], None]) -> bool:
        """Apply the oldest pending tick if every message sent before it has been handled."""
        tick, arrived_s = self._pending[0]
        for inbox in inboxes:
            target = tick.published_seq.get(inbox.topic)
            if target is None or inbox.last_seq >= target:
                continue
            # (a subscription that has received nothing yet may have joined after those messages were sent)
            wait_s = self.waits.for_inbox(inbox) if inbox.last_seq else self.waits.joining_s
            if self._monotonic() - arrived_s < wait_s:
                self.holding = True
                return False
            self._log.warning("clock tick at %d applied before %s seq %d arrived (waited %.1f s; replay order not "
                              "guaranteed)", tick.header.stamp_ns, inbox.topic, target, wait_s)
        self._pending.pop(0)
        apply_tick(tick)
        return True
