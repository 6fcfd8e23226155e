"""Sensor publishing cost and latency: camera 640×480@30 and microphone 16 kHz / 20 ms.

Runs the real camera node (test pattern, 640×480 bgr8 at 30 fps, i.e. a live source stamped at
capture) and the real microphone node (PortAudio capture through a PulseAudio null sink; falls
back to a wav file paced in real time when PulseAudio cannot start), each in its own process,
with a subscriber in this process. Reports per node:

* ``cpu_per_stream_s``: CPU seconds the node process used per second of stream (1.0 = a core),
* ``latency_ms``: p50/p99 of subscriber receipt time − capture stamp,
* drops: messages lost between node and subscriber (seq gaps), blocks lost before the socket
  (``/microphone/stats``), and audio gap samples.

Baseline, measured in the same run: the same sources read in a plain process with no node and no
publishing (``source_only``), so ``publish_overhead = node − source_only``.

    python bench/bench_sensors.py --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmstream.clock import host_now_ns  # noqa: E402
from mmstream.messages import AudioChunk, ImageFrame, NodeStats  # noqa: E402
from mmstream.node import Node  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")

SOURCE_ONLY = r"""
import sys, time
kind, duration = sys.argv[1], float(sys.argv[2])
if kind == "camera":
    from mmstream.sensors.video_source import PatternSource, to_image_frame
    src = PatternSource(width=640, height=480, fps=30)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        to_image_frame(src.read(), encoding="bgr8")
else:
    from mmstream.sensors.audio_source import MicrophoneSource, AudioFileSource
    if kind == "mic":
        src = MicrophoneSource(device="pulse", sample_rate_hz=16000, block_s=0.02); src.start()
        read = lambda: src.read(0.05)
    else:
        src = AudioFileSource(kind, realtime=True, loop=True); read = src.read
    end = time.monotonic() + duration
    while time.monotonic() < end:
        read()
