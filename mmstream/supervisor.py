"""Starts and supervises the processes of a launch description.

Each node runs as ``python -m <module> --name NAME --params-file <generated> --remap ...``
with ``MMSTREAM_RUN_DIR`` pointing at the graph's run directory. Output lines are prefixed
with the node name. Respawn is opt-in. Stopping sends SIGINT, then SIGTERM, then SIGKILL,
each after an explicit timeout. The exit code says whether a node failed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from mmstream import graph, security
from mmstream.errors import LaunchError, MmstreamError
from mmstream.graph import make_private_dir
from mmstream.launch import LaunchDescription, NodeSpec

SIGTERM_TIMEOUT_S = 2.0
_COLORS = ("36", "32", "35", "33", "34", "31", "96", "92", "95", "93")


@dataclass
class ManagedProcess:
    spec: NodeSpec
    proc: subprocess.Popen[bytes] | None = None
    respawns: int = 0
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)
    state: str = "starting"


class Supervisor:
    """Runs a validated :class:`LaunchDescription` until Ctrl-C, a required node exits, or all exit."""

    def __init__(self, desc: LaunchDescription, run_dir: Path, *, out: IO[str] | None = None,
                 color: bool | None = None) -> None:
        self.desc = desc
        self.run_dir = run_dir
        self.out = out or sys.stdout
        self.color = self.out.isatty() if color is None else color
        self.procs = [ManagedProcess(spec) for spec in desc.nodes]
        self._stop = threading.Event()
        self._print_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        self._failed: list[str] = []

    # ----------------------------------------------------------------- output
    def _emit(self, name: str, line: str, idx: int) -> None:
        prefix = f"[{name}]"
        if self.color:
            prefix = f"\x1b[{_COLORS[idx % len(_COLORS)]}m{prefix}\x1b[0m"
        with self._print_lock:
            self.out.write(f"{prefix} {line}\n")
            self.out.flush()

    def _pump(self, mp: ManagedProcess, idx: int, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._emit(mp.spec.name, raw.decode(errors="replace").rstrip(), idx)
        stream.close()

    # ----------------------------------------------------------------- lifecycle
    def _acquire_run_dir(self) -> None:
        make_private_dir(self.run_dir)
        try:  # its ipc sockets are the graph's topics: only this user may reach them
            fixed = security.check_private_dir(self.run_dir)
        except MmstreamError as exc:
            raise LaunchError(str(exc)) from None
        if fixed:
            self._emit("launch", f"warning: {fixed}", 0)
        self._lock_file = open(self.run_dir / "launch.lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LaunchError(f"another 'mmstream launch' is running with run dir {self.run_dir}; "
                              f"stop it or pass --run-dir DIR") from None
        for stale in (self.run_dir / "nodes").glob("*.json") if (self.run_dir / "nodes").exists() else []:
            stale.unlink(missing_ok=True)
        (self.run_dir / "launch.json").write_text(json.dumps({
            "launch_file": str(self.desc.path.resolve()), "args": self.desc.args, "pid": os.getpid(),
            "nodes": [n.name for n in self.desc.nodes]}))
        (self.run_dir / "launch.yaml").write_text(self.desc.source)
        (self.run_dir / "endpoints.json").write_text(json.dumps(self.desc.endpoints))
        sec_file = self.run_dir / "security.json"
        sec_file.unlink(missing_ok=True)
        if self.desc.security is not None:
            fd = os.open(sec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.desc.security.to_json())
            self._emit("launch", f"security: CURVE on tcp endpoints, keys from {self.desc.security.key_dir}", 0)
        if self.desc.insecure:
            tcp = [f"{t} {ep}" for t, ep in self.desc.endpoints.items() if security.tcp_host(ep)]
            self._emit("launch", "warning: insecure: true — tcp endpoints are plaintext and unauthenticated: "
                                 f"anyone on the network can read and inject them ({', '.join(tcp) or 'none yet'})", 0)

    def _command(self, spec: NodeSpec) -> list[str]:
        params_dir = self.run_dir / "params"
        params_dir.mkdir(exist_ok=True)
        pfile = params_dir / f"{spec.name}.yaml"
        pfile.write_text(yaml.safe_dump(spec.params))
        cmd = [sys.executable, "-m", spec.module, "--name", spec.name, "--params-file", str(pfile),
               "--run-dir", str(self.run_dir)]
        for src, dst in spec.remap.items():
            cmd += ["--remap", f"{src}:={dst}"]
        return cmd

    def _start(self, mp: ManagedProcess, idx: int) -> None:
        env = dict(os.environ)
        env.update({"MMSTREAM_RUN_DIR": str(self.run_dir), "PYTHONUNBUFFERED": "1",
                    "MMSTREAM_LAUNCH_FILE": str(self.desc.path.resolve())})
        if self.desc.endpoints:
            env["MMSTREAM_ENDPOINTS"] = json.dumps(self.desc.endpoints)
        for name in (security.ENV_CONFIG, security.ENV_KEY, security.ENV_INSECURE):
            env.pop(name, None)  # only this launch file decides
        if self.desc.security is not None:
            env[security.ENV_CONFIG] = str(self.run_dir / "security.json")
            env[security.ENV_KEY] = self.desc.security.node_keys.get(mp.spec.name, self.desc.security.key)
        if self.desc.insecure:
            env[security.ENV_INSECURE] = "1"
        env.update(mp.spec.env)
        mp.proc = subprocess.Popen(self._command(mp.spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        mp.state = "running"
        mp.restart_at = None
        threading.Thread(target=self._pump, args=(mp, idx, mp.proc.stdout), daemon=True).start()
        self._write_state()

    def _write_state(self) -> None:
        state = [{"name": m.spec.name, "pid": m.proc.pid if m.proc else None, "state": m.state,
                  "respawns": m.respawns, "exit_codes": m.exit_codes} for m in self.procs]
        tmp = self.run_dir / "processes.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.run_dir / "processes.json")

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start everything and supervise. Returns 0 if no node failed, else 1."""
        self._acquire_run_dir()
        previous = {s: signal.signal(s, lambda *_: self.request_stop()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for i, mp in enumerate(self.procs):
                self._start(mp, i)
            self._supervise()
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._write_state()
            if self._lock_file:
                self._lock_file.close()
        return 1 if self._failed else 0

    def _required_finished(self) -> str | None:
        """A required node that says its work is done (it stays up until its subscribers have
        everything: ZeroMQ drops what a subscriber has not read when its publisher goes away)."""
        required = {m.spec.name for m in self.procs if m.spec.required and m.state == "running"}
        if not required:
            return None
        try:
            records = graph.list_nodes(self.run_dir)
        except OSError:
            return None
        return next((r["name"] for r in records if r.get("name") in required and r.get("state") == "finished"
                     and r.get("alive")), None)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            finished = self._required_finished()
            if finished is not None:
                idx = next(i for i, m in enumerate(self.procs) if m.spec.name == finished)
                self._emit("launch", f"{finished} finished its work", idx)
                self._emit("launch", f"{finished} is required: shutting down the launch", idx)
                self._write_state()
                return
            active = False
            for i, mp in enumerate(self.procs):
                if mp.restart_at is not None:
                    active = True
                    if time.monotonic() >= mp.restart_at:
                        self._emit("launch", f"respawning {mp.spec.name} "
                                             f"({mp.respawns}/{mp.spec.respawn_max})", i)
                        self._start(mp, i)
                    continue
                if mp.proc is None or mp.state != "running":
                    continue
                code = mp.proc.poll()
                if code is None:
                    active = True
                    continue
                mp.exit_codes.append(code)
                mp.state = "exited"
                if code != 0:
                    self._emit("launch", f"process {mp.spec.name} (pid {mp.proc.pid}) died with exit code {code}", i)
                else:
                    self._emit("launch", f"process {mp.spec.name} (pid {mp.proc.pid}) finished cleanly", i)
                if mp.spec.required:
                    if code != 0:
                        self._failed.append(mp.spec.name)
                    self._emit("launch", f"{mp.spec.name} is required: shutting down the launch", i)
                    self._write_state()
                    return
                if mp.spec.respawn and mp.respawns < mp.spec.respawn_max:
                    mp.respawns += 1
                    mp.state = "respawning"
                    mp.restart_at = time.monotonic() + mp.spec.respawn_delay_s
                    active = True
                elif code != 0:
                    self._failed.append(mp.spec.name)
                self._write_state()
            if not active:
                return
            self._stop.wait(0.05)

    def _stop_all(self) -> None:
        """Stop upstream nodes first (publishers before their subscribers), one stage at a time, so
        each node drains what its producers sent before it is asked to stop itself."""
        running = [m for m in self.procs if m.proc is not None and m.proc.poll() is None]
        by_name = {m.spec.name: m for m in running}
        try:
            records = graph.list_nodes(self.run_dir)
        except OSError:
            records = []
        finished = {r["name"] for r in records if r.get("state") == "finished"}
        stages = shutdown_stages([n for n in by_name if n not in finished], records)
        if finished & set(by_name):  # finished nodes wait for their subscribers: they stop last
            stages.append([n for n in by_name if n in finished])
        for stage in stages:
            self._stop_stage([by_name[name] for name in stage])

    def _stop_stage(self, running: list[ManagedProcess]) -> None:
        for mp in running:
            mp.state = "stopping"
            mp.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
        for sig, timeout_attr in ((signal.SIGTERM, "sigint_timeout_s"), (signal.SIGKILL, None)):
            deadline = time.monotonic() + max((getattr(m.spec, timeout_attr) if timeout_attr else SIGTERM_TIMEOUT_S)
                                              for m in running) if running else time.monotonic()
            while time.monotonic() < deadline and any(m.proc.poll() is None for m in running):  # type: ignore
                time.sleep(0.02)
            for mp in running:
                if mp.proc.poll() is None:  # type: ignore[union-attr]
                    self._emit("launch", f"{mp.spec.name} did not stop in time, sending {sig.name}", 0)
                    mp.proc.send_signal(sig)  # type: ignore[union-attr]
        for mp in running:
            code = mp.proc.wait()  # type: ignore[union-attr]
            mp.exit_codes.append(code)
            mp.state = "exited"
            if code not in (0, -signal.SIGINT) and mp.spec.name not in self._failed:
                self._failed.append(mp.spec.name)


#: topics every node has that say nothing about data flow
def _is_control_topic(topic: str) -> bool:
    return topic == "/clock" or topic.endswith("/stats")


def shutdown_stages(names: list[str], records: list[dict]) -> list[list[str]]:
    """Group running nodes into stop stages: a node stops after every running node that publishes
    a topic it subscribes to (``/clock`` and stats topics aside). Cycles stop together at the end."""
    pubs = {r["name"]: {e["topic"] for e in r.get("pub", []) if not _is_control_topic(e["topic"])}
            for r in records if r.get("name") in names}
    subs = {r["name"]: {e["topic"] for e in r.get("sub", []) if not _is_control_topic(e["topic"])}
            for r in records if r.get("name") in names}
    upstream = {n: {m for m in names if m != n and pubs.get(m, set()) & subs.get(n, set())} for n in names}
    stages: list[list[str]] = []
    left = list(names)
    while left:
        stage = [n for n in left if not upstream[n] & set(left)]
        if not stage:  # a cycle: stop what is left together
            stage = left
        stages.append(stage)
        left = [n for n in left if n not in stage]
    return stages
