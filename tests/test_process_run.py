"""`mmstream process` runs: a directory of mixed and damaged bags, resume after kill -9, split ranges,
Ray local against the process pool."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bag_helpers import write_robot_bag
from tests.conftest import REPO, wait_for

SAMPLE = REPO / "mmstream/data/sample.mcap"
ROBOT_MAP = (("/camera/image_raw", "/camera/image"), ("/audio/audio", "/microphone/audio"),
             ("/speech/text", "/text/utterance"))


def sample_copy(path: Path, n: int) -> Path:
    """The sample's messages in a new file (a metadata record makes its content, so its hash, differ)."""
    from mmstream.bag.reader import BagReader
    from mmstream.bag.writer import BagWriter

    w = BagWriter(path, metadata={"copy": {"n": str(n)}})
    for bm in BagReader(SAMPLE).messages():
        w.write(bm.topic, bm.msg, bm.log_time_ns)
    w.close()
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_directory_of_mixed_and_damaged_bags(tmp_path: Path) -> None:
    from mmstream.bag.writer import BagWriter
    from mmstream.messages import Header, TextUtterance
    from mmstream.process import ProcessConfig, process_bags
    from mmstream.process.outputs import OutputError

    bags = tmp_path / "bags"
    bags.mkdir()
    data = SAMPLE.read_bytes()
    (bags / "a_sample.mcap").write_bytes(data)
    (bags / "b_truncated.mcap").write_bytes(data[: len(data) * 95 // 100])  # a recorder killed in chunk 2
    corrupt = bytearray(data)
    corrupt[len(data) // 4: len(data) // 4 + 4096] = os.urandom(4096)        # chunk 1 fails its CRC
    (bags / "c_corrupt.mcap").write_bytes(bytes(corrupt))
    (bags / "d_not_a_bag.mcap").write_bytes(b"this is not an MCAP file\n" * 40)
    w = BagWriter(bags / "e_chat.mcap")
    w.write("/chat", TextUtterance(Header(1_000_000_000), 1_000_000_000, 2_000_000_000, "hi"), 1_000_000_000)
    w.close()
    write_robot_bag(bags / "f_robot", seconds=2.0)
    out = tmp_path / "out"
    s = process_bags([str(bags)], out, ProcessConfig(topic_map=ROBOT_MAP), report=True)
    status = {Path(b["bag"]).name: b for b in s.bags}
    assert {k: v["status"] for k, v in status.items()} == {
        "a_sample.mcap": "done", "b_truncated.mcap": "damaged", "c_corrupt.mcap": "damaged",
        "d_not_a_bag.mcap": "failed", "e_chat.mcap": "no_topics", "f_robot": "done"}
    assert status["a_sample.mcap"]["windows"] == 23
    assert 5 <= status["b_truncated.mcap"]["windows"] < 23 and "ends early" in str(status["b_truncated.mcap"]["problems"])
    assert status["c_corrupt.mcap"]["windows"] < 23 and "corrupt" in str(status["c_corrupt.mcap"]["problems"])
    assert "not" in status["d_not_a_bag.mcap"]["reason"] and "d_not_a_bag.mcap" in status["d_not_a_bag.mcap"]["reason"]
    assert "/chat" in status["e_chat.mcap"]["reason"] and "no topic the model needs" in status["e_chat.mcap"]["reason"]
    # one table for the run, one row per window; per-bag MCAPs with estimates + detections
    rows = _rows(out / "windows.csv")
    assert len(rows) == sum(b["windows"] for b in s.bags)
    import pyarrow.parquet as pq

    assert pq.read_table(out / "windows.parquet").num_rows == len(rows)
    assert {"bag", "window_start_ns", "top_label", "p_happy", "present_video", "backend"} <= set(rows[0])
    from mmstream.bag.info import bag_info

    info = bag_info(status["a_sample.mcap"]["output"])
    counts = {t["topic"]: t["count"] for t in info["topics"]}
    assert counts == {"/perception/emotion": 23, "/perception/detections": 23}
    report = (out / "report.txt").read_text()
    assert "windows per label" in report and "d_not_a_bag.mcap" in report
    assert (out / "report_timeline.png").stat().st_size > 1000
    # the directory now has content: refused without --resume / --overwrite
    with pytest.raises(OutputError, match="--resume"):
        process_bags([str(bags / "a_sample.mcap")], out, ProcessConfig())


def test_resume_after_kill_9_finishes_the_rest_and_doubles_nothing(tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    for i in range(4):
        sample_copy(bags / f"s{i}.mcap", i)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmstream.cli", "process", str(bags), "-o", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(list((out / "parts").glob("*.json"))) >= 1 or proc.poll() is not None, 60, "a bag done")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    first = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.json")}
    assert 1 <= len(first) < 4, f"killed too late: {sorted(first)}"
    assert not (out / "windows.csv").exists()
    again = subprocess.run(cmd + ["--resume", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"{len(first)} done before" in again.stdout
    parts = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.json")}
    assert len(parts) == 4 and all(parts[k] == v for k, v in first.items())  # done bags were not redone
    rows = _rows(out / "windows.csv")
    keys = [(r["bag_id"], r["window_start_ns"]) for r in rows]
    assert len(keys) == 4 * 23 and len(set(keys)) == len(keys)
    # every copy gives the sample's estimates
    by_bag: dict[str, list] = {}
    for r in rows:
        by_bag.setdefault(r["bag_id"], []).append((r["window_start_ns"], r["top_label"], r["p_happy"]))
    assert len({json.dumps(v) for v in by_bag.values()}) == 1


def test_split_ranges_give_the_windows_of_the_whole_bag(tmp_path: Path) -> None:
    from mmstream.process import ProcessConfig
    from mmstream.process.graph_clock import GraphReplay
    from mmstream.process.inputs import inspect_bag, plan_tasks
    from mmstream.process.model_bundle import resolve_model
    from mmstream.process.task import convert_options, run_task
    from mmstream.process.worker import open_pipeline
    from tests.bag_helpers import assert_same

    bag = tmp_path / "long"
    write_robot_bag(bag, seconds=12.0)
    whole_cfg = ProcessConfig(topic_map=ROBOT_MAP, split_ns=0)
    split_cfg = ProcessConfig(topic_map=ROBOT_MAP, split_ns=4_000_000_000, warmup_ns=3_000_000_000)
    info = inspect_bag(str(bag), split_cfg)
    tasks = plan_tasks(info, split_cfg)
    assert len(tasks) == 3 and tasks[0].start_ns is None and tasks[-1].end_ns is None
    # the windows: each range replayed from its warm-up, keeping those starting inside it
    def windows(start_ns: int | None, end_ns: int | None) -> list:
        out: list = []
        GraphReplay(str(bag), split_cfg.sync, topic_map=dict(ROBOT_MAP), options=convert_options(split_cfg),
                    start_ns=None if start_ns is None else start_ns - split_cfg.warmup_ns).run(out.append)
        return [w for w in out if (start_ns is None or w.start_ns >= start_ns) and (end_ns is None or w.start_ns < end_ns)]

    whole_windows = windows(None, None)
    joined_windows = [w for t in tasks for w in windows(t.start_ns, t.end_ns)]
    assert len(joined_windows) == len(whole_windows) >= 22  # none lost, none doubled
    for a, b in zip(joined_windows, whole_windows):
        assert_same(a, b)  # value for value: frames, audio, masks, utterances
    # the estimates: of the same windows, with the same labels; not bitwise the same probabilities: the
    # preprocessor's Silero VAD state depends on how long its stream has run (docs/process.md)
    pipeline = open_pipeline(str(resolve_model("default")), whole_cfg)
    [whole] = [run_task(t, whole_cfg, pipeline) for t in plan_tasks(info, whole_cfg)]
    pieces = [run_task(t, split_cfg, pipeline) for t in tasks]
    joined = [e for p in pieces for e in p.estimates]
    assert [e.window_start_ns for e in joined] == [e.window_start_ns for e in whole.estimates]
    for a, b in zip(joined, whole.estimates):
        assert (a.window_end_ns, a.presence, a.top_label) == (b.window_end_ns, b.presence, b.top_label)


@pytest.mark.timeout(180)
def test_ray_local_gives_the_table_of_the_process_pool(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from mmstream.process import ProcessConfig, process_bags

    bags = tmp_path / "bags"
    bags.mkdir()
    sample_copy(bags / "s0.mcap", 0)
    write_robot_bag(bags / "robot", seconds=6.0)
    (bags / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"\0" * 100)
    cfg = ProcessConfig(topic_map=ROBOT_MAP, split_ns=3_000_000_000, warmup_ns=2_000_000_000)
    pool = process_bags([str(bags)], tmp_path / "pool", cfg, workers=2)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        on_ray = process_bags([str(bags)], tmp_path / "ray", cfg, ray="local")
    finally:
        ray.shutdown()
    assert on_ray.executor == "ray" and pool.executor == "pool"
    assert (tmp_path / "ray/windows.csv").read_text() == (tmp_path / "pool/windows.csv").read_text()
    strip = lambda bags: [{k: v for k, v in b.items() if k not in ("wall_s", "cpu_s", "output")} for b in bags]  # noqa: E731
    assert strip(on_ray.bags) == strip(pool.bags)
    assert [b["status"] for b in pool.bags] == ["no_topics", "done", "done"]  # MCAP magic, no records
    assert [b["ranges"] for b in pool.bags] == [0, 2, 4]  # 6 s and 11.5 s cut into 3 s ranges
