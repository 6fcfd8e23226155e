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
    assert len(labels) >= 15, out[-3000:]  # ~11.5 s of sample, 0.5 s hop
    tops = [lab for lab, _, _ in labels]
    assert tops.count(expected) >= 0.9 * len(tops), tops
    # every modality of the sample shows up in the windows (the face is always in view)
    assert all(present[0] == "V" for _, _, present in labels)
    assert any(present == "VAT" for _, _, present in labels)
    # the monitor reported the graph
    assert re.search(r"\[monitor\] node synchronizer\s+running", out)
    assert "player is required: shutting down the launch" in out


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
