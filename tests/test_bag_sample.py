"""The demo bag: scripts/make_sample_bag.py with real ffmpeg + espeak-ng, and the shipped sample.mcap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mmstream.bag.info import bag_info
from mmstream.bag.reader import BagReader
from mmstream.messages import AudioChunk, ImageFrame, TextUtterance

SHIPPED = REPO / "mmstream" / "data" / "sample.mcap"


def _check_sample(path: Path, *, min_s: float) -> None:
    info = bag_info(path)
    topics = {t["topic"]: t for t in info["topics"]}
    assert topics["/camera/image"]["type"] == "sensor_msgs/msg/CompressedImage"
    assert topics["/camera/image"]["rate_hz"] == pytest.approx(30.0, rel=0.02)
    assert topics["/microphone/audio"]["rate_hz"] == pytest.approx(50.0, rel=0.02)
    assert topics["/text/utterance"]["count"] >= 2
    assert info["duration_s"] >= min_s and info["size_bytes"] < 8_000_000 and info["problems"] == []
    reader = BagReader(path)
    seen: dict[str, object] = {}
    samples = 0
    for m in reader.messages():
        seen.setdefault(m.topic, m.msg)
        if isinstance(m.msg, AudioChunk):
            samples += m.msg.num_samples
    frame, chunk, utt = seen["/camera/image"], seen["/microphone/audio"], seen["/text/utterance"]
    assert isinstance(frame, ImageFrame) and frame.encoding == "jpeg" and frame.to_bgr().shape == (240, 320, 3)
    assert isinstance(chunk, AudioChunk) and chunk.sample_rate_hz == 16000 and chunk.samples.shape == (320, 1)
    assert isinstance(utt, TextUtterance) and utt.text and utt.end_ns > utt.start_ns
    assert samples / 16000 >= min_s - 0.1
    assert "sample" in reader.metadata()


@pytest.mark.timeout(90)
def test_make_sample_bag_from_synthetic_media(tmp_path: Path) -> None:
    out = tmp_path / "synth.mcap"
    r = subprocess.run([sys.executable, "scripts/make_sample_bag.py", "--synthetic", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=80)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["frames"] == 180 and result["utterances"] == 2
    _check_sample(out, min_s=5.9)


def test_shipped_sample_bag() -> None:
    _check_sample(SHIPPED, min_s=11.0)
