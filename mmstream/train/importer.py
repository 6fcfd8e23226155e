"""Import a folder of audio-visual clips (RAVDESS / CREMA-D naming, or a CSV) into bags + labels.

Each clip becomes one bag (``sessions/<clip>.mcap``: ImageFrame on /camera/image, AudioChunk on
/microphone/audio, and its transcript as a TextUtterance on /text/utterance) and one label file
(``labels/<clip>.csv``: one interval spanning the clip). ``manifest.json`` lists them with the clip as
session and the actor as speaker, ready for ``build_dataset`` (and splits by speaker).

Schemes (label from the file name):

- ``ravdess``: ``MM-VC-EE-II-SS-RR-AA.mp4`` — modality (01 full AV, 02 video only, 03 audio only),
  vocal channel (01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry,
  06 fearful, 07 disgust, 08 surprised), intensity, statement (01 "Kids are talking by the door",
  02 "Dogs are sitting by the door"), repetition, actor (01-24).
- ``cremad``: ``AAAA_SSS_EEE_LL.flv`` — actor id, sentence code (IEO, TIE, ...), emotion
  (ANG, DIS, FEA, HAP, NEU, SAD), level (LO, MD, HI, XX).
- ``csv``: a CSV with ``file,label`` and optional ``speaker,transcript`` columns.

A ``<clip>.txt`` next to a clip overrides the transcript. Video is decoded with OpenCV (frames
resized to ``max_width``), audio extracted with ffmpeg to mono ``sample_rate_hz`` PCM. Clip k's bag
time starts at ``BASE + k·(longest clip + gap)`` so stamps never collide across clips.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from mmstream.errors import MmstreamError
from mmstream.messages import AudioChunk, Header, ImageFrame, TextUtterance
from mmstream.train.labels import NS_PER_S, LabelInterval, write_labels

log = logging.getLogger("mmstream.train.importer")

VIDEO_EXTS = (".mp4", ".flv", ".avi", ".mkv", ".mov", ".webm")
BASE_NS = 1_600_000_000 * NS_PER_S
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
                    "07": "disgust", "08": "surprise"}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock.", "TIE": "That is exactly what happened.", "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.", "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.", "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.", "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.", "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
SCHEMES = ("ravdess", "cremad", "csv")


class ClipImportError(MmstreamError):
    """A clip folder cannot be imported (unknown naming, unreadable clip, missing tool)."""


@dataclass
class Clip:
    path: Path
    label: str
    speaker: str
    transcript: str = ""
    details: dict | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def parse_ravdess(name: str, *, calm_as: str = "neutral") -> dict:
    """Fields of a RAVDESS file stem; ClipImportError if it does not follow the scheme."""
    parts = name.split("-")
    if len(parts) != 7 or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise ClipImportError(f"RAVDESS name {name!r}: expected 7 two-digit fields MM-VC-EE-II-SS-RR-AA")
    mod, vc, emo, inten, stmt, rep, actor = parts
    if emo not in RAVDESS_EMOTIONS:
        raise ClipImportError(f"RAVDESS name {name!r}: emotion code {emo} not one of {sorted(RAVDESS_EMOTIONS)}")
    label = RAVDESS_EMOTIONS[emo]
    if label == "calm" and calm_as:
        label = calm_as
    return {"label": label, "speaker": f"actor{actor}", "transcript": RAVDESS_STATEMENTS.get(stmt, ""),
            "modality": mod, "vocal_channel": "speech" if vc == "01" else "song", "intensity": inten,
            "repetition": rep, "emotion_code": emo}


def parse_cremad(name: str) -> dict:
    parts = name.split("_")
    if len(parts) != 4 or not parts[0].isdigit():
        raise ClipImportError(f"CREMA-D name {name!r}: expected ActorID_Sentence_Emotion_Level (e.g. 1001_DFA_ANG_XX)")
    actor, sentence, emo, level = parts
    if emo not in CREMAD_EMOTIONS:
        raise ClipImportError(f"CREMA-D name {name!r}: emotion code {emo} not one of {sorted(CREMAD_EMOTIONS)}")
    return {"label": CREMAD_EMOTIONS[emo], "speaker": f"actor{actor}",
            "transcript": CREMAD_SENTENCES.get(sentence, ""), "sentence": sentence, "level": level}


def find_clips(src: str | Path, scheme: str, *, labels_csv: str | Path | None = None,
               calm_as: str = "neutral", skip_bad: bool = True) -> list[Clip]:
    """Clips under ``src`` (recursively) with labels from their names or the CSV."""
    src = Path(src)
    if not src.is_dir():
        raise ClipImportError(f"clip folder {src} does not exist")
    if scheme not in SCHEMES:
        raise ClipImportError(f"import scheme {scheme!r} not one of {SCHEMES}")
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file())
    clips: list[Clip] = []
    if scheme == "csv":
        if labels_csv is None:
            raise ClipImportError("scheme 'csv' needs --labels-csv FILE (columns file,label[,speaker,transcript])")
        by_name = {p.name: p for p in files} | {p.stem: p for p in files}
        with open(labels_csv, newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.DictReader(fh), 2):
                f = (row.get("file") or "").strip()
                path = by_name.get(f) or by_name.get(Path(f).name) or by_name.get(Path(f).stem)
                if path is None:
                    raise ClipImportError(f"{labels_csv} line {n}: clip {f!r} not found under {src}")
                if not (row.get("label") or "").strip():
                    raise ClipImportError(f"{labels_csv} line {n}: empty label")
                clips.append(Clip(path, row["label"].strip(), (row.get("speaker") or path.stem).strip(),
                                  (row.get("transcript") or "").strip()))
    else:
        for p in files:
            try:
                d = parse_ravdess(p.stem, calm_as=calm_as) if scheme == "ravdess" else parse_cremad(p.stem)
            except ClipImportError as exc:
                if not skip_bad:
                    raise
                log.warning("skipping %s: %s", p, exc)
                continue
            if scheme == "ravdess" and d["modality"] == "03":
                log.warning("skipping %s: RAVDESS audio-only file (modality 03) has no video", p)
                continue
            clips.append(Clip(p, d.pop("label"), d.pop("speaker"), d.pop("transcript"), d))
    for c in clips:
        side = c.path.with_suffix(".txt")
        if side.exists():
            c.transcript = side.read_text(encoding="utf-8").strip()
    if not clips:
        raise ClipImportError(f"no {scheme} clips found under {src} (extensions {VIDEO_EXTS})")
    return clips


def extract_audio(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 samples of the clip's first audio stream (empty if it has none)."""
    if shutil.which("ffmpeg") is None:
        raise ClipImportError("the ffmpeg program is needed to extract audio from clips (apt install ffmpeg)")
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vn", "-ac", "1", "-ar", str(sample_rate_hz),
           "-f", "f32le", "-"]
    res = subprocess.run(cmd, capture_output=True, timeout=300)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace")
        if "does not contain any stream" in err or "Output file #0 does not contain" in err or \
                "matches no streams" in err:
            return np.zeros(0, np.float32)
        raise ClipImportError(f"ffmpeg cannot extract audio from {path}: {err.strip()[-300:]}")
    return np.frombuffer(res.stdout, np.float32).copy()


