"""A live terminal view of a running graph: nodes and their state, topic rates, latencies and
drops, and the latest emotion estimate with a bar per class.

Where the numbers come from:

* node state: the launcher's ``<run_dir>/processes.json`` (running, respawning, exited, respawn
  count, exit codes) merged with the node registry (``graph.list_nodes``: is the pid alive);
  a node that stays down (exited with a failure and not respawned, or whose process died
  without a launcher to restart it) is reported above everything else, in every view;
* rates, drops, latencies: each node's :class:`~mmstream.messages.NodeStats` on ``/<node>/stats``
  (the monitor subscribes to the stats topic of every node it discovers);
* emotion: the newest :class:`~mmstream.messages.EmotionEstimate` on ``/perception/emotion``.

:class:`GraphState` holds that (no sockets, no terminal); :func:`render` makes a rich renderable
of it and :func:`plain_lines` plain text (for pipes and the launcher's log); :func:`attach` wires
a :class:`~mmstream.node.Node` to a state; :func:`run_monitor` is ``mmstream monitor``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from mmstream import graph
from mmstream.messages import EmotionEstimate, NodeStats

EMOTION_TOPIC = "/perception/emotion"
BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉█"


@dataclass
class NodeView:
    """One row of the nodes table."""

    name: str
    state: str              # running, respawned ×N, respawning, exited (code), starting, stopping, dead
    pid: int | None
    respawns: int
    uptime_s: float | None
    cpu_s: float | None
    stats_age_s: float | None  # seconds since its last NodeStats (None: none yet)
    down: bool = False      # it failed and nothing restarts it: exited (code != 0) and not respawning, or dead

    def down_reason(self) -> str:
        after = f" after {self.respawns} respawn{'s' if self.respawns != 1 else ''}" if self.respawns else ""
        return f"{self.state}{after}, not restarted"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``width`` cells for ``fraction`` in [0, 1], with eighth-cell resolution."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def read_processes(run_dir: Path) -> list[dict[str, Any]]:
    """The launcher's process table, or [] when the graph was not started by ``mmstream launch``."""
    try:
        data = json.loads((run_dir / "processes.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else []


class GraphState:
    """What the monitor shows; fed by callbacks, read by the renderers."""

    def __init__(self, run_dir: Path, *, hide_prefix: str = "_", clock: Callable[[], float] = time.monotonic) -> None:
        self.run_dir = run_dir
        self.hide_prefix = hide_prefix
        self._clock = clock
        self.stats: dict[str, tuple[NodeStats, float]] = {}
        self.emotion: EmotionEstimate | None = None
        self.emotion_received_s: float | None = None
        self.emotion_count = 0

    def on_stats(self, msg: NodeStats) -> None:
        self.stats[msg.node] = (msg, self._clock())

    def on_emotion(self, msg: EmotionEstimate) -> None:
        self.emotion = msg
        self.emotion_received_s = self._clock()
        self.emotion_count += 1

    def _hidden(self, name: str) -> bool:
        return bool(self.hide_prefix) and name.startswith(self.hide_prefix)

    def nodes(self) -> list[NodeView]:
        now = self._clock()
        records = {r["name"]: r for r in graph.list_nodes(self.run_dir) if not self._hidden(r.get("name", "_"))}
        procs = {p["name"]: p for p in read_processes(self.run_dir) if not self._hidden(p.get("name", "_"))}
        views = []
        for name in list(procs) + sorted(set(records) - set(procs)):
            rec, proc = records.get(name), procs.get(name)
            alive = bool(rec and rec["alive"])
            respawns = int(proc.get("respawns", 0)) if proc else 0
            down = False
            if proc is None:
                state = "running" if alive else "dead"
                down = not alive
            elif proc.get("state") == "running":
                state = (f"respawned ×{respawns}" if respawns else "running") if alive else "starting"
            elif proc.get("state") == "exited":
                codes = proc.get("exit_codes") or []
                state = f"exited ({codes[-1]})" if codes else "exited"
                down = bool(codes) and codes[-1] != 0
            else:
                state = str(proc.get("state", "?"))
            st = self.stats.get(name)
            pid = (rec or {}).get("pid") or (proc or {}).get("pid")
            views.append(NodeView(name=name, state=state, pid=pid, respawns=respawns,
                                  uptime_s=st[0].uptime_s if st and alive else None,
                                  cpu_s=st[0].cpu_s if st and alive else None,
                                  stats_age_s=round(now - st[1], 1) if st else None, down=down))
        return views

    def down(self) -> list[NodeView]:
        """Nodes that failed and that nothing restarts (the graph runs without them)."""
        return [n for n in self.nodes() if n.down]

    def topic_rows(self) -> list[dict[str, Any]]:
        """One row per (topic, node, direction) from the newest NodeStats; stats topics left out."""
        rows = []
        for name, (msg, _) in self.stats.items():
            if self._hidden(name):
                continue
            for t in msg.topics:
                topic = t.get("topic", "")
                if topic.endswith("/stats"):
                    continue
                rows.append({"topic": topic, "node": name, "dir": t.get("direction", ""),
                             "rate_hz": t.get("rate_hz"), "drops": t.get("drops", 0), "rejected": t.get("rejected", 0),
                             "p50_ms": t.get("latency_p50_ms"), "p99_ms": t.get("latency_p99_ms"),
                             "clock": t.get("clock", "host")})
        rows.sort(key=lambda r: (r["topic"], r["dir"] != "pub", r["node"]))
        return rows

    def forget_dead(self) -> None:
        """Drop stats of nodes whose record is gone (stopped cleanly), so their rates don't linger."""
        names = {r["name"] for r in graph.list_nodes(self.run_dir)}
        for name in list(self.stats):
            if name not in names:
                del self.stats[name]


# --------------------------------------------------------------------------- renderers


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


#: latencies above this (1 h) mean the stamps are on another clock (a replayed bag), not a delay
_LATENCY_OTHER_CLOCK_MS = 3_600_000.0


def _fmt_latency(value: float | None, clock: str = "host") -> str:
    """A latency in ms; ``sim`` for subscribers on the bag clock (whose "latency" is bag time between
    a message's stamp and the clock tick, not a delay) and ``bag-time`` for host-clock subscribers
    receiving bag stamps."""
    if value is not None and clock == "sim":
        return "sim"
    if value is not None and abs(value) > _LATENCY_OTHER_CLOCK_MS:
        return "bag-time"
    return _fmt(value)


def emotion_lines(est: EmotionEstimate | None, width: int = BAR_WIDTH) -> list[str]:
    if est is None:
        return ["(no emotion estimate yet)"]
    present = " ".join(f"{m}:{'yes' if on else 'no'}" for m, on in est.presence.items())
    head = f"{est.top_label} {est.top_prob:.2f}"
    extra = [f"backend {est.backend}"] if est.backend else []
    if "total" in est.latency_ms:
        extra.append(f"latency {est.latency_ms['total']:.1f} ms")
    lines = [" · ".join([head, *extra, present] if present else [head, *extra])]
    w = max((len(lab) for lab in est.labels), default=0)
    for lab, p in zip(est.labels, est.probs):
        lines.append(f"{lab:<{w}} {bar(p, width)} {p:4.2f}")
    return lines


def plain_lines(state: GraphState) -> list[str]:
    """The same view as plain text lines (no escape codes): for pipes and the launcher's log."""
    out = [f"== mmstream monitor  {time.strftime('%H:%M:%S')}  run dir {state.run_dir}"]
    views = state.nodes()
    if not views:
        out.append(f"(no nodes in {state.run_dir}: is a graph running there? see --run-dir)")
    out += [f"DOWN {n.name}: {n.down_reason()}" for n in views if n.down]
    for n in views:
        out.append(f"node {n.name:<20} {n.state:<14} pid {n.pid or '-':<8} up {_fmt(n.uptime_s)}s "
                   f"cpu {_fmt(n.cpu_s)}s")
    for r in state.topic_rows():
        out.append(f"topic {r['topic']:<26} {r['dir']:<3} {r['node']:<18} {_fmt(r['rate_hz'])} Hz "
                   f"drops {r['drops']} p50 {_fmt_latency(r['p50_ms'], r['clock'])} ms "
                   f"p99 {_fmt_latency(r['p99_ms'], r['clock'])} ms")
    out += [f"emotion {line}" for line in emotion_lines(state.emotion)]
    return out


_STATE_STYLE = {"running": "green", "starting": "yellow", "respawning": "yellow", "stopping": "yellow",
                "dead": "red"}


def render(state: GraphState) -> Any:
    """A rich renderable: nodes table, topics table, emotion panel."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    views, rows = state.nodes(), state.topic_rows()
    name_w = max([len(n.name) for n in views] + [len(r["node"]) for r in rows] + [4])
    topic_w = max([len(r["topic"]) for r in rows] + [5])
    nodes = Table(title="nodes", expand=True, title_justify="left")
    for col, kw in (("node", {"min_width": name_w, "no_wrap": True}), ("state", {}), ("pid", {"justify": "right"}),
                    ("uptime s", {"justify": "right"}),
                    ("cpu s", {"justify": "right"}), ("stats age s", {"justify": "right"})):
        nodes.add_column(col, **kw)
    for n in views:
        style = _STATE_STYLE.get(n.state, "red" if n.state.startswith("exited") else "yellow")
        nodes.add_row(n.name, Text(n.state, style=style), str(n.pid or "-"), _fmt(n.uptime_s), _fmt(n.cpu_s),
                      _fmt(n.stats_age_s))
    topics = Table(title="topics", expand=True, title_justify="left")
    for col, kw in (("topic", {"min_width": topic_w, "no_wrap": True}), ("dir", {}),
                    ("node", {"min_width": name_w, "no_wrap": True}), ("rate Hz", {"justify": "right"}),
                    ("drops", {"justify": "right"}), ("rejected", {"justify": "right"}),
                    ("p50 ms", {"justify": "right"}), ("p99 ms", {"justify": "right"})):
        topics.add_column(col, **kw)
    for r in rows:
        topics.add_row(r["topic"], r["dir"], r["node"], _fmt(r["rate_hz"]),
                       Text(str(r["drops"]), style="red" if r["drops"] else ""),
                       Text(str(r["rejected"]), style="red" if r["rejected"] else ""),
                       _fmt_latency(r["p50_ms"], r["clock"]), _fmt_latency(r["p99_ms"], r["clock"]))
    emo = Text("\n".join(emotion_lines(state.emotion)))
    age = "" if state.emotion_received_s is None else f" ({time.monotonic() - state.emotion_received_s:.1f} s ago)"
    header = Text(f"mmstream monitor · {state.run_dir} · {time.strftime('%H:%M:%S')} · Ctrl-C to quit",
                  style="bold")
    if not views:
        header.append(f"\n(no nodes in {state.run_dir}: is a graph running there? see --run-dir)", style="yellow")
    for n in views:
        if n.down:
            header.append(f"\nDOWN {n.name}: {n.down_reason()}", style="bold red")
    return Group(header, nodes, topics, Panel(emo, title=f"emotion{age}", title_align="left"))


# --------------------------------------------------------------------------- wiring


def attach(node: Any, state: GraphState, emotion_topic: str = EMOTION_TOPIC) -> Callable[[], None]:
    """Subscribe ``node`` to the emotion topic; return ``discover()``, which subscribes to the stats
    topic of every node not seen before (call it periodically)."""
    node.create_subscription(EmotionEstimate, emotion_topic, state.on_emotion, keep_last=2)
    watched: set[str] = set()

    def discover() -> None:
        for rec in graph.list_nodes(state.run_dir):
            name = rec.get("name", "")
            if rec["alive"] and name and name not in watched:
                watched.add(name)
                node.create_subscription(NodeStats, f"/{name}/stats", state.on_stats, keep_last=2)
        state.forget_dead()

    discover()
    return discover


def run_monitor(run_dir: Path | None = None, *, once: bool = False, duration_s: float = 0.0,
                refresh_hz: float = 2.0, fmt: str = "auto", settle_s: float = 3.0,
                emotion_topic: str = EMOTION_TOPIC, out: IO[str] | None = None) -> int:
    """``mmstream monitor``: full-screen live view until Ctrl-C (or ``duration_s``); ``once``: wait
    up to ``settle_s`` for every node's stats, print one view and exit."""
    from mmstream.node import Node

    out = out or sys.stdout
    plain = fmt == "plain" or (fmt == "auto" and not out.isatty())
    node = Node(f"_monitor_{os.getpid()}", run_dir=run_dir, params={"log_level": "warning"})
    try:
        state = GraphState(node.run_dir)
        discover = attach(node, state, emotion_topic)
        if once:
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline:
                node.spin_once(0.05)
                discover()
                alive = {n.name for n in state.nodes() if n.pid and not n.state.startswith(("exited", "dead"))}
                if alive and alive <= set(state.stats):
                    node.spin_once(0.2)  # a last chance for an emotion estimate in flight
                    break
            _print_once(state, plain, out)
            return 0
        if plain:
            return _loop_plain(node, state, discover, refresh_hz, duration_s, out)
        return _loop_live(node, state, discover, refresh_hz, duration_s, out)
    except KeyboardInterrupt:
        return 0
    finally:
        node.close()


def _print_once(state: GraphState, plain: bool, out: IO[str]) -> None:
    if plain:
        out.write("\n".join(plain_lines(state)) + "\n")
        out.flush()
        return
    from rich.console import Console

    Console(file=out).print(render(state))


def _loop_plain(node: Any, state: GraphState, discover: Callable[[], None], refresh_hz: float,
                duration_s: float, out: IO[str]) -> int:
    end = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    next_s = time.monotonic() + 1.0 / refresh_hz
    while node.ok() and time.monotonic() < end:
        node.spin_once(0.05)
        if time.monotonic() >= next_s:
            next_s += 1.0 / refresh_hz
            discover()
            out.write("\n".join(plain_lines(state)) + "\n")
            out.flush()
    return 0


def _loop_live(node: Any, state: GraphState, discover: Callable[[], None], refresh_hz: float,
               duration_s: float, out: IO[str]) -> int:
    from rich.console import Console
    from rich.live import Live

    end = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    with Live(render(state), console=Console(file=out), screen=True, auto_refresh=False) as live:
        next_s = time.monotonic()
        while node.ok() and time.monotonic() < end:
            node.spin_once(0.05)
            if time.monotonic() >= next_s:
                next_s = time.monotonic() + 1.0 / refresh_hz
                discover()
                live.update(render(state), refresh=True)
    return 0
