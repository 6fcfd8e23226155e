"""The player: publishes a bag's messages with their timing and drives the simulated clock.

Timing: message ``log_time`` decides when it goes out — original timing scaled by ``rate``, or
as fast as possible (``fast``) with reliable publishers that wait for the pipeline instead of
dropping. Clock ticks (:class:`~mmstream.messages.Clock` on ``/clock``) are published right
after every message time and on a grid of bag time (``clock_hz``) where no tick came for a
period; with ``clock_every_message`` off, at most ``clock_hz`` ticks per bag second, each listing the ``seq`` of the
last message sent on every topic, so nodes running with ``use_sim_time`` apply a tick only
after they have received everything sent before it. Tick times depend on the bag alone, not on
the rate or the machine, which is what makes replays deterministic.

Control: :class:`PlayerControl` holds pause/step/rate/stop; the keyboard (space, s, +, -, q) and
a ZeroMQ REP socket (``pause``, ``resume``, ``toggle``, ``step``, ``rate X``, ``stop``,
``status``) both drive it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import time
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmstream.bag.reader import BagMessage, BagReader
from mmstream.errors import BagError
from mmstream.messages import CLOCK_TOPIC, Clock, Header, NodeStats

log = logging.getLogger("mmstream.bag.play")



@dataclass
class PlayConfig:
    bag: str
    rate: float = 1.0
    start_s: float = 0.0            # offset from the bag's first message
    duration_s: float = 0.0         # 0: to the end
    loop: bool = False
    topics: list[str] = field(default_factory=list)     # bag or mapped topics; empty: all
    topic_map: dict[str, str] | list[str] = field(default_factory=dict)
    fast: bool = False
    clock: bool = True
    clock_hz: float = 100.0
    clock_every_message: bool = True  # False: at most clock_hz ticks per bag second
    skip_recorded_clock: bool = True
    play_stats: bool = False        # NodeStats of the recorded graph (would clash with live nodes' topics)
    decode_jpeg: bool = False
    convert_options: Any = None     # ConvertOptions (default: decode_jpeg, audio_common as 16 kHz S16LE mono)


@dataclass
class PlayerControl:
    """Shared by the keyboard, the control socket and the play loop."""

    paused: bool = False
    steps: int = 0
    rate: float = 1.0
    stop: bool = False
    position_ns: int = 0
    published: int = 0

    def command(self, text: str) -> dict[str, Any]:
        """Apply one control command; returns the reply (the status after it)."""
        words = text.strip().split()
        if not words:
            return {"ok": False, "error": "empty command"}
        cmd, args = words[0].lower(), words[1:]
        if cmd == "pause":
            self.paused = True
        elif cmd == "resume":
            self.paused = False
        elif cmd == "toggle":
            self.paused = not self.paused
        elif cmd == "step":
            self.paused = True
            self.steps += int(args[0]) if args else 1
        elif cmd == "rate" and args:
            try:
                value = float(args[0])
            except ValueError:
                return {"ok": False, "error": f"rate {args[0]!r} is not a number"}
            if value <= 0:
                return {"ok": False, "error": f"rate must be > 0, got {value}"}
            self.rate = value
        elif cmd == "stop":
            self.stop = True
        elif cmd != "status":
            return {"ok": False, "error": f"unknown command {text!r} (pause, resume, toggle, step [N], rate X, stop, "
                                          f"status)"}
        return {"ok": True, **self.status()}

    def status(self) -> dict[str, Any]:
        return {"paused": self.paused, "rate": self.rate, "position_ns": self.position_ns,
                "published": self.published, "stopped": self.stop}


class Keyboard:
    """Non-blocking single keys from a TTY stdin: space toggle, s step, + / - rate, q stop."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: Any = None
        if sys.stdin.isatty():
            import termios
            import tty

            self._fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)

    def fileno(self) -> int | None:
        """The terminal's fd (None when stdin is not a terminal)."""
        return self._fd

    def poll(self, control: PlayerControl) -> None:
        if self._fd is None:
            return
        while select.select([self._fd], [], [], 0)[0]:
            key = os.read(self._fd, 1).decode(errors="ignore")
            if key == " ":
                control.command("toggle")
            elif key == "s":
                control.command("step")
            elif key == "+":
                control.command(f"rate {control.rate * 2}")
            elif key == "-":
                control.command(f"rate {control.rate / 2}")
            elif key == "q":
                control.command("stop")
            sys.stderr.write(f"\r[player] {json.dumps(control.status())}\n")

    def close(self) -> None:
        if self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._fd = None


