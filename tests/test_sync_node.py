"""End to end with real processes: camera (video file) + microphone (wav file) + text (subtitles)
→ synchronizer node → a subscriber checking every window against what the files contain.

The video paints each frame's index in eight big black/white blocks; the wav is silent for 1.5 s
and then a 1 kHz cosine (so the onset sample is exactly known); the subtitles have two cues.
Each source stamps with its own start time plus the file's own times, so checks are made against
each source's time base (recovered from the stamps the windows carry for traceability).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmstream.messages import Window
from tests.conftest import node_cmd
from tests.fixtures_media import Collector, collector  # noqa: F401  (fixture)

S = 1_000_000_000
FPS = 30
RATE = 16000
ONSET_S = 1.5
SECONDS = 4.0


def paint(index: int, h: int = 240, w: int = 320) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    for bit in range(8):
        if (index >> bit) & 1:
            img[40:200, bit * 40:(bit + 1) * 40] = 255
    return img


def read_index(img: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if img[80:160, bit * 40 + 10:bit * 40 + 30].mean() > 127)


def make_files(tmp: Path) -> tuple[Path, Path, Path]:
    import cv2
    import soundfile as sf

    video = tmp / "count.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (320, 240))
    assert out.isOpened(), "OpenCV cannot write MJPG"
    for i in range(int(SECONDS * FPS)):
        out.write(paint(i))
    out.release()
    n = int(SECONDS * RATE)
    audio = np.zeros(n, np.float32)
    k = np.arange(n - int(ONSET_S * RATE))
    audio[int(ONSET_S * RATE):] = 0.5 * np.cos(2 * np.pi * 1000 * k / RATE)
    wav = tmp / "tone.wav"
    sf.write(str(wav), audio, RATE, subtype="FLOAT")
    srt = tmp / "talk.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,200\nhello there\n\n2\n00:00:02,000 --> 00:00:03,000\nsecond line\n")
    return video, wav, srt


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_windows_from_real_sensor_processes_match_the_files(tmp_path: Path, spawn, collector: Collector):  # noqa: F811
    video, wav, srt = make_files(tmp_path)
    windows = collector.subscribe(Window, "/sync/window")
    sync = spawn(node_cmd("nodes.synchronizer", "--param", "window_s=1.0", "--param", "hop_s=0.5",
                          "--param", "frames_per_window=8", "--param", "max_delay_s=0.5",
                          "--param", "liveness_timeout_s=1.0", "--param", "reliable_output=true"))
    common = ["--param", "wait_for_subscribers=1", "--param", "realtime=true"]
    procs = [
        spawn(node_cmd("nodes.camera", "--param", f"source={video}", *common)),
        spawn(node_cmd("nodes.microphone", "--param", f"source={wav}", "--param", "block_s=0.02", *common)),
        spawn(node_cmd("nodes.text", "--param", f"source={srt}", *common)),
    ]
    collector.spin_until(lambda: len(windows) >= 6, 40, "six windows from the synchronizer")
    collector.spin_for(2.5)  # the rest, until the sources end and max_delay passes
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
    got = [w for _, w in windows]
    assert sync.poll() is None, sync.stdout.read() if sync.stdout else ""

    # windows: on the grid, in order, each once
    starts = [w.start_ns for w in got]
    assert starts == sorted(set(starts))
    assert all(s % (S // 2) == 0 and w.end_ns - w.start_ns == S for s, w in zip(starts, got))

    # video: each frame's painted index agrees with the stamp the window reports for it
    bases = []
    for w in got:
        slots = [w.start_ns + (2 * i + 1) * S // 16 for i in range(8)]
        for t in np.flatnonzero(w.frame_mask):
            stamp = int(w.frame_stamps_ns[t])
            assert w.start_ns <= stamp < w.end_ns and abs(stamp - slots[t]) <= S // 16
            bases.append(stamp - read_index(w.frames[t]) * S / FPS)
    assert len(bases) > 40
    assert max(bases) - min(bases) < 3e6, "a frame's pixels do not belong to its stamp"

    # audio: the tone starts exactly at the sample where the wav has it
    mic_base = min(int(w.audio_chunk_stamps_ns.min()) for w in got if w.audio_chunk_stamps_ns.size)
    onset_ns = mic_base + int(ONSET_S * S)
    with_onset = [w for w in got if w.start_ns + S // 10 <= onset_ns < w.end_ns - S // 10 and w.audio_mask.all()]
    assert with_onset, "no complete window around the tone onset"
    for w in with_onset:
        assert w.audio.shape == (RATE, 1)
        # samples lie on the microphone's grid (mic_base + k/RATE): as many precede the onset
        # in this window as grid points fall in [start, onset)
        expected = (onset_ns - w.start_ns) * RATE // S
        first_loud = int(np.flatnonzero(np.abs(w.audio[:, 0]) > 0.1)[0])
        assert first_loud == expected
        assert w.audio[expected, 0] == pytest.approx(0.5)  # cos(0): the very first tone sample
        assert np.abs(w.audio[:expected, 0]).max() < 1e-6

    # text: the second cue is in windows it overlaps (those still pending when it was published)
    texts = [(w, [u.text for u in w.utterances]) for w in got]
    cue = [u for w in got for u in w.utterances if u.text == "second line"]
    assert cue, f"second cue missing from every window: {[t for _, t in texts]}"
    u = cue[0]
    for w, t in texts:
        if "second line" in t:
            assert u.start_ns < w.end_ns and u.end_ns > w.start_ns
    assert any(all(w.presence.values()) for w in got), [w.presence for w in got]
