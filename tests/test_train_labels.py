"""Label files (CSV / JSON lines) and the window -> label rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmstream.train.labels import LabelError, LabelInterval, LabelTrack, read_labels, write_labels

S = 1_000_000_000


def test_csv_seconds_and_jsonl_ns_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("start_s,end_s,label,session,speaker\n0,1.5,happy,s1,bob\n1.5,3,sad,s1,bob\n")
    (tmp_path / "a.jsonl").write_text('{"start_ns": 0, "end_ns": 1500000000, "label": "happy", "session": "s1", '
                                      '"speaker": "bob"}\n\n{"start_s": 1.5, "end_s": 3, "label": "sad", '
                                      '"session": "s1", "speaker": "bob"}\n')
    a, b = read_labels(tmp_path / "a.csv"), read_labels(tmp_path / "a.jsonl")
    assert a == b
    assert a[0] == LabelInterval(0, 1_500_000_000, "happy", "s1", "bob")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_write_read_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    items = [LabelInterval(1_700_000_000_123_456_789, 1_700_000_001_987_654_321, "angry", "s", "x"),
             LabelInterval(1_700_000_000_000_000_000, 1_700_000_005_000_000_000, "speech_present", "s", "x", "events")]
    path = write_labels(tmp_path / f"l{suffix}", items)
    assert sorted(read_labels(path), key=lambda i: i.start_ns) == sorted(items, key=lambda i: i.start_ns)


@pytest.mark.parametrize("content, needle", [
    ("start_s,end_s,label\n2,1,happy\n", "not after start"),
    ("start_s,end_s,label\n0,1,\n", "empty label"),
    ("start_s,end_s,lbl\n0,1,x\n", "no 'label' column"),
    ("start_s,end_s,label\n0,2,happy\n1,3,sad\n", "overlap"),
    ("start_s,end_s,label,task\n0,2,happy,bogus\n", "task"),
    ("start_s,end_s,label\nzero,2,happy\n", "bad time"),
])
def test_bad_label_files_name_file_and_line(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(LabelError) as err:
        read_labels(p)
    assert needle in str(err.value) and "bad.csv" in str(err.value)


def test_window_rule_majority_with_min_overlap() -> None:
    track = LabelTrack([LabelInterval(0, 2 * S, "a"), LabelInterval(2 * S, 3 * S + S // 2, "b"),
                        LabelInterval(5 * S, 6 * S, "c"),
                        LabelInterval(0, 10 * S, "speech_present", task="events")])
    assert track.window_label(0, S) == "a"
    assert track.window_label(S + S // 4, 2 * S + S // 4) == "a"      # 0.75 a, 0.25 b
    assert track.window_label(2 * S - S // 4, 3 * S - S // 4) == "b"  # 0.25 a, 0.75 b
    assert track.window_label(3 * S, 4 * S) == "b"                    # exactly half covered: >= 0.5
    assert track.window_label(3 * S + S // 4, 4 * S + S // 4) is None  # 0.25 covered, rest unlabeled
    assert track.window_label(4 * S, 5 * S) is None
    assert track.window_label(5 * S, 6 * S) == "c"
    assert track.window_events(0, S) == {"speech_present"}
    assert track.window_events(9 * S + S // 2 + 1, 10 * S + S // 2 + 1) == set()
