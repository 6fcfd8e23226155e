"""Label files: time intervals with a label, as CSV or JSON lines.

One interval per row/line::

    start_s,end_s,label[,session][,speaker][,task]        (CSV with a header row)
    {"start_s": 0.0, "end_s": 2.5, "label": "happy", "session": "s01", "speaker": "a1"}   (JSON lines)

Stamps may also be given as integer ``start_ns``/``end_ns``. ``task`` is ``emotion`` (default;
single-label, intervals of one session must not overlap) or ``events`` (multi-label window events such
as ``speech_present``; may overlap). Stamps are on the bag's clock (the synchronizer's node clock).

How a window gets its label (:func:`window_label`): the emotion interval that covers the largest part
of the window wins, if it covers at least ``min_overlap`` of it (default 0.5: strictly more than half
never ties between two non-overlapping intervals); otherwise the window is unlabeled and skipped.
A window gets event ``e`` when an ``e`` interval covers at least ``min_overlap`` of it.
"""

from __future__ import annotations

import csv
import json
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from mmstream.clock import NS_PER_S
from mmstream.errors import MmstreamError
TASKS = ("emotion", "events")


class LabelError(MmstreamError):
    """A label file is missing, malformed, or its intervals contradict each other."""


@dataclass(frozen=True)
class LabelInterval:
    start_ns: int
    end_ns: int
    label: str
    session: str = ""
    speaker: str = ""
    task: str = "emotion"

    def overlap_ns(self, start_ns: int, end_ns: int) -> int:
        return max(0, min(self.end_ns, end_ns) - max(self.start_ns, start_ns))


def _stamp(row: dict, key: str, where: str) -> int:
    if row.get(f"{key}_ns") not in (None, ""):
        return int(row[f"{key}_ns"])
    if row.get(f"{key}_s") not in (None, ""):
        return int(round(float(row[f"{key}_s"]) * NS_PER_S))
    raise LabelError(f"{where}: missing {key}_s or {key}_ns")


def _interval(row: dict, where: str) -> LabelInterval:
    try:
        start, end = _stamp(row, "start", where), _stamp(row, "end", where)
    except ValueError as exc:
        raise LabelError(f"{where}: bad time value ({exc})") from exc
    label = str(row.get("label") or "").strip()
    if not label:
        raise LabelError(f"{where}: empty label")
    if end <= start:
        raise LabelError(f"{where}: end {end} ns is not after start {start} ns")
    task = str(row.get("task") or "emotion").strip()
    if task not in TASKS:
        raise LabelError(f"{where}: task {task!r} not one of {TASKS}")
    return LabelInterval(start, end, label, str(row.get("session") or ""), str(row.get("speaker") or ""), task)


def read_labels(path: str | Path) -> list[LabelInterval]:
    """Intervals of a .csv or .jsonl/.json file, sorted by start; LabelError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"label file {path} does not exist")
    out: list[LabelInterval] = []
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelError(f"label file {path} line {n}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise LabelError(f"label file {path} line {n}: expected an object")
            out.append(_interval(row, f"label file {path} line {n}"))
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "label" not in reader.fieldnames:
            raise LabelError(f"label file {path}: header {reader.fieldnames} has no 'label' column "
                             f"(expected start_s,end_s,label[,session,speaker,task])")
        for n, row in enumerate(reader, 2):
            out.append(_interval(row, f"label file {path} line {n}"))
    else:
        raise LabelError(f"label file {path}: unknown extension (expected .csv or .jsonl)")
    check_intervals(out, str(path))
    return sorted(out, key=lambda i: (i.start_ns, i.end_ns))


def check_intervals(intervals: Iterable[LabelInterval], where: str = "labels") -> None:
    """Emotion intervals of one session must not overlap (a window would have two truths)."""
    by_session: dict[str, list[LabelInterval]] = {}
    for i in intervals:
        if i.task == "emotion":
            by_session.setdefault(i.session, []).append(i)
    for session, items in by_session.items():
        items.sort(key=lambda i: i.start_ns)
        for a, b in zip(items, items[1:]):
            if b.start_ns < a.end_ns:
                raise LabelError(f"{where}: emotion intervals overlap in session {session!r}: "
                                 f"[{a.start_ns}, {a.end_ns}) {a.label!r} and [{b.start_ns}, {b.end_ns}) {b.label!r}")


def write_labels(path: str | Path, intervals: Iterable[LabelInterval]) -> Path:
    """Write intervals as .csv or .jsonl (by extension), stamps in integer ns (exact round trip)."""
    path = Path(path)
    rows = [asdict(i) for i in intervals]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        fields = ["start_ns", "end_ns", "label", "session", "speaker", "task"]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class LabelTrack:
    """Fast window -> label lookup over one session's intervals."""

    def __init__(self, intervals: Iterable[LabelInterval], *, min_overlap: float = 0.5) -> None:
        if not 0.0 < min_overlap <= 1.0:
            raise LabelError(f"min_overlap {min_overlap} must be in (0, 1]")
        items = list(intervals)
        check_intervals(items)
        self.emotion = sorted((i for i in items if i.task == "emotion"), key=lambda i: i.start_ns)
        self.events = sorted((i for i in items if i.task == "events"), key=lambda i: i.start_ns)
        self._starts = [i.start_ns for i in self.emotion]
        self.min_overlap = min_overlap

    def window_label(self, start_ns: int, end_ns: int) -> str | None:
        """Label of the emotion interval covering most of [start, end) if it covers >= min_overlap."""
        need = self.min_overlap * (end_ns - start_ns)
        best, best_ov = None, 0
        k = bisect_right(self._starts, end_ns)
        for i in reversed(self.emotion[:k]):
            ov = i.overlap_ns(start_ns, end_ns)
            if ov > best_ov:
                best, best_ov = i, ov
            if i.end_ns <= start_ns:
                break  # non-overlapping and sorted: every earlier interval ends earlier still
        if best is None or best_ov < need:
            return None
        return best.label

    def window_events(self, start_ns: int, end_ns: int) -> set[str]:
        need = self.min_overlap * (end_ns - start_ns)
        return {i.label for i in self.events if i.overlap_ns(start_ns, end_ns) >= need}


def window_label(intervals: Iterable[LabelInterval], start_ns: int, end_ns: int,
                 min_overlap: float = 0.5) -> str | None:
    return LabelTrack(intervals, min_overlap=min_overlap).window_label(start_ns, end_ns)
