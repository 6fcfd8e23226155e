"""A generated multimodal benchmark where each modality carries part of the label, plus noise.

Four emotions built from two factors: valence (happy/neutral +, angry/sad -) and arousal
(angry/happy high, sad/neutral low).

- video: a drawn face whose mouth shows the valence (smile / frown); with probability
  ``video_flip`` the face shows the wrong valence; face position, size, colours and pixel noise vary.
  With probability ``face_absent`` no face is drawn (event ``face_present`` off).
- audio: a voiced sound whose pitch, speed and loudness show the arousal (espeak-ng speech with
  varied pitch/speed, or a harmonic tone with a syllable envelope); wrong with probability
  ``audio_flip``; background noise at a random level. With probability ``voice_absent`` only noise
  (event ``speech_present`` off).
- text: a templated sentence naming the emotion with probability ``text_informative``, otherwise a
  neutral sentence; no utterance at all with probability ``text_absent``.

So video alone can reach at best ~(1-flip)/2, audio likewise, text about informative + (1-informative)/4,
and only fusing them recovers the label. Sessions are written as real bags (ImageFrame on
/camera/image, AudioChunk on /microphone/audio, TextUtterance on /text/utterance) with label files,
exactly as a recording made through the pipeline would be, and datasets are built from them through
the synchronizer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmstream.messages import AudioChunk, Header, ImageFrame, TextUtterance
from mmstream.train.labels import NS_PER_S, LabelInterval, write_labels

LABELS = ("angry", "happy", "sad", "neutral")
VALENCE = {"angry": -1, "happy": 1, "sad": -1, "neutral": 1}
AROUSAL = {"angry": 1, "happy": 1, "sad": -1, "neutral": -1}
EVENTS = ("face_present", "speech_present")
WORDS = {
    "angry": ("furious", "angry", "mad", "annoyed"),
    "happy": ("happy", "glad", "delighted", "thrilled"),
    "sad": ("sad", "miserable", "down", "heartbroken"),
    "neutral": ("fine", "okay", "calm", "alright"),
}
TEMPLATES = ("I am so {w} right now.", "Honestly I feel {w} about this.", "This makes me {w}.",
             "You know, I'm {w} today.", "I really am {w}.")
NEUTRAL_SENTENCES = ("The meeting is at ten.", "We walked to the station.", "Please pass the salt.",
                     "The bus comes every hour.", "It is on the second shelf.", "They painted the door blue.")
#: bag time of the first session (whole seconds, so windows with origin 0 align with segments)
BASE_NS = 1_700_000_000 * NS_PER_S


@dataclass
class SynthConfig:
    sessions: int = 12
    segments_per_session: int = 10
    segment_s: float = 2.0
    fps: int = 8
    frame_size: int = 64
    sample_rate_hz: int = 16000
    chunk_s: float = 0.1
    audio: str = "tone"          # "tone" or "espeak"
    video_flip: float = 0.1
    audio_flip: float = 0.1
    text_informative: float = 0.5
    text_absent: float = 0.2
    face_absent: float = 0.08
    voice_absent: float = 0.08
    pixel_noise: float = 8.0
    seed: int = 0
    labels: tuple[str, ...] = LABELS


@dataclass
class Segment:
    label: str
    start_ns: int
    end_ns: int
    shown_valence: int
    shown_arousal: int
    face: bool
    voice: bool
    text: str | None
    extras: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- drawing
def draw_face(rng: np.random.Generator, size: int, valence: int, present: bool, style: dict) -> np.ndarray:
    import cv2

    img = np.empty((size, size, 3), np.uint8)
    img[:] = style["bg"]
    if present:
        s = size / 64.0
        cx = int(size / 2 + style["dx"] + rng.integers(-1, 2))
        cy = int(size / 2 + style["dy"] + rng.integers(-1, 2))
        r = int(style["r"] * s)
        cv2.ellipse(img, (cx, cy), (r, int(r * 1.15)), 0, 0, 360, style["skin"], -1, cv2.LINE_AA)
        ey, ex = cy - int(0.3 * r), int(0.38 * r)
        # brows: relaxed and raised for positive valence, slanted inwards (frowning) for negative
        tilt = (-2 if valence > 0 else 4) + style["brow"]
        for sx in (-1, 1):
            cv2.circle(img, (cx + sx * ex, ey), max(1, int(0.12 * r)), (30, 30, 30), -1, cv2.LINE_AA)
            inner = (cx + sx * int(0.15 * r), ey - int(0.28 * r) + tilt)
            outer = (cx + sx * int(0.6 * r), ey - int(0.28 * r) - tilt)
            cv2.line(img, inner, outer, (40, 40, 40), max(1, int(1.5 * s)), cv2.LINE_AA)
        my, mw, mh = cy + int(0.45 * r), int(0.55 * r), max(2, int(0.35 * r))
        if valence > 0:  # open smile: a filled lower half-ellipse
            cv2.ellipse(img, (cx, my - mh // 2), (mw, mh), 0, 0, 180, (30, 20, 150), -1, cv2.LINE_AA)
        else:            # frown: a thick upper arc, mouth closed
            cv2.ellipse(img, (cx, my + mh // 2), (mw, mh), 0, 190, 350, (30, 20, 150), max(2, int(3 * s)),
                        cv2.LINE_AA)
    noise = rng.normal(0.0, style["noise"], img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def tone(rng: np.random.Generator, arousal: int, n: int, rate: int) -> np.ndarray:
    f0 = rng.uniform(250, 330) if arousal > 0 else rng.uniform(110, 160)
    syll_hz = rng.uniform(4.5, 6.0) if arousal > 0 else rng.uniform(2.0, 3.0)
    t = np.arange(n) / rate
    vib = 1.0 + 0.03 * np.sin(2 * np.pi * 5.0 * t)
    phase = 2 * np.pi * np.cumsum(f0 * vib) / rate
    x = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    env = np.clip(np.sin(2 * np.pi * syll_hz * t + rng.uniform(0, 6.28)), 0, None) ** 0.7
    amp = rng.uniform(0.3, 0.5) if arousal > 0 else rng.uniform(0.15, 0.3)
    return (amp * env * x / 1.8).astype(np.float32)


def espeak(text: str, arousal: int, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """espeak-ng speech with arousal-dependent pitch/speed/amplitude, resampled and fit to n samples."""
    import soundfile as sf

    from mmstream.preprocess.logmel import resample_linear

    pitch = int(rng.integers(70, 95)) if arousal > 0 else int(rng.integers(5, 30))
    speed = int(rng.integers(190, 240)) if arousal > 0 else int(rng.integers(110, 140))
    amp = int(rng.integers(150, 200)) if arousal > 0 else int(rng.integers(60, 100))
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", "en", "-p", str(pitch), "-s", str(speed), "-a", str(amp),
                        "-w", tmp.name, text], check=True, capture_output=True, timeout=30)
        data, sr = sf.read(tmp.name, dtype="float32")
    if data.ndim > 1:
        data = data.mean(axis=1)
    data = resample_linear(data, sr, rate)
    out = np.zeros(n, np.float32)
    out[: min(n, data.size)] = data[:n]
    return out


# --------------------------------------------------------------------------- sessions
def plan_session(cfg: SynthConfig, rng: np.random.Generator, start_ns: int) -> list[Segment]:
    seg_ns = int(round(cfg.segment_s * NS_PER_S))
    segs = []
    for k in range(cfg.segments_per_session):
        label = cfg.labels[int(rng.integers(len(cfg.labels)))]
        val = VALENCE.get(label, 1) * (-1 if rng.random() < cfg.video_flip else 1)
        aro = AROUSAL.get(label, 1) * (-1 if rng.random() < cfg.audio_flip else 1)
        if rng.random() < cfg.text_absent:
            text = None
        elif rng.random() < cfg.text_informative:
            w = WORDS.get(label, (label,))
            text = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(w=w[int(rng.integers(len(w)))])
        else:
            text = NEUTRAL_SENTENCES[int(rng.integers(len(NEUTRAL_SENTENCES)))]
        s = start_ns + k * seg_ns
        segs.append(Segment(label, s, s + seg_ns, val, aro, rng.random() >= cfg.face_absent,
                            rng.random() >= cfg.voice_absent, text))
    return segs


def session_streams(cfg: SynthConfig, segs: list[Segment], rng: np.random.Generator):
    """Yield (topic, message) in stamp order for one session."""
    rate = cfg.sample_rate_hz
    start, end = segs[0].start_ns, segs[-1].end_ns
    n_total = (end - start) * rate // NS_PER_S
    audio = rng.normal(0.0, 1.0, n_total).astype(np.float32) * np.float32(rng.uniform(0.005, 0.03))
    for seg in segs:
        a = (seg.start_ns - start) * rate // NS_PER_S
        b = (seg.end_ns - start) * rate // NS_PER_S
        if seg.voice:
            if cfg.audio == "espeak":
                say = seg.text or NEUTRAL_SENTENCES[int(rng.integers(len(NEUTRAL_SENTENCES)))]
                audio[a:b] += espeak(say, seg.shown_arousal, b - a, rate, rng)
            else:
                audio[a:b] += tone(rng, seg.shown_arousal, b - a, rate)
    out: list[tuple[int, str, object]] = []
    chunk = max(1, int(round(cfg.chunk_s * rate)))
    for i in range(0, n_total, chunk):
        stamp = start + i * NS_PER_S // rate
        out.append((stamp, "/microphone/audio", AudioChunk(header=Header(stamp_ns=stamp, frame_id="mic"),
                                                           sample_rate_hz=rate, channels=1,
                                                           samples=audio[i:i + chunk, None].copy())))
    period_ns = NS_PER_S // cfg.fps
    seg_i = 0
    # one person in one room per session: background, skin and face size are the session's;
    # position and brow jitter change per segment
    person = {"bg": tuple(int(c) for c in rng.integers(60, 200, 3)),
              "skin": tuple(int(c) for c in rng.integers(120, 240, 3)),
              "r": int(rng.integers(17, 22)), "noise": cfg.pixel_noise}
    for j in range((end - start) // period_ns):
        stamp = start + j * period_ns
        while segs[seg_i].end_ns <= stamp:
            seg_i += 1
        seg = segs[seg_i]
        if seg.extras.get("style") is None:
            seg.extras["style"] = {**person, "dx": int(rng.integers(-5, 6)), "dy": int(rng.integers(-4, 5)),
                                   "brow": int(rng.integers(-1, 2))}
        style = seg.extras["style"]
        img = draw_face(rng, cfg.frame_size, seg.shown_valence, seg.face, style)
        out.append((stamp, "/camera/image", ImageFrame(header=Header(stamp_ns=stamp, frame_id="cam"),
                                                       encoding="bgr8", height=img.shape[0], width=img.shape[1],
                                                       data=img)))
    for seg in segs:
        if seg.text is not None:
            # published when the utterance starts (a subtitle / transcript source)
            out.append((seg.start_ns, "/text/utterance",
                        TextUtterance(header=Header(stamp_ns=seg.start_ns, frame_id="text"),
                                      start_ns=seg.start_ns, end_ns=seg.end_ns, text=seg.text, source="synthetic")))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def generate(out_dir: str | Path, cfg: SynthConfig = SynthConfig(), *, progress: bool = False) -> dict:
    """Write ``sessions/<name>.mcap`` and ``labels/<name>.csv`` per session and ``manifest.json``.

    The manifest lists {bag, labels, session, speaker} per session (the dataset builder's input).
    """
    from mmstream.bag.writer import BagWriter

    if cfg.audio == "espeak" and shutil.which("espeak-ng") is None:
        from mmstream.errors import MmstreamError

        raise MmstreamError("synthetic benchmark: audio='espeak' needs the espeak-ng program on PATH")
    out = Path(out_dir)
    (out / "sessions").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    entries = []
    it = range(cfg.sessions)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="generate sessions", unit="session")
    for k in it:
        name = f"spk{k:02d}"
        seg_span = int(round(cfg.segments_per_session * cfg.segment_s + 10)) * NS_PER_S
        segs = plan_session(cfg, rng, BASE_NS + k * seg_span)
        bag = out / "sessions" / f"{name}.mcap"
        with BagWriter(bag, metadata={"synthetic": {"config": json.dumps(asdict(cfg))}}) as w:
            for stamp, topic, msg in session_streams(cfg, segs, rng):
                w.write(topic, msg, log_time_ns=stamp)
        intervals = [LabelInterval(s.start_ns, s.end_ns, s.label, name, name) for s in segs]
        intervals += [LabelInterval(s.start_ns, s.end_ns, "face_present", name, name, "events") for s in segs if s.face]
        intervals += [LabelInterval(s.start_ns, s.end_ns, "speech_present", name, name, "events")
                      for s in segs if s.voice]
        labels = write_labels(out / "labels" / f"{name}.csv", intervals)
        entries.append({"bag": str(bag.relative_to(out)), "labels": str(labels.relative_to(out)),
                        "session": name, "speaker": name})
    manifest = {"recordings": entries, "emotion_labels": list(cfg.labels), "event_labels": list(EVENTS),
                "synthetic": asdict(cfg)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
