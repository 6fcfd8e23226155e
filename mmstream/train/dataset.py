"""Training windows built from bags + label files through the live synchronizer and preprocessing.

``build_dataset(recordings, out_dir, sync=..., preprocessing=...)`` replays every bag on its own
clock into :class:`mmstream.sync.WindowSynchronizer` exactly as the synchronizer node does on replay
(each message pushed with ``now_ns`` = its log time, windows polled after each push, the rest
flushed at the end), labels each window from the label file (:class:`LabelTrack`), turns it into
model inputs with the same ``fused_v1`` preprocessor the inference node uses, and writes

    out_dir/frames.npy  frame_mask.npy  logmel.npy  audio_mask.npy  presence.npy   (model inputs)
    out_dir/labels.npy (int64 class index)  events.npy (N×E float32)  stamps.npy (N×2 int64 start/end)
    out_dir/texts.json  (the window's utterance text; tokenized at train time with the model's vocab)
    out_dir/meta.json   (sessions/speakers per window, label sets, sync + preprocessing params, key)

All arrays are opened memory-mapped (:class:`WindowDataset`), so epochs never decode video again.
A second build with the same inputs and parameters reuses the cache (``meta.json["key"]``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mmstream.errors import MmstreamError
from mmstream.messages import AudioChunk, ImageFrame, TextUtterance, Window
from mmstream.train.labels import LabelTrack, read_labels

log = logging.getLogger("mmstream.train.dataset")

CACHE_FORMAT = "mmstream-window-dataset"
CACHE_VERSION = 1
INPUT_ARRAYS = ("frames", "frame_mask", "logmel", "audio_mask", "presence")
DEFAULT_TOPICS = {"video": "/camera/image", "audio": "/microphone/audio", "text": "/text/utterance"}


class DatasetError(MmstreamError):
    """A dataset cannot be built or opened (missing bag/labels, no labeled windows, stale cache)."""


@dataclass
class Recording:
    """One bag and its labels. ``session``/``speaker`` default to the bag's stem."""

    bag: str
    labels: str
    session: str = ""
    speaker: str = ""

    def __post_init__(self) -> None:
        stem = Path(self.bag).stem
        self.session = self.session or stem
        self.speaker = self.speaker or self.session


