"""Benchmark: training windows per second on CPU, and dataset build time per hour of recording.

Prints JSON. Baselines measured in the same run:
  * training: the bare model step (forward + backward + AdamW on one batch already in memory) next to
    the full training loop (memory-mapped cache -> tokens -> modality dropout -> step), so the
    data path's overhead is visible;
  * dataset build: only reading + decoding the same bags next to the full build (bag -> synchronizer
    -> fused_v1 preprocessing -> .npy cache).

    .venv/bin/python bench/bench_train.py [--sessions 4] [--segments 30] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# OpenBLAS worker threads spin after each small matmul of the log-mel front end: 4.3 ms vs 1.1 ms per
# 1 s window measured here (the inference node sets the same); must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = {"embed_dim": 32, "attention_heads": 2, "video": {"frames": 4, "size": 32, "channels": [8, 16, 32]},
         "audio": {"n_mels": 32, "n_frames": 100, "channels": [8, 16, 32]},
         "text": {"embed_dim": 32, "vocab_size": 128}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--segments", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from mmstream.bag.reader import BagReader
    from mmstream.model.fused import FusedModel
    from mmstream.train.config import TrainConfig
    from mmstream.train.dataset import read_manifest
    from mmstream.train.synthetic import EVENTS, LABELS, SynthConfig, generate
    from mmstream.train.trainer import model_config, prepare_dataset, to_torch, train
    from mmstream.preprocess.tokenizer import build_vocab

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as td:
        d = Path(td)
        generate(d / "synth", SynthConfig(sessions=args.sessions, segments_per_session=args.segments))
        manifest = d / "synth" / "manifest.json"
        cfg = TrainConfig.from_dict({
            "out_dir": str(d / "run"), "device": "cpu",
            "data": {"manifest": str(manifest), "emotion_labels": list(LABELS), "event_labels": list(EVENTS),
                     "sync": {"window_s": 1.0, "hop_s": 0.5, "frames_per_window": 4},
                     "split_fractions": [0.5, 0.25, 0.25]},
            "model": {"overrides": MODEL},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size, "patience": 100,
                      "num_threads": args.threads}})
        # -- dataset build vs bare bag reading
        t0 = time.perf_counter()
        n_msgs = 0
        for r in read_manifest(manifest):
            for _ in BagReader(r.bag).messages():
                n_msgs += 1
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = prepare_dataset(cfg, progress=False)
        build_s = time.perf_counter() - t0
        rec_s = ds.meta["stats"]["recording_s"]
        # -- bare model step on one in-memory batch
        mcfg = model_config(cfg, ds.emotion_labels, ds.event_labels)
        model = FusedModel(mcfg).train()
        vocab = build_vocab(ds.texts, 128)
        batch = to_torch(ds.feed(np.arange(args.batch_size), vocab, mcfg.text.max_tokens), torch.device("cpu"))
        opt = torch.optim.AdamW(model.parameters())
        steps = 60
        for i in range(steps + 3):
            if i == 3:
                t0 = time.perf_counter()
            out = model(batch)
            loss = torch.nn.functional.cross_entropy(out["emotion_logits"], batch["labels"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        bare = steps * args.batch_size / (time.perf_counter() - t0)
        # -- the full training loop
        res = train(cfg, dataset=ds, progress=False)
    print(json.dumps({
        "device": "cpu", "torch_threads": args.threads,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "dataset": {"recording_s": rec_s, "windows": len(ds), "bag_messages": n_msgs,
                    "build_s": round(build_s, 3), "build_s_per_hour_of_recording": round(build_s / rec_s * 3600, 1),
                    "baseline_bag_read_s": round(read_s, 3),
                    "baseline_bag_read_s_per_hour": round(read_s / rec_s * 3600, 1),
                    "windows_per_s": round(len(ds) / build_s, 1)},
        "training": {"train_windows_per_s": round(res.windows_per_s, 1),
                     "baseline_bare_step_windows_per_s": round(bare, 1),
                     "loop_overhead_fraction": round(1 - res.windows_per_s / bare, 3),
                     "epochs": res.epochs_run, "batch_size": args.batch_size,
                     "model": "fused_v1 (tiny: embed 32, video 4x32x32, log-mel 32x100, GRU text)"},
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
