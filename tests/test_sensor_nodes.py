"""Camera, microphone and text nodes as real processes, checked by a subscriber in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from mmstream.clock import host_now_ns
from mmstream.messages import AudioChunk, ImageFrame, TextUtterance
from mmstream.sensors.devices import list_video_devices
from mmstream.sensors.video_source import read_pattern_index
from tests.conftest import REPO, node_cmd
from tests.fixtures_media import (Collector, collector, make_speech_wav, make_tone_wav, make_video,  # noqa: F401
                                  pulse_null_sink, require_tool)

NS = 1_000_000_000


def _finish(proc: subprocess.Popen[str], timeout_s: float = 15.0) -> str:
    """Wait for a node that ends by itself; return its output."""
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"node did not finish in {timeout_s}s:\n{out}") from None
    return out


def _stop(proc: subprocess.Popen[str], timeout_s: float = 5.0) -> str:
    proc.send_signal(2)
    return _finish(proc, timeout_s)


# --------------------------------------------------------------------------- camera


def test_camera_node_publishes_video_file_with_file_timing(tmp_path: Path, spawn, collector: Collector) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=320, height=240, rate=30, seconds=2)
    got = collector.subscribe(ImageFrame, "/camera/image")
    start = 1_750_000_000 * NS
    proc = spawn(node_cmd("nodes.camera", "-p", f"source={clip}", "-p", "wait_for_subscribers=1",
                          "-p", f"start_stamp_ns={start}", "-p", "frame_id=cam_test"))
    collector.spin_until(lambda: proc.poll() is not None, 20, "the camera node to finish the file")
    collector.spin_for(0.2)
    out = _finish(proc)
    assert proc.returncode == 0, out
    assert "finished after 60 frames" in out
    assert len(got) == 60, out
    frames = [m for _, m in got]
    assert all((f.width, f.height, f.encoding, f.data.shape) == (320, 240, "bgr8", (240, 320, 3)) for f in frames)
    assert [f.header.seq for f in frames] == list(range(1, 61))
    assert all(f.header.frame_id == "cam_test" for f in frames)
    rel_ms = np.array([(f.header.stamp_ns - start) / 1e6 for f in frames])
    assert np.all(np.abs(rel_ms - np.arange(60) * 1000 / 30) < 1.0), rel_ms[:5]
    # realtime pacing: receipt times follow the file times (2 s of video arrive over ~2 s, no bursts)
    recv_ms = np.array([r for r, _ in got], dtype=np.int64) / 1e6
    offset_ms = recv_ms - rel_ms
    assert np.ptp(offset_ms) < 60, offset_ms


def test_camera_node_pattern_jpeg_indices_in_order(spawn, collector: Collector) -> None:
    got = collector.subscribe(ImageFrame, "/cam/jpeg")
    proc = spawn(node_cmd("nodes.camera", "-p", "source=pattern", "-p", "width=320", "-p", "height=240",
                          "-p", "fps=60", "-p", "encoding=jpeg", "-p", "jpeg_quality=60", "-p", "max_frames=30",
                          "-p", "topic=/cam/jpeg", "-p", "wait_for_subscribers=1"))
    collector.spin_until(lambda: proc.poll() is not None, 20, "the camera node to publish 30 frames")
    collector.spin_for(0.2)
    out = _finish(proc)
    assert proc.returncode == 0, out
    assert len(got) == 30
    assert [read_pattern_index(m.to_bgr()) for _, m in got] == list(range(30))
    assert all(m.encoding == "jpeg" and m.data.nbytes < 320 * 240 for _, m in got)
    now = host_now_ns()
    assert all(0 < now - m.header.stamp_ns < 30 * NS for _, m in got)  # live: host capture time


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serving(port: int) -> bool:
    """A socket on ``port`` is listening (0A) or already has its one client (01, established)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] in ("0A", "01") for r in rows):
            return True
    return False


