"""Real media for sensor tests: videos made with ffmpeg, speech made with espeak-ng, and a
PulseAudio null sink whose monitor is the default capture source.

Import the fixtures you need into a test module (``from tests.fixtures_media import pulse_null_sink``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.clock import host_now_ns
from mmstream.messages import Message
from mmstream.node import Node

NULL_SINK = "mmstream_null"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # a failure, not a skip: the README's test command installs it, so its absence is a setup bug
        pytest.fail(f"{name} is not installed (scripts/setup.sh installs it; run the README's test command)")
    return path


def make_video(path: Path, *, width: int = 320, height: int = 240, rate: int = 30, seconds: float = 2.0,
               source: str = "testsrc") -> Path:
    """A real H.264/MPEG-4 clip from ffmpeg's lavfi test source."""
    require_tool("ffmpeg")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"{source}=size={width}x{height}:rate={rate}", "-t", str(seconds),
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def make_speech_wav(path: Path, text: str = "Hello robot, this is a test of the microphone node.") -> Path:
    """A real speech recording synthesised by espeak-ng (22050 Hz mono)."""
    require_tool("espeak-ng")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60, capture_output=True)
    return path


def make_tone_wav(path: Path, *, rate_hz: int = 16000, seconds: float = 1.0, channels: int = 1,
                  tone_hz: float = 440.0, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    t = np.arange(int(rate_hz * seconds)) / rate_hz
    mono = 0.5 * np.sin(2 * np.pi * tone_hz * t)
    sf.write(str(path), np.repeat(mono[:, None], channels, axis=1), rate_hz, subtype=subtype)
    return path


# --------------------------------------------------------------------------- PulseAudio


def _pactl(*args: str, timeout_s: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=timeout_s)


def _pulse_running() -> bool:
    try:
        return _pactl("info", timeout_s=3).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def start_pulseaudio_null_sink() -> tuple[bool, str]:
    """Idempotently: PulseAudio running, a null sink ``mmstream_null``, its monitor the default source.

    Returns (started_here, problem); problem is "" when everything is ready.
    """
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (Debian: pulseaudio pulseaudio-utils)"
    started = False
    if not _pulse_running():
        attempts = [
            ["pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit"],
            # root without a session: a daemon with no module autoload restrictions or shm
            ["pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit", "--disable-shm=yes",
             "--system=false", "-n", "--load=module-native-protocol-unix", "--load=module-always-sink"],
        ]
        errors = []
        for cmd in attempts:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not _pulse_running():
                time.sleep(0.1)
            if _pulse_running():
                started = True
                break
            errors.append(f"`{' '.join(cmd)}` -> rc {res.returncode}: {res.stderr.strip()[-300:]}")
        if not started:
            return False, "pulseaudio could not start: " + " | ".join(errors)
    sinks = _pactl("list", "short", "sinks").stdout
    if NULL_SINK not in sinks.split():
        res = _pactl("load-module", "module-null-sink", f"sink_name={NULL_SINK}",
                     "sink_properties=device.description=mmstream_null")
        if res.returncode != 0:
            return started, f"pactl load-module module-null-sink failed: {res.stderr.strip()}"
    for args in (("set-default-sink", NULL_SINK), ("set-default-source", f"{NULL_SINK}.monitor")):
        res = _pactl(*args)
        if res.returncode != 0:
            return started, f"pactl {' '.join(args)} failed: {res.stderr.strip()}"
    return started, ""


@pytest.fixture(scope="session")
def pulse_null_sink() -> Iterator[str]:
    """The sink name to play into; recording from PortAudio device 'pulse' captures its monitor."""
    started, problem = start_pulseaudio_null_sink()
    if problem:
        pytest.fail(f"PulseAudio capture unavailable: {problem} (scripts/setup.sh installs pulseaudio)")
    yield NULL_SINK
    if started:
        subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=10)


# --------------------------------------------------------------------------- subscribing in the test


class Collector:
    """A node in the test process that keeps every message of some topics (reliable subscriptions)."""

    def __init__(self, run_dir: Path, name: str = "collector") -> None:
        self.node = Node(name, run_dir=run_dir)
        self.messages: dict[str, list[tuple[int, Any]]] = {}

    def subscribe(self, msg_type: type[Message], topic: str) -> list[tuple[int, Any]]:
        """Messages arrive as (receipt_ns, message)."""
        got: list[tuple[int, Any]] = []
        self.messages[topic] = got
        self.node.create_subscription(msg_type, topic, lambda m: got.append((host_now_ns(), m)), keep_last=None)
        return got

    def spin_until(self, pred: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.node.spin_once(0.02)
            if pred():
                return
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.node.spin_once(0.02)

    def close(self) -> None:
        self.node.close()


@pytest.fixture
def collector(run_dir: Path) -> Iterator[Collector]:
    c = Collector(run_dir)
    yield c
    c.close()


def node_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