def read_manifest(path: str | Path) -> list[Recording]:
    """``manifest.json`` ({"recordings": [{bag, labels, session?, speaker?}]}), paths relative to it."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"manifest {path}: cannot read ({exc})") from exc
    recs = doc.get("recordings") if isinstance(doc, dict) else None
    if not isinstance(recs, list) or not recs:
        raise DatasetError(f"manifest {path}: expected {{'recordings': [{{'bag': ..., 'labels': ...}}, ...]}}")
    out = []
    for i, r in enumerate(recs):
        if not isinstance(r, dict) or "bag" not in r or "labels" not in r:
            raise DatasetError(f"manifest {path}: recording {i} needs 'bag' and 'labels'")
        out.append(Recording(str((path.parent / r["bag"]).resolve()), str((path.parent / r["labels"]).resolve()),
                             str(r.get("session", "")), str(r.get("speaker", ""))))
    return out


def sync_config(d: dict[str, Any] | None = None):
    """A SyncConfig from a dict of its fields (ns) or the same names in seconds (``window_s``...)."""
    from mmstream.sync import SyncConfig

    d = dict(d or {})
    names = {f.name for f in fields(SyncConfig)}
    kw: dict[str, Any] = {}
    for k, v in d.items():
        if k in names:
            kw[k] = tuple(v) if isinstance(v, list) else v
        elif k.endswith("_s") and (k[:-2] + "_ns") in names:
            kw[k[:-2] + "_ns"] = int(round(float(v) * 1e9))
        else:
            raise DatasetError(f"sync config: unknown key {k!r} (expected SyncConfig fields, or *_s for *_ns)")
    return SyncConfig(**kw)


def default_preprocessing() -> dict[str, Any]:
    from mmstream.model.config import FusedModelConfig

    return FusedModelConfig().preprocessing_params()


def make_preprocessor(params: dict[str, Any], workdir: Path):
    """The live ``fused_v1`` preprocessor for these params (a stand-in vocab; tokens are made later)."""
    from mmstream.preprocess import get_preprocessor
    from mmstream.preprocess.tokenizer import Vocab

    Vocab.default().save(workdir / "vocab.txt")
    spec = {"name": "dataset", "preprocessing": {"kind": "fused_v1", "params": params}, "vocab": "vocab.txt",
            "labels": {}}
    return get_preprocessor(spec, workdir)


#: log times further than this from the messages' stamps are not on the stamps' clock
CLOCK_MISMATCH_NS = 5_000_000_000


def bag_windows(bag: str | Path, cfg, *, topics: dict[str, str] | None = None,
                topic_map: dict[str, str] | None = None, clock: str = "auto") -> Iterable[Window]:
    """Windows of one bag, cut by the synchronizer on the bag's clock (as on replay with sim time).

    ``clock``: ``log`` pushes each message at its log time (what the player's /clock replays);
    ``stamp`` uses the newest header stamp seen (for bags whose log times are on another clock, e.g.
    a replay recorded again: log times are the wall clock of that second run); ``auto`` picks ``log``
    unless the median |log time - stamp| of the first messages exceeds 5 s.
    """
    from mmstream.bag.reader import BagReader
    from mmstream.sync import WindowSynchronizer

    if clock not in ("auto", "log", "stamp"):
        raise DatasetError(f"bag {bag}: clock {clock!r} not one of auto, log, stamp")
    topics = {**DEFAULT_TOPICS, **(topics or {})}
    want = {topics[m]: cls for m, cls in (("video", ImageFrame), ("audio", AudioChunk), ("text", TextUtterance))}
    reader = BagReader(bag, topic_map=topic_map)
    sync = WindowSynchronizer(cfg)
    last_ns = None
    head: list = []
    mode = None if clock == "auto" else clock
    it = iter(reader.messages(topics=list(want)))

    def stream():
        yield from head
        yield from it

    if mode is None:
        for bm in it:
            head.append(bm)
            if len(head) >= 64:
                break
        offsets = [bm.log_time_ns - bm.msg.header.stamp_ns for bm in head if bm.msg.header.stamp_ns]
        mode = "stamp" if offsets and abs(float(np.median(offsets))) > CLOCK_MISMATCH_NS else "log"
        if mode == "stamp":
            log.warning("bag %s: log times are %.0f s away from the message stamps (recorded from a replay?): "
                        "windows follow the stamps", bag, float(np.median(offsets)) / 1e9)
    for bm in stream():
        cls = want.get(bm.out_topic) or want.get(bm.topic)
        if cls is None or not isinstance(bm.msg, cls):
            continue
        now = bm.log_time_ns if mode == "log" else bm.msg.header.stamp_ns
        last_ns = now if last_ns is None else max(last_ns, now)
        sync.push(bm.msg, last_ns)
        yield from sync.poll(last_ns)
    if last_ns is not None:
        yield from sync.poll(last_ns + cfg.window_ns + cfg.hop_ns + cfg.max_delay_ns + cfg.liveness_timeout_ns + 1)
    for p in reader.problems:
        log.warning("%s", p)


def window_text(w: Window) -> str:
    return " ".join(u.text for u in sorted(w.utterances, key=lambda u: u.start_ns) if u.text)


class _Appender:
    """Append rows to raw files, then turn them into .npy files (streamed copy, flat memory)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: dict[str, Any] = {}
        self.shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self.rows = 0

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        n = None
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            n = a.shape[0] if n is None else n
            if name not in self.files:
                self.files[name] = open(self.out / f"{name}.bin", "wb")
                self.shapes[name] = (a.shape[1:], a.dtype)
            self.files[name].write(a.tobytes())
        self.rows += n or 0

    def finish(self) -> None:
        for name, fh in self.files.items():
            fh.close()
            shape, dtype = self.shapes[name]
            arr = np.lib.format.open_memmap(self.out / f"{name}.npy", mode="w+", dtype=dtype,
                                            shape=(self.rows, *shape))
            flat = arr.reshape(self.rows, -1) if self.rows else arr
            row_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            with open(self.out / f"{name}.bin", "rb") as src:
                if row_bytes == 0:  # e.g. N×0 events when no event labels
                    step = self.rows or 1
                    flat = arr[:0]
                step = max(1, (64 << 20) // max(1, row_bytes))
                for i in range(0, self.rows if row_bytes else 0, step):
                    block = np.frombuffer(src.read(row_bytes * min(step, self.rows - i)), dtype=dtype)
                    flat[i:i + step] = block.reshape(-1, flat.shape[1]) if flat.ndim > 1 else block
            arr.flush()
            del arr, flat
            (self.out / f"{name}.bin").unlink()


def _file_key(path: str) -> list[Any]:
    p = Path(path)
    st = p.stat() if p.exists() else None
    return [str(p), st.st_size if st else None, st.st_mtime_ns if st else None]


def build_dataset(recordings: Sequence[Recording], out_dir: str | Path, *, sync: dict[str, Any] | None = None,
                  preprocessing: dict[str, Any] | None = None, emotion_labels: Sequence[str] | None = None,
                  event_labels: Sequence[str] = (), min_overlap: float = 0.5, topics: dict[str, str] | None = None,
                  topic_map: dict[str, str] | None = None, batch_size: int = 32, force: bool = False,
                  progress: bool = False, clock: str = "auto") -> "WindowDataset":
    """Build (or reuse) the cached dataset of every labeled window of ``recordings``."""
    if not recordings:
        raise DatasetError("build_dataset: no recordings given")
    out = Path(out_dir)
    cfg = sync_config(sync)
    params = preprocessing or default_preprocessing()
    if params["audio"]["sample_rate_hz"] != cfg.sample_rate_hz:
        log.info("windows carry %d Hz audio, the model wants %d Hz: the preprocessor resamples",
                 cfg.sample_rate_hz, params["audio"]["sample_rate_hz"])
    for r in recordings:
        for what in ("bag", "labels"):
            if not Path(getattr(r, what)).exists():
                raise DatasetError(f"recording {r.session!r}: {what} file {getattr(r, what)} does not exist")
    tracks: dict[str, LabelTrack] = {}
    all_labels: set[str] = set()
    for r in recordings:
        intervals = [i for i in read_labels(r.labels) if not i.session or i.session == r.session]
        if not intervals:
            raise DatasetError(f"label file {r.labels}: no intervals for session {r.session!r}")
        tracks[r.session] = LabelTrack(intervals, min_overlap=min_overlap)
        all_labels |= {i.label for i in intervals if i.task == "emotion"}
    labels = list(emotion_labels) if emotion_labels else sorted(all_labels)
    unknown = all_labels - set(labels)
    if unknown:
        raise DatasetError(f"label files use labels {sorted(unknown)} that are not in the label set {labels}")
    events = list(event_labels)
    key_doc = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "sync": asdict(cfg), "preprocessing": params,
               "labels": labels, "events": events, "min_overlap": min_overlap, "topics": topics or {},
               "topic_map": topic_map or {}, "clock": clock,
               "recordings": [[asdict(r), _file_key(r.bag), _file_key(r.labels)] for r in recordings]}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if not force and (out / "meta.json").exists():
        try:
            meta = json.loads((out / "meta.json").read_text())
            if meta.get("key") == key:
                log.info("dataset %s is up to date (key %s): reused", out, key)
                return WindowDataset(out)
        except (OSError, json.JSONDecodeError):
            pass
    if out.exists():
        shutil.rmtree(out)
    tmp_out = out.with_name(out.name + ".building")
    if tmp_out.exists():
        shutil.rmtree(tmp_out)
    tmp_out.mkdir(parents=True)
    t0 = time.perf_counter()
    label_index = {lab: i for i, lab in enumerate(labels)}
    app = _Appender(tmp_out)
    sessions, speakers, texts = [], [], []
    counts = {"windows": 0, "unlabeled": 0, "recording_s": 0.0}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(recordings), desc="build dataset", unit="bag")
    with tempfile.TemporaryDirectory() as td:
        pre = make_preprocessor(params, Path(td))
        stream = pre.new_stream()  # the face tracker of crop: face runs through the build, in time order
        for r in recordings:
            track = tracks[r.session]
            batch: list[Window] = []
            first = last = None

            def flush(batch: list[Window]) -> None:
                feed, _ = pre.prepare(batch, stream)
                y = np.asarray([label_index[track.window_label(w.start_ns, w.end_ns)] for w in batch], np.int64)
                ev = np.zeros((len(batch), len(events)), np.float32)
                for i, w in enumerate(batch):
                    got = track.window_events(w.start_ns, w.end_ns)
                    ev[i] = [e in got for e in events]
                stamps = np.asarray([[w.start_ns, w.end_ns] for w in batch], np.int64)
                app.add({**{k: feed[k] for k in INPUT_ARRAYS}, "labels": y, "events": ev, "stamps": stamps})
                for w in batch:
                    sessions.append(r.session)
                    speakers.append(r.speaker)
                    texts.append(window_text(w))

            for w in bag_windows(r.bag, cfg, topics=topics, topic_map=topic_map, clock=clock):
                first = w.start_ns if first is None else first
                last = w.end_ns
                counts["windows"] += 1
                if track.window_label(w.start_ns, w.end_ns) is None:
                    counts["unlabeled"] += 1
                    continue
                batch.append(w)
                if len(batch) >= batch_size:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
            if first is not None:
                counts["recording_s"] += (last - first) / 1e9
            if bar is not None:
                bar.update(1)
                bar.set_postfix(windows=app.rows)
    if bar is not None:
        bar.close()
    if app.rows == 0:
        shutil.rmtree(tmp_out)
        raise DatasetError(f"dataset {out}: no labeled windows in {len(recordings)} recordings "
                           f"({counts['windows']} windows, none covered by a label interval >= {min_overlap})")
    app.finish()
    (tmp_out / "texts.json").write_text(json.dumps(texts))
    build_s = time.perf_counter() - t0
    meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "n": app.rows,
            "emotion_labels": labels, "event_labels": events, "sessions": sessions, "speakers": speakers,
            "sync": asdict(cfg), "preprocessing": params, "min_overlap": min_overlap,
            "recordings": [asdict(r) for r in recordings],
            "stats": {**counts, "labeled": app.rows, "build_s": build_s}}
    (tmp_out / "meta.json").write_text(json.dumps(meta, default=str) + "\n")
    tmp_out.replace(out)
    log.info("dataset %s: %d labeled windows (%d unlabeled skipped) from %.1f s of recording in %.1f s",
             out, app.rows, counts["unlabeled"], counts["recording_s"], build_s)
    return WindowDataset(out)


