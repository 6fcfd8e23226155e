"""What a run writes, and how a re-run finds what is already done.

    OUT/run.json                 what produced it (results key: model hash + parameters), the inputs
    OUT/bags/<stem>-<id>.mcap    per bag: /perception/emotion and /perception/detections (ROS 2 MCAP,
                                 log time = window end, so Foxglove shows them on the bag's timeline)
    OUT/parts/<id>.json          per bag: its status and table rows — written last, atomically: a bag
                                 is done exactly when its part exists (``--resume`` skips it)
    OUT/windows.parquet|.csv     one row per window of every bag of the run
    OUT/bags.parquet|.csv        one row per bag: status, windows, problems, reason, time spent

``<id>`` is the bag's content hash, so a bag renamed or copied is still found, and nothing is
doubled: the tables are rebuilt from the parts of the run's bags every time.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from mmstream.bag.writer import BagWriter
from mmstream.errors import MmstreamError

log = logging.getLogger("mmstream.process.outputs")

RUN_FORMAT = "mmstream-process"
RUN_VERSION = 1
OUR_NAMES = ("run.json", "bags", "parts", "windows.parquet", "windows.csv", "bags.parquet", "bags.csv",
             "report.txt", "report_timeline.png")
#: statuses whose result cannot change on a re-run of the same bytes (resume skips them)
FINAL = ("done", "damaged", "no_topics")
EMOTION_TOPIC = "/perception/emotion"
DETECTIONS_TOPIC = "/perception/detections"


class OutputError(MmstreamError):
    """The output directory cannot be used (other content, another run's parameters)."""


class OutputDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.parts = self.path / "parts"
        self.bags = self.path / "bags"

    def prepare(self, run_doc: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
        """Refuse a directory with other content unless resuming (same key) or overwriting."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputError(f"output {p} exists and is not a directory")
        if p.is_dir() and any(p.iterdir()):
            old = self._read_run()
            if overwrite:
                for name in OUR_NAMES:
                    target = p / name
                    if target.is_dir():
                        shutil.rmtree(target)
                    elif target.exists():
                        target.unlink()
            elif resume:
                if old is None:
                    raise OutputError(f"output {p}: --resume, but it holds no run.json (not a `mmstream process` "
                                      f"output); use another directory or --overwrite")
                if old.get("key") != run_doc["key"]:
                    raise OutputError(f"output {p} was produced with another model or other parameters (key "
                                      f"{old.get('key')}, this run {run_doc['key']}); use --overwrite or another "
                                      f"directory")
            else:
                raise OutputError(f"output {p} exists and is not empty: pass --resume to finish an earlier run "
                                  f"there, or --overwrite to replace its results")
        self.parts.mkdir(parents=True, exist_ok=True)
        self.bags.mkdir(parents=True, exist_ok=True)
        _atomic_text(p / "run.json", json.dumps(run_doc, indent=1, sort_keys=True))

    def _read_run(self) -> dict[str, Any] | None:
        try:
            doc = json.loads((self.path / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return doc if isinstance(doc, dict) and doc.get("format") == RUN_FORMAT else None

    # ---------------------------------------------------------------- per bag
    def part(self, bag_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.parts / f"{bag_id}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def bag_output(self, bag: str, bag_id: str) -> Path:
        return self.bags / f"{Path(bag.rstrip('/')).stem}-{bag_id}.mcap"

    def write_bag(self, bag: str, bag_id: str, estimates: list[Any], detections: list[Any],
                  metadata: dict[str, str]) -> Path:
        out = self.bag_output(bag, bag_id)
        tmp = out.with_suffix(".mcap.partial")
        writer = BagWriter(tmp, metadata={"mmstream_process": metadata})
        try:
            for est, det in zip(estimates, detections):
                writer.write(EMOTION_TOPIC, est, log_time_ns=est.header.stamp_ns)
                if det is not None:
                    writer.write(DETECTIONS_TOPIC, det, log_time_ns=det.header.stamp_ns)
        finally:
            writer.close()
        os.replace(tmp, out)
        return out

    def write_part(self, bag_id: str, doc: dict[str, Any]) -> None:
        _atomic_text(self.parts / f"{bag_id}.json", json.dumps(doc))

    # ---------------------------------------------------------------- tables
    def write_tables(self, parts: list[dict[str, Any]]) -> dict[str, Path]:
        rows = [r for p in parts for r in p.get("rows", [])]
        bag_rows = [{k: v for k, v in p.items() if k != "rows"} for p in parts]
        for b in bag_rows:
            b["problems"] = " | ".join(b.get("problems", []))
        written = {}
        for name, table in (("windows", rows), ("bags", bag_rows)):
            written.update(write_table(self.path / name, table))
        return written


def write_table(stem: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    """``stem.csv`` always, ``stem.parquet`` when pyarrow is installed (``mmstream[ray]``)."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    out = {}
    csv_path = stem.with_suffix(".csv")
    with open(csv_path.with_suffix(".csv.partial"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})
    os.replace(csv_path.with_suffix(".csv.partial"), csv_path)
    out[csv_path.name] = csv_path
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        log.info("pyarrow is not installed (pip install 'mmstream[ray]'): %s written as CSV only", stem.name)
        return out
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]) if rows else pa.table({})
    pq_path = stem.with_suffix(".parquet")
    pq.write_table(table, pq_path.with_suffix(".parquet.partial"))
    os.replace(pq_path.with_suffix(".parquet.partial"), pq_path)
    out[pq_path.name] = pq_path
    return out


def _cell(v: Any) -> Any:
    return repr(v) if isinstance(v, float) else v


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
