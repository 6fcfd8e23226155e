"""Datasets from a bag with known labels: windows through the synchronizer, labels exactly as the intervals say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmstream.bag.writer import BagWriter
from mmstream.messages import AudioChunk, Header, ImageFrame, TextUtterance
from mmstream.train.dataset import DatasetError, Recording, WindowDataset, build_dataset
from mmstream.train.labels import LabelInterval, write_labels

S = 1_000_000_000
T0 = 1_700_000_000 * S
FPS = 8
DURATION_S = 9
PRE = {"video": {"frames": 2, "size": 8, "mean": 0.0, "std": 1.0},
       "audio": {"sample_rate_hz": 16000, "n_fft": 400, "hop_length": 320, "n_mels": 8, "n_frames": 50,
                 "f_min_hz": 50.0, "f_max_hz": 7600.0},
       "text": {"max_tokens": 8}}
SYNC = {"window_s": 1.0, "hop_s": 0.5, "frames_per_window": 2, "max_delay_s": 0.2}
# irregular boundaries; a gap (4.6 s .. 6.2 s) that leaves some windows unlabeled
INTERVALS = [LabelInterval(T0, T0 + 2_300_000_000, "happy", "rec", "ann"),
             LabelInterval(T0 + 2_300_000_000, T0 + 4_600_000_000, "sad", "rec", "ann"),
             LabelInterval(T0 + 6_200_000_000, T0 + 9 * S, "angry", "rec", "ann"),
             LabelInterval(T0 + 1 * S, T0 + 3 * S, "speech_present", "rec", "ann", "events")]
UTTERANCES = [(T0 + 500_000_000, T0 + 1_500_000_000, "hello there"), (T0 + 7 * S, T0 + 8 * S, "goodbye now")]


def make_bag(path: Path) -> None:
    with BagWriter(path) as w:
        msgs = []
        for j in range(DURATION_S * FPS):
            t = T0 + j * S // FPS
            img = np.full((8, 8, 3), j % 200, np.uint8)  # the frame index painted into every pixel
            msgs.append((t, "/camera/image", ImageFrame(header=Header(stamp_ns=t), encoding="bgr8", height=8,
                                                        width=8, data=img)))
        for i in range(DURATION_S * 10):
            t = T0 + i * S // 10
            msgs.append((t, "/microphone/audio", AudioChunk(header=Header(stamp_ns=t), sample_rate_hz=16000,
                                                            samples=np.full((1600, 1), 0.1, np.float32))))
        for a, b, text in UTTERANCES:
            utt = TextUtterance(header=Header(stamp_ns=a), start_ns=a, end_ns=b, text=text)
            msgs.append((a, "/text/utterance", utt))
        for t, topic, m in sorted(msgs, key=lambda x: (x[0], x[1])):
            w.write(topic, m, log_time_ns=t)


def expected_label(start: int, end: int) -> str | None:
    best, best_ov = None, 0
    for i in INTERVALS:
        if i.task != "emotion":
            continue
        ov = max(0, min(i.end_ns, end) - max(i.start_ns, start))
        if ov > best_ov:
            best, best_ov = i.label, ov
    return best if best_ov >= 0.5 * (end - start) else None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WindowDataset]:
    d = tmp_path_factory.mktemp("ds")
    make_bag(d / "rec.mcap")
    write_labels(d / "rec.csv", INTERVALS)
    ds = build_dataset([Recording(str(d / "rec.mcap"), str(d / "rec.csv"), "rec", "ann")], d / "cache", sync=SYNC,
                       preprocessing=PRE, emotion_labels=["happy", "sad", "angry"], event_labels=["speech_present"])
    return d, ds


def test_window_labels_exactly_as_the_intervals_say(built: tuple[Path, WindowDataset]) -> None:
    _, ds = built
    stamps = np.asarray(ds.arrays["stamps"])
    # every window of the 0.5 s grid that touches the recording, labeled by the rule, in order
    grid = [(T0 + k * S // 2, T0 + k * S // 2 + S) for k in range(-1, 2 * DURATION_S)]
    want = [(a, b, expected_label(a, b)) for a, b in grid if expected_label(a, b) is not None]
    assert [(int(a), int(b)) for a, b in stamps] == [(a, b) for a, b, _ in want]
    assert [ds.emotion_labels[i] for i in ds.labels] == [lab for _, _, lab in want]
    assert {"happy", "sad", "angry"} == set(lab for _, _, lab in want)
    assert ds.meta["stats"]["unlabeled"] > 0  # the gap's windows were cut but skipped
    ev = np.asarray(ds.arrays["events"])[:, 0]
    for (a, b), e in zip(stamps, ev):
        covered = max(0, min(T0 + 3 * S, int(b)) - max(T0 + S, int(a)))
        assert bool(e) == (covered >= 0.5 * (int(b) - int(a)))


def test_windows_hold_the_frames_and_text_the_synchronizer_cut(built: tuple[Path, WindowDataset]) -> None:
    _, ds = built
    frames = np.asarray(ds.arrays["frames"])  # N×T×3×S×S, normalized with mean 0, std 1: value/255
    mask = np.asarray(ds.arrays["frame_mask"])
    for n, (a, _) in enumerate(np.asarray(ds.arrays["stamps"])):
        for slot, offset_ns in enumerate((S // 4, 3 * S // 4)):  # slot centres of T=2 slots in a 1 s window
            t = int(a) + offset_ns
            j = min(max(0, round((t - T0) * FPS / S)), DURATION_S * FPS - 1)  # nearest frame
            if abs(T0 + j * S // FPS - t) > S // 4:  # beyond the slot tolerance (window / 2T)
                assert mask[n, slot] == 0
                continue
            assert mask[n, slot] == 1
            assert round(float(frames[n, slot, 0, 0, 0]) * 255) == j % 200, (n, slot)
        text = ds.texts[n]
        overlaps = [u for u in UTTERANCES if u[0] < int(a) + S and u[1] > int(a)]
        assert text == " ".join(u[2] for u in overlaps)


def test_cache_is_memory_mapped_and_reused(built: tuple[Path, WindowDataset]) -> None:
    d, ds = built
    assert isinstance(ds.arrays["frames"], np.memmap)
    mtime = (d / "cache" / "meta.json").stat().st_mtime_ns
    rec = [Recording(str(d / "rec.mcap"), str(d / "rec.csv"), "rec", "ann")]
    again = build_dataset(rec, d / "cache", sync=SYNC, preprocessing=PRE, emotion_labels=["happy", "sad", "angry"],
                          event_labels=["speech_present"])
    assert (d / "cache" / "meta.json").stat().st_mtime_ns == mtime and len(again) == len(ds)
    other = build_dataset(rec, d / "cache2", sync={**SYNC, "hop_s": 1.0}, preprocessing=PRE,
                          emotion_labels=["happy", "sad", "angry"])
    assert len(other) < len(ds)


def test_unknown_label_and_missing_bag_are_errors(built: tuple[Path, WindowDataset], tmp_path: Path) -> None:
    d, _ = built
    rec = [Recording(str(d / "rec.mcap"), str(d / "rec.csv"), "rec", "ann")]
    with pytest.raises(DatasetError, match="angry"):
        build_dataset(rec, tmp_path / "c", sync=SYNC, preprocessing=PRE, emotion_labels=["happy", "sad"])
    with pytest.raises(DatasetError, match="nope.mcap"):
        build_dataset([Recording(str(tmp_path / "nope.mcap"), str(d / "rec.csv"))], tmp_path / "c2", sync=SYNC,
                      preprocessing=PRE)