"""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    a = np.asarray(values, dtype=np.float64) / 1e6
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def pulse_ready() -> tuple[bool, bool, str]:
    """(ready, started_here, problem)."""
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures_media import start_pulseaudio_null_sink

    started, problem = start_pulseaudio_null_sink()
    return not problem, started, problem


def measure_process(cmd: list[str], env: dict[str, str], warmup_s: float, duration_s: float) -> float:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(warmup_s)
    c0, t0 = cpu_s(proc.pid), time.monotonic()
    time.sleep(duration_s)
    c1, t1 = cpu_s(proc.pid), time.monotonic()
    proc.terminate()
    proc.wait(10)
    return (c1 - c0) / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of stream measured per node")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (PulseAudio start-up)")
    ap.add_argument("--baseline-duration", type=float, default=0.0, help="seconds per baseline (default duration/2)")
    args = ap.parse_args()
    base_s = args.baseline_duration or args.duration / 2

    ok, pulse_started, problem = pulse_ready()
    tmp = Path(tempfile.mkdtemp(prefix="mmb-", dir="/tmp"))
    if ok:
        mic_source, mic_params = "pulseaudio null-sink monitor via PortAudio 'pulse'", ["-p", "device=pulse"]
        baseline_kind = "mic"
    else:
        import soundfile as sf

        wav = tmp / "noise.wav"
        sf.write(str(wav), (0.1 * np.random.default_rng(0).standard_normal(16000 * 5)).astype(np.float32), 16000)
        mic_source, mic_params = f"wav file paced in real time (PulseAudio unavailable: {problem})", \
            ["-p", f"source={wav}", "-p", "loop=true"]
        baseline_kind = str(wav)

    env = dict(os.environ, MMSTREAM_RUN_DIR=str(tmp), PYTHONUNBUFFERED="1")
    os.environ["MMSTREAM_RUN_DIR"] = str(tmp)
    sub = Node("bench_sensors", run_dir=tmp)
    frames: list[tuple[int, int, int]] = []   # (receipt, stamp, seq)
    chunks: list[tuple[int, int, int, int]] = []   # (receipt, stamp, seq, gap_samples)
    stats: dict[str, NodeStats] = {}
    sub.create_subscription(ImageFrame, "/camera/image",
                            lambda m: frames.append((host_now_ns(), m.header.stamp_ns, m.header.seq)), keep_last=None)
    sub.create_subscription(AudioChunk, "/microphone/audio",
                            lambda m: chunks.append((host_now_ns(), m.header.stamp_ns, m.header.seq, m.gap_samples)),
                            keep_last=None)
    for name in ("camera", "microphone"):
        sub.create_subscription(NodeStats, f"/{name}/stats", lambda m: stats.__setitem__(m.node, m), keep_last=1)

    py = sys.executable
    cam = subprocess.Popen([py, "-m", "nodes.camera", "-p", "source=pattern", "-p", "width=640", "-p", "height=480",
                            "-p", "fps=30", "-p", "wait_for_subscribers=1"], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    mic = subprocess.Popen([py, "-m", "nodes.microphone", *mic_params, "-p", "wait_for_subscribers=1"], cwd=REPO,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    end_warm = time.monotonic() + args.warmup
    while time.monotonic() < end_warm:
        sub.spin_once(0.01)
    frames.clear()
    chunks.clear()
    c0 = {"camera": cpu_s(cam.pid), "microphone": cpu_s(mic.pid)}
    t0 = time.monotonic()
    end = t0 + args.duration
    while time.monotonic() < end:
        sub.spin_once(0.01)
    elapsed = time.monotonic() - t0
    c1 = {"camera": cpu_s(cam.pid), "microphone": cpu_s(mic.pid)}
    for _ in range(20):
        sub.spin_once(0.01)
    for p in (cam, mic):
        p.send_signal(2)
    logs = {n: p.communicate(timeout=10)[1][-2000:] for n, p in (("camera", cam), ("microphone", mic))}
    sub.close()

    def seq_gaps(seqs: list[int]) -> int:
        return int(sum(max(0, b - a - 1) for a, b in zip(seqs, seqs[1:])))

    def pub_drops(name: str) -> int | None:
        s = stats.get(name)
        if s is None:
            return None
        return int(sum(t.get("drops", 0) for t in s.topics if t.get("direction") == "pub"))

    cam_cpu = (c1["camera"] - c0["camera"]) / elapsed
    mic_cpu = (c1["microphone"] - c0["microphone"]) / elapsed
    # baseline: the same sources without nodes or sockets, one after the other
    src_env = dict(env, PYTHONPATH=str(REPO))
    base_cam = measure_process([py, "-c", SOURCE_ONLY, "camera", str(base_s + args.warmup + 5)], src_env,
                               args.warmup, base_s)
    base_mic = measure_process([py, "-c", SOURCE_ONLY, baseline_kind, str(base_s + args.warmup + 5)], src_env,
                               args.warmup, base_s)
    report = {
        "duration_s": round(elapsed, 2),
        "baseline_duration_s": base_s,
        "cpu_count": os.cpu_count(),
        "camera": {
            "source": "test pattern 640x480 bgr8 @30 fps (stamped at capture)",
            "frames": len(frames), "rate_hz": round(len(frames) / elapsed, 2),
            "cpu_per_stream_s": round(cam_cpu, 4),
            "latency_ms": percentiles([r - s for r, s, _ in frames]),
            "drops_transport": seq_gaps([q for _, _, q in frames]),
            "drops_publisher": pub_drops("camera"),
            "baseline_source_only_cpu_per_s": round(base_cam, 4),
            "publish_overhead_cpu_per_s": round(cam_cpu - base_cam, 4),
        },
        "microphone": {
            "source": mic_source, "sample_rate_hz": 16000, "block_s": 0.02,
            "chunks": len(chunks), "rate_hz": round(len(chunks) / elapsed, 2),
            "cpu_per_stream_s": round(mic_cpu, 4),
            "latency_ms": percentiles([r - s for r, s, _, _ in chunks]),
            "drops_transport": seq_gaps([q for _, _, q, _ in chunks]),
            "drops_before_socket": pub_drops("microphone"),
            "gap_samples": int(sum(g for *_, g in chunks)),
            "stamps_contiguous": bool(all(b[1] - a[1] == 20_000_000 for a, b in zip(chunks, chunks[1:]))),
            "baseline_source_only_cpu_per_s": round(base_mic, 4),
            "publish_overhead_cpu_per_s": round(mic_cpu - base_mic, 4),
        },
        "both_nodes_cpu_per_s": round(cam_cpu + mic_cpu, 4),
        "target_both_under": 0.15,
    }
    if not frames or not chunks:
        report["node_logs"] = logs
    if pulse_started:
        subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=10)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
