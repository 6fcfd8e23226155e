"""Shared fixtures: an isolated graph run directory per test, and helpers to run real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
settings.load_profile("ci")


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short, private run directory (ipc socket paths must stay under 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="mmt-", dir="/tmp"))
    monkeypatch.setenv("MMSTREAM_RUN_DIR", str(d))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def node_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@pytest.fixture
def spawn(run_dir: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start a process in the test's graph; every process is stopped (SIGINT, then SIGKILL) at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def _spawn(cmd: list[str], **kw: object) -> subprocess.Popen[str]:
        env = dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")
        env.update(kw.pop("env", {}) or {})  # type: ignore[arg-type]
        p = subprocess.Popen(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        if p.poll() is None:
            p.send_signal(2)
    deadline = time.monotonic() + 3
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
