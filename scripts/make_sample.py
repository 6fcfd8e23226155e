#!/usr/bin/env python3
"""Make the demo sample: a real face on video, synthesized speech, and its subtitles.

Writes into mmstream/data/ (or --out DIR):
  sample.mp4  640×480 30 fps H.264, the smiling astronaut photo that scikit-image ships
              (skimage.data.astronaut(), public domain, NASA) animated by slow pans and zooms;
              the face stays in view the whole time
  sample.wav  16 kHz mono 16-bit speech from espeak-ng (positive sentences), with pauses
  sample.srt  the sentences with their start/end times in sample.wav
  sample.json what was made: durations, sentence times, tool versions, the expected label

The sample shows a happy person saying happy things: the default model's top label on it is
"happy". Needs ffmpeg, espeak-ng, scikit-image, opencv. Deterministic apart from encoder versions.
Usage: python scripts/make_sample.py [--out DIR] [--seconds-lead 0.6]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

SENTENCES = (
    "Hello! I am so happy to see you today.",
    "This is a wonderful day, and everything works great.",
    "Thank you, I love it!",
)
SAMPLE_RATE_HZ = 16000
FPS = 30
WIDTH, HEIGHT = 640, 480
FACE_CENTER_XY = (224.0, 113.0)  # astronaut face centre in the 512×512 photo


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"make_sample: {cmd[0]} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return proc


def synthesize(sentence: str, tmp: Path) -> np.ndarray:
    """espeak-ng -> float32 mono at 16 kHz (espeak-ng writes 22.05 kHz; ffmpeg resamples)."""
    raw = tmp / "s.wav"
    _run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), sentence])
    out = tmp / "s16k.wav"
    _run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(raw), "-ac", "1", "-ar", str(SAMPLE_RATE_HZ),
          "-sample_fmt", "s16", str(out)])
    audio, sr = sf.read(out, dtype="float32")
    assert sr == SAMPLE_RATE_HZ
    return audio


def make_audio(tmp: Path, lead_s: float, gap_s: float) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    parts = [np.zeros(int(lead_s * SAMPLE_RATE_HZ), np.float32)]
    times: list[tuple[float, float, str]] = []
    t = lead_s
    for sentence in SENTENCES:
        speech = synthesize(sentence, tmp)
        times.append((t, t + len(speech) / SAMPLE_RATE_HZ, sentence))
        parts += [speech, np.zeros(int(gap_s * SAMPLE_RATE_HZ), np.float32)]
        t += (len(speech) + int(gap_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return np.concatenate(parts), times


def srt_time(t_s: float) -> str:
    ms = int(round(t_s * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def frame_at(photo_bgr: np.ndarray, t_s: float, duration_s: float) -> np.ndarray:
    """A 640×480 view of the photo: zoom 1.0..1.7 and a slow orbit around the face."""
    phase = 2 * math.pi * t_s / duration_s
    zoom = 1.35 - 0.35 * math.cos(phase)
    cx = FACE_CENTER_XY[0] + 40 * math.sin(phase) / zoom
    cy = FACE_CENTER_XY[1] + 60 + 20 * math.sin(2 * phase) / zoom
    h_img, w_img = photo_bgr.shape[:2]
    cw = w_img / zoom
    ch = cw * HEIGHT / WIDTH
    x0 = min(max(cx - cw / 2, 0.0), w_img - cw)
    y0 = min(max(cy - ch / 2, 0.0), h_img - ch)
    # affine map from the crop to the output: sub-pixel smooth pans, no jitter
    s = WIDTH / cw
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
    return cv2.warpAffine(photo_bgr, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_video(path: Path, duration_s: float) -> int:
    from skimage import data

    photo_bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    n = int(round(duration_s * FPS))
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{WIDTH}x{HEIGHT}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "medium", "-crf", "26", "-pix_fmt", "yuv420p",
           "-g", str(FPS), "-movflags", "+faststart", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    for i in range(n):
        proc.stdin.write(frame_at(photo_bgr, i / FPS, duration_s).tobytes())
    proc.stdin.close()
    if proc.wait(timeout=120) != 0:
        raise SystemExit(f"make_sample: ffmpeg failed: {proc.stderr.read().decode()[-800:]}")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mmstream" / "data")
    ap.add_argument("--seconds-lead", type=float, default=0.6, help="silence before the first sentence")
    ap.add_argument("--seconds-gap", type=float, default=0.7, help="silence between sentences")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        audio, times = make_audio(Path(tmp), args.seconds_lead, args.seconds_gap)
    duration_s = len(audio) / SAMPLE_RATE_HZ
    sf.write(args.out / "sample.wav", audio, SAMPLE_RATE_HZ, subtype="PCM_16")
    with open(args.out / "sample.srt", "w") as f:
        for i, (t0, t1, text) in enumerate(times, 1):
            f.write(f"{i}\n{srt_time(t0)} --> {srt_time(t1)}\n{text}\n\n")
    frames = make_video(args.out / "sample.mp4", duration_s)
    espeak = _run(["espeak-ng", "--version"]).stdout.decode().strip()
    meta = {"duration_s": round(duration_s, 3), "video": {"file": "sample.mp4", "fps": FPS, "frames": frames,
                                                         "width": WIDTH, "height": HEIGHT,
                                                         "source": "skimage.data.astronaut() (public domain, NASA)"},
            "audio": {"file": "sample.wav", "sample_rate_hz": SAMPLE_RATE_HZ, "voice": "espeak-ng en-us",
                      "tool": espeak},
            "text": {"file": "sample.srt", "sentences": [{"start_s": round(a, 3), "end_s": round(b, 3), "text": t}
                                                        for a, b, t in times]},
            "expected_top_label": "happy"}
    (args.out / "sample.json").write_text(json.dumps(meta, indent=2) + "\n")
    for name in ("sample.mp4", "sample.wav", "sample.srt", "sample.json"):
        print(f"{args.out / name}  {(args.out / name).stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