def _mjpeg_server(port: int, seconds: float) -> subprocess.Popen[str]:
    """ffmpeg serving a live MJPEG stream over HTTP to one client, for ``seconds``."""
    proc = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-f", "lavfi",
                             "-i", "testsrc=size=320x240:rate=25", "-t", str(seconds), "-c:v", "mjpeg",
                             "-f", "mpjpeg", "-listen", "1", f"http://127.0.0.1:{port}/cam.mjpg"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while not _serving(port):
        if proc.poll() == 0:
            break  # the node connected between two looks and the short stream already ended
        assert proc.poll() is None and time.monotonic() < deadline, "ffmpeg did not start listening"
        time.sleep(0.02)
    return proc


def test_camera_node_reopens_network_stream_with_backoff(spawn, collector: Collector) -> None:
    require_tool("ffmpeg")
    port = _free_port()
    got = collector.subscribe(ImageFrame, "/camera/image")
    server = _mjpeg_server(port, 1.2)
    proc = spawn(node_cmd("nodes.camera", "-p", f"source=http://127.0.0.1:{port}/cam.mjpg",
                          "-p", "reopen_backoff_s=0.2", "-p", "reopen_backoff_max_s=0.4"))
    try:
        collector.spin_until(lambda: server.poll() is not None, 15, "the first stream to end")
        first = len(got)
        collector.spin_for(0.5)  # the stream is down: the node retries with backoff
        server = _mjpeg_server(port, 1.0)
        collector.spin_until(lambda: len(got) >= first + 10, 15, "frames from the reopened stream")
    finally:
        server.kill()
        server.wait()
    out = _stop(proc)
    assert first >= 15, out
    assert "stopped delivering frames; reopening in 0.2 s (attempt 1)" in out
    assert "reopened after" in out
    stamps = np.array([m.header.stamp_ns for _, m in got])
    assert np.all(np.diff(stamps) > 0)
    assert np.max(np.diff(stamps)) >= 0.4 * NS  # the outage is a visible hole in time, frames keep true stamps
    assert all(m.width == 320 and m.height == 240 for _, m in got)


def test_camera_node_without_camera_fails_with_clear_error(spawn) -> None:
    present = {d.index for d in list_video_devices()}
    index = next(i for i in range(60, 200) if i not in present)
    proc = spawn(node_cmd("nodes.camera", "-p", f"source=/dev/video{index}"))
    out = _finish(proc)
    assert proc.returncode == 1, out
    assert f"camera source '/dev/video{index}' could not be opened" in out
    if present:
        assert all(f"/dev/video{i}" in out for i in present)
    else:
        assert "no video devices exist (no /dev/video* on this host)" in out
    assert "use a video file (--param source=/path/to/clip.mp4)" in out


# --------------------------------------------------------------------------- microphone


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) if x.size else 0.0