def read_frames(path: Path, max_width: int, fps: float = 0.0) -> tuple[list[np.ndarray], list[int]]:
    """BGR frames (resized so width <= max_width) and their times in ns from the clip start.

    ``fps`` > 0 keeps about that many frames per second (the rest are skipped, not decoded twice)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ClipImportError(f"OpenCV cannot open video {path}")
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames, times = [], []
    k = 0
    next_keep_ns = 0
    step_ns = int(NS_PER_S / fps) if fps > 0 else 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            t_ns = int(round(k * NS_PER_S / native))
            k += 1
            if step_ns and t_ns < next_keep_ns:
                continue
            next_keep_ns = t_ns + step_ns
            h, w = img.shape[:2]
            if w > max_width:
                img = cv2.resize(img, (max_width, int(round(h * max_width / w))), interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(img))
            times.append(t_ns)
    finally:
        cap.release()
    return frames, times


def clip_messages(clip: Clip, start_ns: int, *, sample_rate_hz: int, chunk_s: float, max_width: int,
                  fps: float) -> tuple[list[tuple[int, str, object]], int]:
    """(stamp, topic, message) of one clip on the bag clock, and the clip's duration in ns."""
    frames, times = read_frames(clip.path, max_width, fps)
    audio = extract_audio(clip.path, sample_rate_hz)
    if not frames and audio.size == 0:
        raise ClipImportError(f"clip {clip.path}: neither video frames nor audio could be read")
    dur_ns = max((times[-1] + NS_PER_S // 25) if times else 0, audio.size * NS_PER_S // sample_rate_hz)
    out: list[tuple[int, str, object]] = []
    for img, t in zip(frames, times):
        s = start_ns + t
        out.append((s, "/camera/image", ImageFrame(header=Header(stamp_ns=s, frame_id="camera"), encoding="bgr8",
                                                   height=img.shape[0], width=img.shape[1], data=img)))
    chunk = max(1, int(round(chunk_s * sample_rate_hz)))
    for i in range(0, audio.size, chunk):
        s = start_ns + i * NS_PER_S // sample_rate_hz
        out.append((s, "/microphone/audio", AudioChunk(header=Header(stamp_ns=s, frame_id="microphone"),
                                                       sample_rate_hz=sample_rate_hz, channels=1,
                                                       samples=audio[i:i + chunk, None].copy())))
    if clip.transcript:
        out.append((start_ns, "/text/utterance",
                    TextUtterance(header=Header(stamp_ns=start_ns, frame_id="transcript"), start_ns=start_ns,
                                  end_ns=start_ns + dur_ns, text=clip.transcript, source="transcript")))
    out.sort(key=lambda x: (x[0], x[1]))
    return out, dur_ns


def import_clips(src: str | Path, out_dir: str | Path, scheme: str, *, labels_csv: str | Path | None = None,
                 sample_rate_hz: int = 16000, chunk_s: float = 0.1, max_width: int = 320, fps: float = 0.0,
                 calm_as: str = "neutral", progress: bool = False) -> dict:
    """Write one bag + label file per clip and ``manifest.json``; returns the manifest."""
    from mmstream.bag.writer import BagWriter

    clips = find_clips(src, scheme, labels_csv=labels_csv, calm_as=calm_as)
    out = Path(out_dir)
    (out / "sessions").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    entries = []
    start_ns = BASE_NS
    it: Iterable[Clip] = clips
    if progress:
        from tqdm import tqdm

        it = tqdm(clips, desc=f"import {scheme}", unit="clip")
    for clip in it:
        msgs, dur_ns = clip_messages(clip, start_ns, sample_rate_hz=sample_rate_hz, chunk_s=chunk_s,
                                     max_width=max_width, fps=fps)
        bag = out / "sessions" / f"{clip.name}.mcap"
        meta = {"import": {"source": str(clip.path), "scheme": scheme, "label": clip.label, "speaker": clip.speaker,
                           "transcript": clip.transcript, "details": json.dumps(clip.details or {})}}
        with BagWriter(bag, metadata=meta) as w:
            for stamp, topic, msg in msgs:
                w.write(topic, msg, log_time_ns=stamp)
        labels = write_labels(out / "labels" / f"{clip.name}.csv",
                              [LabelInterval(start_ns, start_ns + dur_ns, clip.label, clip.name, clip.speaker)])
        entries.append({"bag": str(bag.relative_to(out)), "labels": str(labels.relative_to(out)),
                        "session": clip.name, "speaker": clip.speaker, "duration_s": dur_ns / NS_PER_S})
        # next clip starts on a whole second after this one (plus a gap), so window grids line up
        start_ns = ((start_ns + dur_ns) // NS_PER_S + 2) * NS_PER_S
    manifest = {"recordings": entries, "emotion_labels": sorted({c.label for c in clips}), "event_labels": [],
                "import": {"source": str(src), "scheme": scheme, "clips": len(clips)}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
