"""A trained model, exported, runs in the inference node process: windows cut from a bag by the
synchronizer go in over ZeroMQ and the node's probabilities equal the training path's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstream.messages import EmotionEstimate, Window
from mmstream.model.checkpoint import load_checkpoint
from mmstream.model.export import export_package
from mmstream.node import Node
from mmstream.train.dataset import WindowDataset, bag_windows, sync_config
from mmstream.train.trainer import train
from tests.conftest import node_cmd, wait_for
from tests.train_support import tiny_config, tiny_synth


@pytest.mark.timeout(120)
def test_trained_exported_model_runs_in_the_inference_node(tmp_path: Path, spawn, run_dir: Path) -> None:  # noqa: ANN001
    manifest = tiny_synth(tmp_path / "synth", sessions=6, segments=6)
    res = train(tiny_config(manifest, tmp_path / "run", epochs=3), progress=False)
    model, vocab, _ = load_checkpoint(res.best_checkpoint)
    spec = export_package(model, vocab, tmp_path / "pkg", fp16=False)
    assert max(spec["parity_max_abs_diff"]["fp32"].values()) <= 1e-4
    ds = WindowDataset(manifest.parent / "ds")
    test_idx = json.loads((tmp_path / "run" / "split.json").read_text())["test"]
    session = ds.sessions[test_idx[0]]
    rec = next(r for r in ds.meta["recordings"] if r["session"] == session)
    by_start = {int(ds.arrays["stamps"][i][0]): i for i in test_idx if ds.sessions[i] == session}
    windows = [w for w in bag_windows(rec["bag"], sync_config(ds.meta["sync"])) if w.start_ns in by_start]
    assert len(windows) >= 8

    proc = spawn(node_cmd("nodes.inference", "--param", f"model={tmp_path / 'pkg'}", "--param", "reliable=true",
                          "--param", "backend=onnxruntime", "--param", "print_estimates=false"))
    got: list[EmotionEstimate] = []
    with Node("feeder", run_dir=run_dir) as node:
        sub = node.create_subscription(EmotionEstimate, "/perception/emotion", got.append, keep_last=None)
        pub = node.create_publisher(Window, "/sync/window", reliable=True)
        assert pub.wait_for_subscribers(1, timeout_s=60), "inference node never subscribed"
        wait_for(lambda: (node.spin_once(0.02), sub.publisher_connected)[1], 30, "the estimate publisher's handshake")
        for w in windows:
            pub.publish(w)
        deadline = time.monotonic() + 30
        while len(got) < len(windows) and time.monotonic() < deadline and proc.poll() is None:
            node.spin_once(0.05)
    assert len(got) == len(windows)
    idx = np.asarray([by_start[e.window_start_ns] for e in got])
    feed = ds.feed(idx, vocab, model.cfg.text.max_tokens)  # the training path: cached features, torch
    order = np.argsort(np.argsort(idx))
    with torch.no_grad():
        probs = torch.softmax(model({k: torch.from_numpy(np.ascontiguousarray(feed[k])) for k in
                                     ("frames", "frame_mask", "logmel", "audio_mask", "tokens", "presence")})
                              ["emotion_logits"], -1).numpy()[order]
    live = np.asarray([e.probs for e in got])
    assert got[0].labels == ["angry", "happy", "sad", "neutral"]
    np.testing.assert_allclose(live, probs, atol=1e-4)
