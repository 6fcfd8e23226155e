"""The README's demo: the shipped sample replayed through synchronizer -> inference (real processes)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tests.conftest import REPO


def test_demo_launch_recognizes_the_sample_and_exits_cleanly(spawn, run_dir: Path) -> None:  # noqa: ANN001
    expected = json.loads((REPO / "mmstream/data/sample.json").read_text())["expected_top_label"]
    proc = spawn([sys.executable, "-m", "mmstream.cli", "launch", "launch/demo.yaml", "rate:=3.0"])
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out[-3000:]
    labels = re.findall(r"^\[console\] /perception/emotion t=\s*[\d.]+s\s+(\w+) ([\d.]+) \[(...)\]", out, re.M)
    assert len(labels) == 23, out[-3000:]  # ~11.5 s of sample, 0.5 s hop: every window, none lost
    tops = [lab for lab, _, _ in labels]
    assert tops.count(expected) >= 0.9 * len(tops), tops
    # every modality of the sample shows up in the windows (the face is always in view)
    assert all(present[0] == "V" for _, _, present in labels)
    assert any(present == "VAT" for _, _, present in labels)
    assert "player is required: shutting down the launch" in out
    # it reads well: progress, one line per estimate, one summary; the monitor only on request
    assert "[monitor]" not in out
    assert re.search(r"^\[player\] playing\s+[\d.]+/11\.\d s", out, re.M)
    summary = re.search(r"^\[console\] summary: 23 windows, (\w+) (\d+).*model latency p50 [\d.]+ ms.*, 0 dropped$",
                        out, re.M)
    assert summary and summary.group(1) == expected, out[-2000:]


def test_a_finished_replay_ends_the_launch_at_once(spawn, run_dir: Path) -> None:  # noqa: ANN001
    """The player drains and exits; the launch stops the graph upstream first, each node draining."""
    import time

    proc = spawn([sys.executable, "-m", "mmstream.cli", "launch", "launch/demo.yaml", "fast:=true", "monitor:=true"])
    assert proc.stdout is not None
    finished_at = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "player finished" in line:
            finished_at = time.monotonic()
    proc.wait(timeout=30)
    out = "".join(lines)
    assert proc.returncode == 0 and finished_at is not None, out[-3000:]
    assert time.monotonic() - finished_at < 2.5, out[-3000:]  # was ~5 s of player linger
    assert len(re.findall(r"^\[console\] /perception/emotion", out, re.M)) == 23, out[-3000:]
    assert re.search(r"^\[monitor\] node inference\s", out, re.M)  # monitor:=true brings the report back


def test_the_same_launch_file_runs_live_sensors(spawn, run_dir: Path) -> None:  # noqa: ANN001
    """live:=true swaps the player for the camera, microphone and text nodes (here on the sample's files)."""
    import signal
    import time

    data = REPO / "mmstream/data"
    proc = spawn([sys.executable, "-m", "mmstream.cli", "launch", "launch/demo.yaml", "live:=true",
                  f"video:={data / 'sample.mp4'}", f"audio:={data / 'sample.wav'}", f"text:={data / 'sample.srt'}"])
    deadline = time.monotonic() + 60
    lines: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline and sum("[console] /perception/emotion" in l for l in lines) < 8:
        lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-3000:]
    labels = re.findall(r"^\[console\] /perception/emotion t=\s*[\d.]+s\s+(\w+) ([\d.]+) \[(...)\]", out, re.M)
    assert len(labels) >= 8, out[-3000:]
    assert [lab for lab, _, _ in labels].count("happy") >= 0.9 * len(labels)
    assert all(present.startswith("VA") for _, _, present in labels)  # live camera + microphone frames
    assert "[player]" not in out and "[camera]" in out


REPLAY_LAUNCH = """
launch:
  - arg: {name: rate, default: "1.0"}
  - arg: {name: fast, default: "false"}
  - arg: {name: out}
  - node:
      exec: player
      name: player
      required: true
      params: {bag: BAG, rate: $(var rate), fast: $(var fast), keyboard: false, wait_for_subscribers: 1,
               drain_timeout_s: 3.0}
  - node:
      exec: synchronizer
      name: synchronizer
      params: {use_sim_time: true, reliable_input: true, reliable_output: true, wait_for_subscribers: 1,
               text_horizon_s: 1.5}
  - node:
      exec: inference
      name: inference
      params: {use_sim_time: true, reliable: true, wait_for_subscribers: 1, print_estimates: false}
  - node:
      exec: recorder
      name: recorder
      params: {output: $(var out), topics: [/perception/emotion], progress_s: 0}
"""


def test_replays_at_different_rates_give_identical_estimates(spawn, run_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """The same bag replayed twice, at 4x and as fast as possible, through real processes (player ->
    synchronizer -> inference -> recorder) gives the same estimates, value for value, for every window."""
    from mmstream.bag.reader import BagReader
    from mmstream.messages import EmotionEstimate

    launch = tmp_path / "replay.yaml"
    launch.write_text(REPLAY_LAUNCH.replace("BAG", str(REPO / "mmstream/data/sample.mcap")))
    runs, logs = [], []
    for speed in ("rate:=4.0", "fast:=true"):
        out = tmp_path / f"estimates_{speed.split(':')[0]}.mcap"
        proc = spawn([sys.executable, "-m", "mmstream.cli", "launch", str(launch), speed, f"out:={out}"])
        log, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, log[-3000:]
        logs.append("\n".join(line for line in log.splitlines() if "WARNING" in line or "synchronizer stats" in line))
        estimates = [m.msg for m in BagReader(out).messages() if isinstance(m.msg, EmotionEstimate)]
        runs.append([(e.window_start_ns, e.window_end_ns, e.top_label, e.probs, e.presence, e.contribution)
                     for e in estimates])
    assert len(runs[0]) >= 20, runs[0]  # ~11.5 s of sample at a 0.5 s hop: every window, none lost
    starts = [r[0] for r in runs[0]]
    assert all(b - a == 500_000_000 for a, b in zip(starts, starts[1:])), starts  # consecutive, no gap
    assert runs[0] == runs[1], "\n\n".join(logs)
