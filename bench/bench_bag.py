"""Bag throughput: the recorder at 640×480@30 + 16 kHz, and replay as fast as possible.

recorder: a publisher in this process sends real video frames (sample.mp4 decoded, 640×480 bgr8)
at 30 fps and 16 kHz audio in 20 ms chunks for ``--duration`` seconds; the recorder node runs in
its own process. Reports MB/s written (file) and received (raw), drops (queue + transport) and the
recorder's CPU use. Baseline, same run: BagWriter alone in this process on the same frames
(no transport), i.e. the writer's ceiling.

replay: the player node replays the demo bag (JPEG frames, audio, text) with ``fast=true`` into
a consumer in this process (reliable subscriptions, sim time). Reports messages/s and the ratio
to real time (bag seconds per wall second). With ``--pipeline``, the synchronizer node (and the
inference node with ``--model``) runs on sim time between them and windows/s (estimates/s) are
counted; without it, the consumer runs the WindowSynchronizer object itself on its sim clock.
Baseline, same run: BagReader alone (decode + convert, no transport).

    python bench/bench_bag.py --duration 10 [--pipeline] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmstream.bag.reader import BagReader  # noqa: E402
from mmstream.bag.writer import BagWriter  # noqa: E402
from mmstream.messages import AudioChunk, Clock, EmotionEstimate, Header, ImageFrame, TextUtterance, Window  # noqa: E402
from mmstream.node import Node  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE = REPO / "mmstream" / "data"


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except OSError:
        return 0.0


def _video_frames(n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(SAMPLE / "sample.mp4"))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, (640, 480)))
    cap.release()
    if not frames:  # no sample video: a moving gradient
        base = np.zeros((480, 640, 3), np.uint8)
        base[..., 0] = np.linspace(0, 255, 640, dtype=np.uint8)
        frames = [np.roll(base, i * 4, axis=1) for i in range(n)]
    return frames


def _env(run_dir: Path) -> dict[str, str]:
    return dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")


def bench_writer_baseline(frames: list[np.ndarray], tmp: Path, seconds: float) -> dict:
    path = tmp / "baseline.mcap"
    n = int(seconds * 30)
    audio = np.zeros((320, 1), np.int16)
    t0 = time.perf_counter()
    raw = 0
    with BagWriter(path) as w:
        for i in range(n):
            stamp = i * 33_333_333
            f = frames[i % len(frames)]
            w.write("/camera/image", ImageFrame(Header(stamp, i + 1), "bgr8", 480, 640, f), stamp)
            raw += f.nbytes
            for k in range(2):  # ~50 audio chunks per 30 frames, rounded to 60
                w.write("/microphone/audio", AudioChunk(Header(stamp + k, 2 * i + k + 1), 16000, 1, 0, audio), stamp)
                raw += audio.nbytes
    wall = time.perf_counter() - t0
    return {"messages": n * 3, "raw_MB_per_s": round(raw / wall / 1e6, 1),
            "file_MB_per_s": round(path.stat().st_size / wall / 1e6, 1), "realtime_factor": round(n / 30 / wall, 2)}


def bench_recorder(frames: list[np.ndarray], tmp: Path, seconds: float) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix="mmb-", dir="/tmp"))
    out = tmp / "rec.mcap"
    rec = subprocess.Popen([sys.executable, "-m", "nodes.recorder", "-p", f"output={out}", "-p", "progress_s=0",
                            "-p", 'topics=["/camera/image", "/microphone/audio"]'], cwd=REPO, env=_env(run_dir),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = Node("bench_publisher", run_dir=run_dir)
    cam = node.create_publisher(ImageFrame, "/camera/image")
    mic = node.create_publisher(AudioChunk, "/microphone/audio")
    for pub in (cam, mic):
        if not pub.wait_for_subscribers(1, timeout_s=20):
            raise SystemExit("recorder did not subscribe")
    rng = np.random.default_rng(0)
    t_start = time.monotonic()
    cpu0 = _cpu_s(rec.pid)
    n_frames = n_audio = 0
    raw = 0
    while True:
        now = time.monotonic() - t_start
        if now >= seconds:
            break
        due_frames = int(now * 30) + 1
        due_audio = int(now * 50) + 1
        while n_frames < due_frames:
            f = frames[n_frames % len(frames)]
            cam.publish(ImageFrame(encoding="bgr8", height=480, width=640, data=f))
            n_frames += 1
            raw += f.nbytes
        while n_audio < due_audio:
            s = (rng.standard_normal((320, 1)) * 0.1).astype(np.float32)
            mic.publish(AudioChunk(samples=s))
            n_audio += 1
            raw += s.nbytes
        node.spin_once(0.0)
        time.sleep(0.002)
    cpu1 = _cpu_s(rec.pid)
    time.sleep(0.5)  # messages in flight reach the recorder before it is told to stop
    rec.send_signal(signal.SIGINT)
    log, _ = rec.communicate(timeout=120)
    node.close()
    summary = {}
    for line in log.splitlines():
        if "recorder finished:" in line:
            summary = json.loads(line.split("recorder finished:", 1)[1])
    got = sum(1 for _ in BagReader(out).raw_records())
    return {"published": n_frames + n_audio, "in_bag": got, "frames": n_frames, "audio_chunks": n_audio,
            "queue_drops": sum(summary.get("queue_drops", {}).values()),
            "transport_drops": sum(summary.get("transport_drops", {}).values()),
            "missing": n_frames + n_audio - got,
            "raw_MB_per_s": round(raw / seconds / 1e6, 1), "file_MB_per_s": round(out.stat().st_size / seconds / 1e6, 1),
            "recorder_cpu_per_s": round((cpu1 - cpu0) / seconds, 2)}


def bench_reader_baseline(bag: Path) -> dict:
    t0 = time.perf_counter()
    n = 0
    first = last = None
    for m in BagReader(bag).messages():
        n += 1
        first = m.log_time_ns if first is None else first
        last = m.log_time_ns
    wall = time.perf_counter() - t0
    bag_s = (last - first) / 1e9
    return {"messages": n, "messages_per_s": round(n / wall, 1), "realtime_factor": round(bag_s / wall, 1)}


def _sync_params() -> list[str]:
    """Replay: the bag clock, and every message delivered (reliable in and out, never dropped)."""
    return ["-p", "use_sim_time=true", "-p", "reliable_input=true", "-p", "reliable_output=true"]


def _log_time_s(line: str) -> float:
    """Epoch seconds of a node log line starting with HH:MM:SS.mmm (today, local time)."""
    hms, ms = line.split()[0].split(".")
    today = time.strftime("%Y-%m-%d")
    return time.mktime(time.strptime(f"{today} {hms}", "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000


def bench_replay(bag: Path, pipeline: bool, model: str | None, extra: tuple[str, ...] = ()) -> dict:
    """Pipeline: the consumer sees only windows/estimates; time runs from the player's "playing" log line
    to the last output. Without it: the consumer takes every data message (transport throughput)."""
    run_dir = Path(tempfile.mkdtemp(prefix="mmb-", dir="/tmp"))
    procs = []
    if pipeline:
        procs.append(subprocess.Popen([sys.executable, "-m", "nodes.synchronizer", *_sync_params()], cwd=REPO,
                                      env=_env(run_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        if model:
            procs.append(subprocess.Popen([sys.executable, "-m", "nodes.inference", "-p", f"model={model}",
                                           "-p", "reliable=true", "-p", "print_estimates=false",
                                           "-p", "use_sim_time=true"], cwd=REPO, env=_env(run_dir),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    consumer = Node("bench_consumer", params={"use_sim_time": not pipeline}, run_dir=run_dir)
    counts = {"data": 0, "windows": 0, "estimates": 0}
    marks = {"first": 0.0, "last": 0.0}

    def count(kind: str):
        def cb(_m: object) -> None:
            counts[kind] += 1
            marks["last"] = time.time()
            marks["first"] = marks["first"] or marks["last"]
        return cb

    expected = sum(1 for _ in BagReader(bag).raw_records(want=lambda t: t in (
        "/camera/image", "/microphone/audio", "/text/utterance")))
    if pipeline:
        consumer.create_subscription(Window, "/sync/window", count("windows"), keep_last=None)
        if model:
            consumer.create_subscription(EmotionEstimate, "/perception/emotion", count("estimates"), keep_last=None)
    else:
        for topic, cls in (("/camera/image", ImageFrame), ("/microphone/audio", AudioChunk),
                           ("/text/utterance", TextUtterance)):
            consumer.create_subscription(cls, topic, count("data"), keep_last=None)
        consumer.create_subscription(Clock, "/clock", lambda m: None, keep_last=None)
    time.sleep(1.0 if not pipeline else 4.0)  # let the pipeline nodes start and subscribe
    player = subprocess.Popen([sys.executable, "-m", "nodes.player", "-p", f"bag={bag}", "-p", "fast=true", *extra,
                               "-p", "wait_for_subscribers=1", "-p", "keyboard=false"],
                              cwd=REPO, env=_env(run_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        consumer.spin_once(0.01)
        if player.poll() is not None and time.time() - max(marks["last"], 1) > 3.0:
            break
    log, _ = player.communicate(timeout=30)
    for p in procs:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
    consumer.close()
    stamps = [m.log_time for m in (r.message for r in BagReader(bag).raw_records())]
    bag_s = (max(stamps) - min(stamps)) / 1e9
    lines = log.splitlines()
    playing = [ln for ln in lines if "] playing " in ln]
    finished = [ln for ln in lines if "player finished" in ln]
    out: dict = {"bag_s": round(bag_s, 3), "bag_messages": expected,
                 "player": finished[-1].split("player finished:", 1)[1].strip() if finished else log[-500:]}
    if playing and finished:
        out["player_publish_s"] = round(_log_time_s(finished[-1]) - _log_time_s(playing[-1]), 3)
    if pipeline:
        wall = max(marks["last"] - _log_time_s(playing[-1]), 1e-6) if playing else float("nan")
        out.update({"through": "player -> synchronizer" + (" -> inference" if model else ""),
                    "wall_s": round(wall, 3), "messages_per_s": round(expected / wall, 1),
                    "realtime_factor": round(bag_s / wall, 1), "windows": counts["windows"],
                    "windows_per_s": round(counts["windows"] / wall, 1)})
        if model:
            out.update({"estimates": counts["estimates"], "estimates_per_s": round(counts["estimates"] / wall, 1)})
    else:
        wall = max(marks["last"] - marks["first"], 1e-6)
        out.update({"through": "player -> consumer in this process", "received": counts["data"],
                    "wall_s": round(wall, 3), "messages_per_s": round(counts["data"] / wall, 1),
                    "realtime_factor": round(bag_s / wall, 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="bag recorder and replay throughput")
    ap.add_argument("--duration", type=float, default=10.0, help="recording seconds")
    ap.add_argument("--bag", default=str(SAMPLE / "sample.mcap"), help="bag to replay")
    ap.add_argument("--pipeline", action="store_true", help="replay through nodes.synchronizer")
    ap.add_argument("--model", default=None, help="also through nodes.inference with this model package")
    args = ap.parse_args(argv)
    pipeline = args.pipeline or (REPO / "nodes" / "synchronizer.py").is_file()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        frames = _video_frames(60)
        result = {
            "machine": {"cpus": os.cpu_count()},
            "recorder": {"baseline_bagwriter_in_process": bench_writer_baseline(frames, tmp, 5.0),
                         "recorder_node_640x480_30fps_16khz": bench_recorder(frames, tmp, args.duration)},
            "replay": {"baseline_bagreader_in_process": bench_reader_baseline(Path(args.bag)),
                       "player_fast": bench_replay(Path(args.bag), pipeline, args.model)},
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