class WindowDataset:
    """A built dataset, memory-mapped. ``feed(idx, vocab, max_tokens)`` gives model inputs for a batch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise DatasetError(f"dataset {self.path}: no meta.json (build it with `mmstream model dataset build`)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != CACHE_FORMAT or self.meta.get("version") != CACHE_VERSION:
            raise DatasetError(f"dataset {self.path}: format {self.meta.get('format')} v{self.meta.get('version')} "
                               f"(expected {CACHE_FORMAT} v{CACHE_VERSION}); rebuild it")
        self.arrays: dict[str, np.ndarray] = {}
        for name in (*INPUT_ARRAYS, "labels", "events", "stamps"):
            f = self.path / f"{name}.npy"
            if not f.exists():
                raise DatasetError(f"dataset {self.path}: {f.name} is missing; rebuild it")
            self.arrays[name] = np.load(f, mmap_mode="r")
        self.texts: list[str] = json.loads((self.path / "texts.json").read_text())
        self.emotion_labels: list[str] = list(self.meta["emotion_labels"])
        self.event_labels: list[str] = list(self.meta["event_labels"])
        self.sessions: list[str] = list(self.meta["sessions"])
        self.speakers: list[str] = list(self.meta["speakers"])
        n = self.meta["n"]
        if any(a.shape[0] != n for a in self.arrays.values()) or len(self.texts) != n:
            raise DatasetError(f"dataset {self.path}: arrays disagree with meta n={n}; rebuild it")

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.arrays["labels"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.meta["preprocessing"]

    def groups(self, by: str = "session") -> list[str]:
        if by == "session":
            return self.sessions
        if by == "speaker":
            return self.speakers
        raise DatasetError(f"split by {by!r}: expected 'session' or 'speaker' (never by window)")

    def feed(self, idx: np.ndarray, vocab, max_tokens: int) -> dict[str, np.ndarray]:
        idx = np.sort(np.asarray(idx, np.int64))
        out = {k: np.asarray(self.arrays[k][idx]) for k in INPUT_ARRAYS}
        out["tokens"] = np.stack([vocab.encode(self.texts[i], max_tokens) for i in idx]) if len(idx) else \
            np.zeros((0, max_tokens), np.int64)
        out["presence"] = out["presence"].copy()
        out["presence"][:, 2] = out["tokens"].any(axis=1)
        out["labels"] = np.asarray(self.arrays["labels"][idx])
        out["events"] = np.asarray(self.arrays["events"][idx])
        out["index"] = idx
        return out
