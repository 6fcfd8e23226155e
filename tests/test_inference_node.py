"""The inference node as a real process: windows in over ZeroMQ, estimates and detections out;
micro-batching under a burst; clear start-up failures for a missing or mismatched model."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from mmstream.messages import Detections, EmotionEstimate, TextUtterance, Window
from mmstream.node import Node
from tests.conftest import node_cmd, wait_for
from tests.model_package_support import copy_package, model_package  # noqa: F401 - fixture


def _window(i: int) -> Window:
    rng = np.random.default_rng(i)
    start = 1_000_000_000 * (i + 1)
    n = 16000
    return Window(start_ns=start, end_ns=start + 1_000_000_000, sample_rate_hz=16000,
                  utterances=[TextUtterance(start_ns=start, end_ns=start + 5, text=f"hello number {i}")],
                  presence={"video": True, "audio": i % 2 == 0, "text": True}, coverage={},
                  frames=rng.integers(0, 256, (5, 240, 320, 3), dtype=np.uint8), frame_mask=np.ones(5, bool),
                  frame_stamps_ns=np.arange(5, dtype=np.int64) + start,
                  audio=(0.1 * rng.standard_normal((n, 1))).astype(np.float32) if i % 2 == 0
                  else np.zeros((0, 1), np.float32),
                  audio_mask=np.ones(n if i % 2 == 0 else 0, bool), audio_chunk_stamps_ns=np.zeros(1, np.int64))


def test_windows_in_estimates_out_with_micro_batching(spawn, run_dir: Path,  # noqa: ANN001
                                                       model_package: Path) -> None:  # noqa: F811
    proc = spawn(node_cmd("nodes.inference", "--param", f"model={model_package}", "--param", "reliable=true",
                          "--param", "backend=onnxruntime", "--param", "max_batch=8"))
    with Node("feeder", run_dir=run_dir) as node:
        est: list[EmotionEstimate] = []
        det: list[Detections] = []
        subs = [node.create_subscription(EmotionEstimate, "/perception/emotion", est.append, keep_last=None),
                node.create_subscription(Detections, "/perception/detections", det.append, keep_last=None)]
        pub = node.create_publisher(Window, "/sync/window", reliable=True)
        assert pub.wait_for_subscribers(1, timeout_s=60), "inference node never subscribed"
        # the node's own publishers have accepted our subscriptions (a handshake, not a sleep)
        wait_for(lambda: (node.spin_once(0.02), all(s.publisher_connected for s in subs))[1], 30, "handshakes")
        n = 24
        for i in range(n):
            pub.publish(_window(i))
        deadline = time.monotonic() + 30
        while (len(est) < n or len(det) < n) and time.monotonic() < deadline and proc.poll() is None:
            node.spin_once(0.05)
    assert len(est) == n and len(det) == n, (len(est), len(det))
    assert [e.window_start_ns for e in est] == [_window(i).start_ns for i in range(n)]
    e = est[1]
    assert e.presence == {"video": True, "audio": False, "text": True} and e.contribution["audio"] == 0.0
    assert est[0].presence["audio"] is True
    assert e.backend == "onnxruntime" and e.latency_ms["total"] >= e.latency_ms["infer"] > 0
    assert abs(sum(e.probs) - 1) < 1e-4 and e.top_label in e.labels
    assert det[0].event_labels == ["face_present", "speech_present", "active_speaker"]
    proc.send_signal(2)
    out = proc.communicate(timeout=10)[0]
    assert proc.returncode == 0, out
    batches = [int(line.split(" batch ")[1].split()[0]) for line in out.splitlines() if " batch " in line]
    assert len(batches) == n and max(batches) > 1, batches  # a burst was micro-batched


def _run_failing(args: list[str], run_dir: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir))
    return subprocess.run(node_cmd("nodes.inference", *args), capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1], env=env)


def test_missing_model_fails_at_start_naming_the_file(run_dir: Path, tmp_path: Path) -> None:
    res = _run_failing(["--param", f"model={tmp_path / 'nowhere'}"], run_dir)
    assert res.returncode == 1
    assert f"model package {tmp_path / 'nowhere'} does not exist" in res.stdout + res.stderr


def test_mismatched_model_fails_at_start_naming_the_mismatch(run_dir: Path, tmp_path: Path,
                                                            model_package: Path) -> None:  # noqa: F811
    pkg = copy_package(model_package, tmp_path / "pkg")
    spec = json.loads((pkg / "model.json").read_text())
    spec["inputs"][4]["shape"] = ["batch", 48]  # tokens: the graph takes 32
    spec["preprocessing"]["params"]["text"]["max_tokens"] = 48
    (pkg / "model.json").write_text(json.dumps(spec))
    res = _run_failing(["--param", f"model={pkg}", "--param", "backend=onnxruntime"], run_dir)
    assert res.returncode == 1
    assert "model.onnx: input 'tokens' has shape ['batch', 32], model.json says ['batch', 48]" in res.stdout + res.stderr


def test_empty_model_param_is_a_parameter_error(run_dir: Path) -> None:
    res = _run_failing(["--param", 'model=""'], run_dir)
    assert res.returncode == 2 and "parameter 'model' is empty" in res.stdout + res.stderr


def test_a_window_the_preprocessing_rejects_is_dropped_alone(run_dir: Path, model_package: Path) -> None:  # noqa: F811
    from mmstream.runtime.pipeline import InferencePipeline
    from mmstream.testing import NodeHarness
    from nodes.inference import Inference

    h = NodeHarness(Inference, {"model": str(model_package), "backend": "onnxruntime"})
    bad = _window(1)
    bad.frames = bad.frames[..., :2]  # two channels: no image encoding has that
    done = h.component.run_batch([(_window(0), 0.0), (bad, 0.0), (_window(2), 0.0)])
    assert [size for size, _ in done] == [1, 1]
    assert [o.estimates[0].window_start_ns for _, o in done] == [_window(0).start_ns, _window(2).start_ns]
    assert h.node.rejected == {"bad_window": 1}
    for window in (_window(3), bad):  # the same through the subscription and step(): published or counted
        h.send("/sync/window", window)
    assert len(h.published("/perception/emotion")) == 1 and h.node.rejected == {"bad_window": 2}
    h.close()
