#!/usr/bin/env python3
"""Make the demo bag mmstream/data/sample.mcap from the raw sample media.

Reads sample.mp4 (camera), sample.wav (microphone) and sample.srt (text) from mmstream/data/
(made by scripts/make_sample.py) — or, with --synthetic or when they are missing, an ffmpeg
testsrc clip, an espeak-ng wav and a small .srt made here — and writes a ROS 2 MCAP bag:

  /camera/image      sensor_msgs/msg/CompressedImage  JPEG, downscaled (default 320x240, quality 80)
  /microphone/audio  mmstream_msgs/msg/AudioChunk     16 kHz mono S16LE, 20 ms chunks
  /text/utterance    mmstream_msgs/msg/TextUtterance  one per subtitle

Stamps start at a fixed epoch so the bag is reproducible. Log times are when each message would
have been available live: a frame at its stamp, an audio chunk at its last sample, an utterance
when it ends. Keep it a few MB. Usage: python scripts/make_sample_bag.py [--out FILE] [--synthetic]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmstream.bag.writer import BagWriter  # noqa: E402
from mmstream.messages import AudioChunk, Header, ImageFrame, TextUtterance  # noqa: E402

DATA = REPO / "mmstream" / "data"
T0_NS = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
NS = 1_000_000_000


def parse_srt(text: str) -> list[tuple[int, int, str]]:
    """[(start_ns, end_ns, text)] from SubRip text."""
    out = []
    pattern = re.compile(r"(\d+):(\d+):(\d+)[,.](\d+)\s*-->\s*(\d+):(\d+):(\d+)[,.](\d+)")
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        for i, line in enumerate(lines):
            m = pattern.search(line)
            if m:
                g = [int(x) for x in m.groups()]
                start = ((g[0] * 60 + g[1]) * 60 + g[2]) * NS + g[3] * 1_000_000
                end = ((g[4] * 60 + g[5]) * 60 + g[6]) * NS + g[7] * 1_000_000
                out.append((start, end, " ".join(lines[i + 1:])))
                break
    return out


def synthesize(tmp: Path, seconds: float = 6.0) -> tuple[Path, Path, Path]:
    """ffmpeg testsrc video, espeak-ng speech and a matching .srt (when the real sample is missing)."""
    video, wav, srt = tmp / "sample.mp4", tmp / "sample.wav", tmp / "sample.srt"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=640x480:rate=30:d={seconds}",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    sentences = ["Hello! I am so happy to see you today.", "Thank you, I love it!"]
    raw = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), " ... ".join(sentences)], check=True)
    audio, rate = sf.read(raw, dtype="int16")
    audio = audio[:, 0] if audio.ndim > 1 else audio
    # resample to 16 kHz (espeak-ng writes 22050 Hz) by linear interpolation; the demo needs no better
    n16 = int(len(audio) * 16000 / rate)
    audio16 = np.interp(np.arange(n16) * rate / 16000, np.arange(len(audio)), audio).astype(np.int16)
    lead = int(0.5 * 16000)
    total = np.zeros(int(seconds * 16000), np.int16)
    total[lead:lead + min(len(audio16), len(total) - lead)] = audio16[:len(total) - lead]
    sf.write(wav, total, 16000, subtype="PCM_16")
    spoken_s = min(len(audio16) / 16000, seconds - 0.5)
    half = 0.5 + spoken_s / 2
    srt.write_text(f"1\n00:00:00,500 --> 00:00:0{int(half)},{int(half % 1 * 1000):03d}\n{sentences[0]}\n\n"
                   f"2\n00:00:0{int(half)},{int(half % 1 * 1000) + 1:03d} --> 00:00:0{int(0.5 + spoken_s)},"
                   f"{int((0.5 + spoken_s) % 1 * 1000):03d}\n{sentences[1]}\n")
    return video, wav, srt


def make_bag(video: Path, wav: Path, srt: Path, out: Path, *, width: int, height: int, quality: int,
             chunk_s: float = 0.02, info: dict | None = None) -> dict:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"make_sample_bag: cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    audio, rate = sf.read(wav, dtype="int16", always_2d=True)
    utterances = parse_srt(srt.read_text())
    events: list[tuple[int, str, object]] = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        stamp = T0_NS + round(i * NS / fps)
        events.append((stamp, "/camera/image", ImageFrame(Header(stamp, i + 1, "camera"), "jpeg", height, width,
                                                          jpeg.reshape(-1))))
        i += 1
    cap.release()
    block = int(round(chunk_s * rate))
    for k, start in enumerate(range(0, len(audio), block)):
        samples = np.ascontiguousarray(audio[start:start + block])
        stamp = T0_NS + start * NS // rate
        chunk = AudioChunk(Header(stamp, k + 1, "microphone"), int(rate), samples.shape[1], 0, samples)
        events.append((chunk.end_ns, "/microphone/audio", chunk))
    for k, (s, e, text) in enumerate(utterances):
        events.append((T0_NS + e, "/text/utterance", TextUtterance(Header(T0_NS + s, k + 1, "subtitles"), T0_NS + s,
                                                                   T0_NS + e, text, "subtitles", "en")))
    events.sort(key=lambda ev: ev[0])
    meta = {"sample": {"video": video.name, "audio": wav.name, "subtitles": srt.name,
                       "frame_size": f"{width}x{height}", "jpeg_quality": str(quality),
                       "made_by": "scripts/make_sample_bag.py", "info": json.dumps(info or {})}}
    with BagWriter(out, compression="zstd", metadata=meta) as w:
        for log_ns, topic, msg in events:
            w.write(topic, msg, log_ns)
    return {"out": str(out), "frames": i, "audio_chunks": sum(1 for e in events if e[1] == "/microphone/audio"),
            "utterances": len(utterances), "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DATA / "sample.mcap"))
    ap.add_argument("--data", default=str(DATA), help="folder with sample.mp4, sample.wav, sample.srt")
    ap.add_argument("--synthetic", action="store_true", help="use ffmpeg testsrc + espeak-ng instead")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--quality", type=int, default=80)
    args = ap.parse_args(argv)
    data = Path(args.data)
    files = [data / "sample.mp4", data / "sample.wav", data / "sample.srt"]
    with tempfile.TemporaryDirectory() as tmp:
        info = None
        if args.synthetic or not all(f.is_file() for f in files):
            print("make_sample_bag: using synthetic media (ffmpeg testsrc + espeak-ng)", file=sys.stderr)
            files = list(synthesize(Path(tmp)))
        elif (data / "sample.json").is_file():
            info = json.loads((data / "sample.json").read_text())
        result = make_bag(*files, Path(args.out), width=args.width, height=args.height, quality=args.quality,
                          info=info)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