class ControlSocket:
    """A ZeroMQ REP socket taking one text command per request; replies JSON."""

    def __init__(self, sock: Any, endpoint: str) -> None:
        """``sock``: a REP socket (``node.create_socket(zmq.REP)``), bound here to ``endpoint``."""
        import zmq

        self._zmq = zmq
        self.endpoint = endpoint
        self._sock = sock
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True)
        from mmstream import security  # loopback/ipc, or CURVE on a network address (docs/security.md)

        self._security = security.secure_server(sock, endpoint, domain=security.CONTROL_DOMAIN,
                                                server_right=security.SUBSCRIBE, client_right=security.PUBLISH,
                                                what="player control socket")
        self._sock.bind(endpoint)

    @property
    def socket(self) -> Any:
        """The REP socket: a node's poll waits on it."""
        return self._sock

    def poll(self, control: PlayerControl) -> None:
        while self._sock.poll(0, self._zmq.POLLIN):
            text = b" ".join(self._sock.recv_multipart()).decode(errors="replace")  # all parts, or REP cannot reply
            self._sock.send(json.dumps(control.command(text)).encode())

    def close(self) -> None:
        self._sock.close(0)
        self._security.release()


def send_control(endpoint: str, command: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """Send one command to a player's control socket; returns its reply."""
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        from mmstream import security

        security.secure_client(sock, endpoint, domain=security.CONTROL_DOMAIN, server_right=security.SUBSCRIBE,
                               client_right=security.PUBLISH, what="player control client")
        sock.connect(endpoint)
        sock.send(command.encode())
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise BagError(f"player control {endpoint}: no reply to {command!r} within {timeout_s} s")
        return json.loads(sock.recv())
    finally:
        sock.close(0)


class Player:
    """Plays one bag. ``publish(topic, msg) -> seq`` comes from the node.

    publish must return the seq it gave the message (the node's publisher sets it). Drive it with
    :meth:`steps` (a generator that yields how long to wait before it may go on: 0 = at once,
    ``math.inf`` = until a control input arrives; a node's ``step()`` returns that wait), or with
    :meth:`play` and an ``idle(timeout_s)`` callable that waits and polls control inputs.
    """

    def __init__(self, cfg: PlayConfig, publish: Callable[[str, Any], int],
                 idle: Callable[[float], None] | None = None, control: PlayerControl | None = None) -> None:
        if cfg.rate <= 0:
            raise BagError(f"player: rate must be > 0, got {cfg.rate}")
        from mmstream.bag.convert import ConvertOptions

        self.cfg = cfg
        options = cfg.convert_options if cfg.convert_options is not None else ConvertOptions(decode_jpeg=cfg.decode_jpeg)
        self.reader = BagReader(cfg.bag, topic_map=cfg.topic_map, options=options)
        self.control = control or PlayerControl(rate=cfg.rate)
        self._publish = publish
        self._idle = idle or (lambda timeout_s: time.sleep(min(timeout_s, 0.05)))
        # Every tick lists every topic this player will publish (0 until its first message), so a node
        # on sim time knows from the first tick which topics' messages must wait for their tick; a
        # topic first named only after its first message could overtake messages sent before it.
        self._published_seq: dict[str, int] = {t: 0 for t in self.output_topics()}
        self._last_tick_ns: int | None = None
        self.ticks = 0
        self.lag_max_s = 0.0

    # ------------------------------------------------------------------ what to play
    def output_topics(self) -> dict[str, type]:
        """{topic: message class} this player publishes data on (not /clock), from the bag and the config."""
        from mmstream.bag import convert

        out: dict[str, type] = {}
        for topic, ros_type in self.reader.topic_types().items():
            name = self.reader.out_topic(topic)
            if name == CLOCK_TOPIC or (not self.cfg.play_stats and ros_type.endswith("/NodeStats")):
                continue
            if self.cfg.topics and topic not in self.cfg.topics and name not in self.cfg.topics:
                continue
            cls = convert.class_for(ros_type)
            if cls is not None and name not in out:
                out[name] = cls
        return out

    def _selected(self) -> Iterator[BagMessage]:
        topics = self.cfg.topics or None
        for bm in self.reader.messages(topics=topics):
            if self.cfg.skip_recorded_clock and bm.out_topic == CLOCK_TOPIC:
                continue
            if not self.cfg.play_stats and isinstance(bm.msg, NodeStats):
                continue
            yield bm

    def _window(self, messages: Iterable[BagMessage]) -> Iterator[BagMessage]:
        first: int | None = None
        for bm in messages:
            if first is None:
                first = bm.log_time_ns
            offset_ns = bm.log_time_ns - first
            if offset_ns < self.cfg.start_s * 1e9:
                continue
            if self.cfg.duration_s and offset_ns > (self.cfg.start_s + self.cfg.duration_s) * 1e9:
                return
            yield bm

    # ------------------------------------------------------------------ clock
    def _tick(self, stamp_ns: int) -> None:
        if not self.cfg.clock:
            return
        if self._last_tick_ns is not None and stamp_ns <= self._last_tick_ns:
            return
        self._last_tick_ns = stamp_ns
        self._publish(CLOCK_TOPIC, Clock(header=Header(stamp_ns=stamp_ns), published_seq=dict(self._published_seq)))
        self.ticks += 1

    # ------------------------------------------------------------------ timing
    def _wait_until(self, bag_ns: int, anchor: list[Any], *, message: bool) -> Generator[float, None, bool]:
        """Wait (scaled, pausable) until bag time ``bag_ns``, yielding waits; False if stopped.

        anchor = [wall_s, bag_ns, rate]: the wall time at which bag time anchor[1] was due.
        While paused, a step releases the next message and the clock ticks before it.
        """
        c = self.control
        yield 0.0  # let the node handle control inputs and messages between two publishes
        while True:
            if c.stop:
                return False
            if c.paused:
                if c.steps > 0:
                    if message:
                        c.steps -= 1
                    anchor[0], anchor[1] = time.monotonic(), bag_ns
                    return True
                yield math.inf  # until a control input
                anchor[0], anchor[1] = time.monotonic(), bag_ns  # resume from here, no catch-up burst
                continue
            if self.cfg.fast:
                return True
            due_s = anchor[0] + (bag_ns - anchor[1]) / 1e9 / c.rate
            if c.rate != anchor[2]:  # rate changed: re-anchor at the current position
                anchor[0], anchor[1], anchor[2] = time.monotonic(), c.position_ns or bag_ns, c.rate
                continue
            remaining = due_s - time.monotonic()
            if remaining <= 0:
                self.lag_max_s = max(self.lag_max_s, -remaining)
                return True
            yield remaining

    def _play_once(self) -> Generator[float, None, int]:
        """One pass over the bag, yielding waits; returns the number of messages published."""
        period_ns = int(1e9 / self.cfg.clock_hz) if self.cfg.clock and self.cfg.clock_hz > 0 else 0
        anchor: list[Any] = [time.monotonic(), None, self.control.rate]
        next_grid: int | None = None
        pending: int | None = None  # time of the last message sent, not yet ticked
        count = 0
        for bm in self._window(self._selected()):
            t = bm.log_time_ns
            if anchor[1] is None:  # playback starts at the first message (not when the bag was opened)
                anchor[0], anchor[1] = time.monotonic(), t
                next_grid = (t // period_ns + 1) * period_ns if period_ns else None
                self._tick(t - 1)  # nodes on sim time start just before the first message, not at 0
            if pending is not None and pending < t:
                if (self.cfg.clock_every_message or not period_ns or self._last_tick_ns is None
                        or pending - self._last_tick_ns >= period_ns):
                    self._tick(pending)  # right after the last message time (or once a period has passed)
                pending = None
            while next_grid is not None and next_grid < t:
                # grid ticks fill gaps between message times; skipped where a tick is less than a period old
                if self._last_tick_ns is None or next_grid - self._last_tick_ns >= period_ns:
                    if not (yield from self._wait_until(next_grid, anchor, message=False)):
                        return count
                    self._tick(next_grid)
                next_grid += period_ns
            if not (yield from self._wait_until(t, anchor, message=True)):
                return count
            seq = self._publish(bm.out_topic, bm.msg)
            self._published_seq[bm.out_topic] = seq
            self.control.position_ns = t
            self.control.published += 1
            pending = t
            count += 1
        if pending is not None:
            self._tick(pending)
        return count

    def steps(self) -> Generator[float, None, int]:
        """The whole replay (loops included) as a generator of waits; returns the messages published."""
        total = 0
        while True:
            n = yield from self._play_once()
            total += n
            if not self.cfg.loop or self.control.stop or n == 0:
                return total
            self._last_tick_ns = None  # the clock restarts; nodes on sim time see it go back

    def play_once(self) -> int:
        return self._drive(self._play_once())

    def play(self) -> int:
        return self._drive(self.steps())

    def _drive(self, gen: Generator[float, None, int]) -> int:
        try:
            while True:
                self._idle(min(next(gen), 0.05))
        except StopIteration as done:
            return int(done.value)
