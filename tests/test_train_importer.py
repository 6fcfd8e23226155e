"""Importer: RAVDESS / CREMA-D named clips (made here with ffmpeg + espeak-ng) -> bags + labels -> dataset."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mmstream.bag.reader import BagReader
from mmstream.messages import AudioChunk, ImageFrame, TextUtterance
from mmstream.train.dataset import build_dataset, read_manifest
from mmstream.train.importer import ClipImportError, find_clips, import_clips, parse_cremad, parse_ravdess


PRE = {"video": {"frames": 2, "size": 16, "mean": 0.5, "std": 0.25},
       "audio": {"sample_rate_hz": 16000, "n_fft": 400, "hop_length": 320, "n_mels": 16, "n_frames": 50,
                 "f_min_hz": 50.0, "f_max_hz": 7600.0},
       "text": {"max_tokens": 8}}


def make_clip(path: Path, text: str, seconds: float, ext_codec: tuple[str, str]) -> None:
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, timeout=30)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=160x120:rate=10:duration={seconds}", "-i", str(wav), "-shortest",
                    "-c:v", ext_codec[0], "-c:a", "aac", "-ar", "22050", str(path)], check=True, timeout=60)
    wav.unlink()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    (d / "ravdess" / "Actor_01").mkdir(parents=True)
    (d / "ravdess" / "Actor_02").mkdir(parents=True)
    make_clip(d / "ravdess" / "Actor_01" / "01-01-05-01-01-01-01.mp4", "Kids are talking by the door", 2.5,
              ("mpeg4", "aac"))
    make_clip(d / "ravdess" / "Actor_02" / "01-01-03-02-02-01-02.mp4", "Dogs are sitting by the door", 2.5,
              ("mpeg4", "aac"))
    (d / "ravdess" / "notes.mp4").write_bytes(b"")  # wrong name: skipped with a warning
    (d / "cremad").mkdir()
    make_clip(d / "cremad" / "1001_DFA_ANG_XX.flv", "Don't forget a jacket", 2.0, ("flv1", "aac"))
    make_clip(d / "cremad" / "1002_IEO_SAD_HI.flv", "It's eleven o'clock", 2.0, ("flv1", "aac"))
    (d / "cremad" / "1002_IEO_SAD_HI.txt").write_text("it is eleven o'clock, sadly")
    return d


def test_name_parsers() -> None:
    r = parse_ravdess("01-01-06-02-01-02-24")
    assert (r["label"], r["speaker"], r["transcript"]) == ("fear", "actor24", "Kids are talking by the door.")
    assert parse_ravdess("01-01-02-01-01-01-01")["label"] == "neutral"  # calm -> neutral by default
    assert parse_ravdess("01-01-02-01-01-01-01", calm_as="")["label"] == "calm"
    c = parse_cremad("1091_TSI_DIS_LO")
    assert (c["label"], c["speaker"], c["transcript"]) == ("disgust", "actor1091", "The surface is slick.")
    with pytest.raises(ClipImportError, match="7 two-digit"):
        parse_ravdess("01-01-06")
    with pytest.raises(ClipImportError, match="emotion code"):
        parse_cremad("1001_DFA_XYZ_XX")


def test_ravdess_import_to_bags_and_dataset(clips: Path, tmp_path: Path) -> None:
    m = import_clips(clips / "ravdess", tmp_path / "imp", "ravdess", max_width=80)
    assert [(e["session"], e["speaker"]) for e in m["recordings"]] == [
        ("01-01-05-01-01-01-01", "actor01"), ("01-01-03-02-02-01-02", "actor02")]
    assert m["emotion_labels"] == ["angry", "happy"]
    bag = tmp_path / "imp" / m["recordings"][0]["bag"]
    msgs = [b.msg for b in BagReader(bag).messages()]
    frames = [x for x in msgs if isinstance(x, ImageFrame)]
    audio = [x for x in msgs if isinstance(x, AudioChunk)]
    text = [x for x in msgs if isinstance(x, TextUtterance)]
    assert frames[0].width == 80 and frames[0].height == 60  # resized to --max-width, aspect kept
    n_samples = sum(a.num_samples for a in audio)
    seconds = n_samples / 16000  # ffmpeg -shortest cut the clip to the speech
    assert 1.0 < seconds <= 2.6
    assert abs(len(frames) - 10 * seconds) <= 2  # 10 fps video, every frame kept
    stamps = [f.header.stamp_ns for f in frames]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 100_000_000
    assert np.abs(np.concatenate([a.samples for a in audio])).max() > 0.05  # the speech is there
    assert [t.text for t in text] == ["Kids are talking by the door."]
    recs = read_manifest(tmp_path / "imp" / "manifest.json")
    ds = build_dataset(recs, tmp_path / "ds", sync={"window_s": 1.0, "hop_s": 0.5, "frames_per_window": 2},
                       preprocessing=PRE)
    assert ds.emotion_labels == ["angry", "happy"]
    by_session = {s: {ds.emotion_labels[ds.labels[i]] for i in range(len(ds)) if ds.sessions[i] == s}
                  for s in set(ds.sessions)}
    assert by_session == {"01-01-05-01-01-01-01": {"angry"}, "01-01-03-02-02-01-02": {"happy"}}
    assert set(ds.speakers) == {"actor01", "actor02"}
    assert all("door" in t for t in ds.texts)


def test_cremad_import_with_sidecar_transcript(clips: Path, tmp_path: Path) -> None:
    m = import_clips(clips / "cremad", tmp_path / "imp", "cremad", max_width=80, fps=5)
    assert {e["session"] for e in m["recordings"]} == {"1001_DFA_ANG_XX", "1002_IEO_SAD_HI"}
    assert m["emotion_labels"] == ["angry", "sad"]
    bag = tmp_path / "imp" / "sessions" / "1002_IEO_SAD_HI.mcap"
    msgs = [b.msg for b in BagReader(bag).messages()]
    assert [x.text for x in msgs if isinstance(x, TextUtterance)] == ["it is eleven o'clock, sadly"]
    frames = [x for x in msgs if isinstance(x, ImageFrame)]
    seconds = sum(x.num_samples for x in msgs if isinstance(x, AudioChunk)) / 16000
    assert abs(len(frames) - 5 * seconds) <= 2  # --fps 5 keeps every other frame of the 10 fps clip
    line = (tmp_path / "imp" / "labels" / "1002_IEO_SAD_HI.csv").read_text().splitlines()[1]
    assert ",sad,1002_IEO_SAD_HI,actor1002," in line


def test_csv_scheme_and_errors(clips: Path, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,speaker\n1001_DFA_ANG_XX.flv,frustrated,p1\n")
    found = find_clips(clips / "cremad", "csv", labels_csv=csv)
    assert [(c.label, c.speaker, c.transcript) for c in found] == [("frustrated", "p1", "")]
    csv.write_text("file,label\nmissing.mp4,x\n")
    with pytest.raises(ClipImportError, match="missing.mp4"):
        find_clips(clips / "cremad", "csv", labels_csv=csv)
    with pytest.raises(ClipImportError, match="no ravdess clips"):
        find_clips(clips / "cremad", "ravdess")