def test_microphone_node_captures_speech_through_pulseaudio(tmp_path: Path, spawn, collector: Collector,
                                                            pulse_null_sink: str) -> None:
    speech = make_speech_wav(tmp_path / "speech.wav", "Hello robot. The microphone node is listening to this sentence.")
    got = collector.subscribe(AudioChunk, "/microphone/audio")
    proc = spawn(node_cmd("nodes.microphone", "-p", "device=pulse", "-p", "wait_for_subscribers=1"))
    # let it capture silence first (start-up of the PulseAudio stream takes up to ~2 s)
    collector.spin_until(lambda: sum(m.num_samples for _, m in got) >= 16000, 20, "1 s of captured silence")
    play_start_ns = host_now_ns()
    player = subprocess.Popen(["paplay", f"--device={pulse_null_sink}", str(speech)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    collector.spin_until(lambda: player.poll() is not None, 30, "paplay to finish")
    play_end_ns = host_now_ns()
    assert player.returncode == 0, player.stdout.read() if player.stdout else ""
    collector.spin_for(0.7)
    out = _stop(proc)
    assert proc.returncode == 0, out

    chunks = [m for _, m in got]
    assert len(chunks) > 100, out
    assert all(c.sample_rate_hz == 16000 and c.channels == 1 and c.num_samples == 320 for c in chunks)
    # contiguous: no gaps, and each stamp is exactly n/rate after the previous one
    assert [c.gap_samples for c in chunks] == [0] * len(chunks), out
    stamps = np.array([c.header.stamp_ns for c in chunks], dtype=np.int64)
    assert np.all(np.diff(stamps) == 320 * NS // 16000), np.unique(np.diff(stamps))
    assert [c.header.seq for c in chunks] == list(range(1, len(chunks) + 1))
    audio = np.concatenate([c.samples[:, 0] for c in chunks])
    t_ns = stamps[0] + np.arange(audio.size) * NS // 16000
    before = audio[t_ns < play_start_ns]
    during = audio[(t_ns >= play_start_ns) & (t_ns < play_end_ns + 200_000_000)]
    assert before.size >= 8000
    assert np.max(np.abs(before)) < 1e-3, "silence before the speech must have no energy"
    loud = [_rms(during[i:i + 1600]) for i in range(0, during.size - 1600, 1600)]
    assert max(loud) > 0.02, f"speech energy too low: {max(loud) if loud else None}"
    # honest stamps: the speech starts after paplay was started (and not much later)
    onset_ns = int(t_ns[np.argmax(np.abs(audio) > 0.01)])
    assert play_start_ns - 20_000_000 <= onset_ns <= play_start_ns + 1_500_000_000, (onset_ns - play_start_ns) / 1e6


def test_microphone_node_plays_wav_file(tmp_path: Path, spawn, collector: Collector) -> None:
    wav = make_tone_wav(tmp_path / "tone.wav", rate_hz=16000, seconds=1.0)
    got = collector.subscribe(AudioChunk, "/microphone/audio")
    proc = spawn(node_cmd("nodes.microphone", "-p", f"source={wav}", "-p", "realtime=false", "-p", "reliable=true",
                          "-p", "wait_for_subscribers=1"))
    collector.spin_until(lambda: proc.poll() is not None, 20, "the microphone node to finish the file")
    collector.spin_for(0.2)
    out = _finish(proc)
    assert proc.returncode == 0, out
    assert len(got) == 50
    stamps = np.array([m.header.stamp_ns for _, m in got])
    assert np.all(np.diff(stamps) == 20_000_000)


def test_microphone_node_unknown_device_fails_with_clear_error(spawn) -> None:
    proc = spawn(node_cmd("nodes.microphone", "-p", "device=no_such_microphone_xyz"),
                 env={"PULSE_SERVER": "unix:/nonexistent/pulse"})
    out = _finish(proc)
    assert proc.returncode == 1, out
    assert "microphone: audio input device 'no_such_microphone_xyz' could not be opened" in out
    assert ("input devices: " in out) or ("there are no audio input devices" in out)


# --------------------------------------------------------------------------- text


def test_text_node_from_stdin_with_malformed_lines(spawn, collector: Collector) -> None:
    got = collector.subscribe(TextUtterance, "/text/utterance")
    proc = spawn(node_cmd("nodes.text", "-p", "wait_for_subscribers=1", "-p", "max_chars=20", "-p", "language=de"),
                 stdin=subprocess.PIPE)
    assert proc.stdin is not None
    collector.spin_for(0.5)  # let the handshake happen
    t0 = host_now_ns()
    proc.stdin.write("hallo welt\n\n   \n")
    proc.stdin.flush()
    proc.stdin.buffer.write(b"bad \xff\xfe utf8\n")  # type: ignore[attr-defined]
    proc.stdin.write("this line is far longer than twenty characters\nletzte zeile\n")
    proc.stdin.close()
    collector.spin_until(lambda: proc.poll() is not None, 15, "the text node to end at EOF")
    collector.spin_for(0.2)
    out = _finish(proc)
    assert proc.returncode == 0, out
    texts = [m.text for _, m in got]
    assert texts == ["hallo welt", "this line is far lon", "letzte zeile"], out
    assert all(m.language == "de" and m.source == "stdin" for _, m in got)
    assert all(t0 <= m.start_ns == m.end_ns <= host_now_ns() for _, m in got)
    assert "dropped bad input (empty): stdin line 2" in out
    assert "dropped bad input (invalid-utf8): stdin line 4" in out
    assert "dropped bad input (too-long): stdin line 5: 46 characters, truncated to max_chars=20" in out


SRT = """1
00:00:00,200 --> 00:00:00,600
First <i>line</i>.

2
00:00:00,700 --> 00:00:01,000
Second line
continues.

3
00:00:01,000 --> broken
Never shown.

4
00:00:01,100 --> 00:00:01,200
Third.
"""


def test_text_node_srt_file_paced_with_file_times(tmp_path: Path, spawn, collector: Collector) -> None:
    path = tmp_path / "subs.srt"
    path.write_text(SRT, encoding="utf-8")
    got = collector.subscribe(TextUtterance, "/text/utterance")
    start = 1_760_000_000 * NS
    proc = spawn(node_cmd("nodes.text", "-p", f"source={path}", "-p", f"start_stamp_ns={start}",
                          "-p", "wait_for_subscribers=1"))
    collector.spin_until(lambda: proc.poll() is not None, 15, "the text node to finish the file")
    collector.spin_for(0.2)
    out = _finish(proc)
    assert proc.returncode == 0, out
    msgs = [m for _, m in got]
    assert [m.text for m in msgs] == ["First line.", "Second line continues.", "Third."]
    assert [(m.start_ns - start, m.end_ns - start) for m in msgs] == [
        (200_000_000, 600_000_000), (700_000_000, 1_000_000_000), (1_100_000_000, 1_200_000_000)]
    assert all(m.source == "file:subs.srt" and m.header.stamp_ns == m.end_ns for m in msgs)
    # released at their end times: receipt times are ~0.4 s and ~0.6 s apart
    recv = np.array([r for r, _ in got]) / 1e9
    assert np.diff(recv) == pytest.approx([0.4, 0.2], abs=0.1)
    assert "dropped bad input (bad-cue): subs.srt line 10" in out


def test_text_node_socket_pull_and_rep(spawn, collector: Collector, run_dir: Path) -> None:
    got = collector.subscribe(TextUtterance, "/text/utterance")
    endpoint = f"ipc://{run_dir}/text-in.sock"
    proc = spawn(node_cmd("nodes.text", "-p", "source=zmq", "-p", f"endpoint={endpoint}", "-p", "socket_type=REP",
                          "-p", "wait_for_subscribers=1", "-p", "max_chars=50"))
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 10_000)
    req.connect(endpoint)
    replies = []
    try:
        collector.spin_for(0.3)
        for payload in [b"plain hello", json.dumps({"text": "from asr", "start_ns": 10, "end_ns": 20,
                                                    "language": "fr"}).encode(),
                        b"\xff\xfe", json.dumps({"text": 5}).encode(), b"   ",
                        json.dumps({"text": "backwards", "start_ns": 9, "end_ns": 3}).encode(),
                        "ünïcode ok".encode()]:
            req.send(payload)
            while not req.poll(20):
                collector.node.spin_once(0.01)
            replies.append(json.loads(req.recv()))
        collector.spin_until(lambda: len(got) >= 3, 10, "three utterances")
    finally:
        req.close()
        ctx.term()
    out = _stop(proc)
    assert proc.returncode == 0, out
    assert [r["ok"] for r in replies] == [True, True, False, False, False, False, True]
    assert "error" in replies[3] and "text: str" in replies[3]["error"]
    msgs = [m for _, m in got]
    assert [m.text for m in msgs] == ["plain hello", "from asr", "ünïcode ok"]
    assert (msgs[1].start_ns, msgs[1].end_ns, msgs[1].language) == (10, 20, "fr")
    assert msgs[0].source == "socket"
    for reason in ("invalid-utf8", "bad-json", "empty", "bad-cue"):
        assert f"dropped bad input ({reason})" in out, out


def test_text_node_missing_file_fails(spawn, tmp_path: Path) -> None:
    proc = spawn(node_cmd("nodes.text", "-p", f"source={tmp_path / 'missing.srt'}"))
    out = _finish(proc)
    assert proc.returncode == 1
    assert "missing.srt' cannot be read" in out and "expected .srt, .vtt or .jsonl" in out


def test_devices_cli_lists_cameras_and_audio() -> None:
    res = subprocess.run([sys.executable, "-m", "mmstream.cli", "devices", "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PULSE_SERVER="unix:/nonexistent/pulse"))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["video"] == [{"path": d.path, "index": d.index, "name": d.name} for d in list_video_devices()]
    assert isinstance(report["audio"], list)
    text = subprocess.run([sys.executable, "-m", "mmstream.cli", "devices"], cwd=REPO, capture_output=True,
                          text=True, timeout=60).stdout
    assert text.startswith("Cameras:") and "Audio devices:" in text
