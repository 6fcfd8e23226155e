"""Helpers for the tests of mmstream.pretrained: run the real fetch (cached), and cut windows from the sample."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import numpy as np

from mmstream.messages import Header, TextUtterance, Window
from mmstream.pretrained.fetch import fetch, models_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "mmstream" / "data"


@functools.lru_cache(maxsize=1)
def fetched_models() -> Path:
    """Run ``mmstream models fetch`` logic once per test process (a no-op when the cache is complete)."""
    root = models_dir()
    fetch(root=root, quiet_pip=True, progress=lambda _msg: None)
    return root


def espeak(text: str, tmp: Path, name: str = "speech") -> np.ndarray:
    """espeak-ng speech as float32 mono at 16 kHz (espeak writes 22.05 kHz; ffmpeg resamples)."""
    import soundfile as sf

    raw, out = tmp / f"{name}_raw.wav", tmp / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True, timeout=60, capture_output=True)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(raw), "-ac", "1", "-ar", "16000", str(out)],
                   check=True, timeout=60, capture_output=True)
    audio, sr = sf.read(out, dtype="float32")
    assert sr == 16000
    return audio


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    def secs(t: str) -> float:
        h, m, rest = t.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    out = []
    for block in path.read_text().strip().split("\n\n"):
        lines = block.strip().splitlines()
        t0, t1 = re.split(r"\s*-->\s*", lines[1])
        out.append((secs(t0), secs(t1), " ".join(lines[2:])))
    return out


@functools.lru_cache(maxsize=1)
def sample_streams() -> tuple[np.ndarray, float, np.ndarray, list[tuple[float, float, str]]]:
    """(frames T×H×W×3 bgr, fps, audio N float32 16 kHz, subtitles) of the shipped sample."""
    import cv2
    import soundfile as sf

    cap = cv2.VideoCapture(str(SAMPLE_DIR / "sample.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    audio, sr = sf.read(SAMPLE_DIR / "sample.wav", dtype="float32")
    assert sr == 16000 and frames, "sample files missing: run scripts/make_sample.py"
    return np.stack(frames), float(fps), audio, read_srt(SAMPLE_DIR / "sample.srt")


def make_window(start_s: float, end_s: float, *, frames: np.ndarray | None = None, audio: np.ndarray | None = None,
                texts: list[str] | None = None, slots: int = 8) -> Window:
    """A Window like the synchronizer's: ``slots`` frame slots, audio at 16 kHz, utterances."""
    if frames is None or len(frames) == 0:
        f = np.zeros((slots, 1, 1, 3), np.uint8)
        fmask = np.zeros(slots, bool)
    else:
        pick = np.linspace(0, len(frames) - 1, slots).round().astype(int)
        f, fmask = frames[pick], np.ones(slots, bool)
    a = np.zeros((0, 1), np.float32) if audio is None else audio.reshape(-1, 1).astype(np.float32)
    start_ns, end_ns = int(start_s * 1e9), int(end_s * 1e9)
    utts = [TextUtterance(header=Header(stamp_ns=start_ns), start_ns=start_ns, end_ns=end_ns, text=t, source="test")
            for t in (texts or [])]
    return Window(header=Header(stamp_ns=end_ns), start_ns=start_ns, end_ns=end_ns, sample_rate_hz=16000,
                  frame_encoding="bgr8", utterances=utts,
                  presence={"video": bool(fmask.any()), "audio": a.shape[0] > 0, "text": bool(utts)},
                  coverage={}, frames=f, frame_mask=fmask, frame_stamps_ns=np.zeros(slots, np.int64),
                  audio=a, audio_mask=np.ones(a.shape[0], bool), audio_chunk_stamps_ns=np.zeros(0, np.int64))


def sample_windows(window_s: float = 2.0) -> list[Window]:
    """Consecutive windows over the whole sample, each with its frames, audio and overlapping subtitles."""
    frames, fps, audio, subs = sample_streams()
    duration_s = len(audio) / 16000
    out = []
    t = 0.0
    while t + window_s <= duration_s + 1e-9:
        f = frames[int(t * fps):int((t + window_s) * fps)]
        a = audio[int(t * 16000):int((t + window_s) * 16000)]
        texts = [s for (s0, s1, s) in subs if s0 < t + window_s and s1 > t]
        out.append(make_window(t, t + window_s, frames=f, audio=a, texts=texts))
        t += window_s
    return out
