"""Inference benchmark: per backend, batch 1 and 8, p50/p99 latency and throughput, with torch
eager measured in the same run as the baseline; then the inference node's per-window path
(preprocess + infer + postprocess on a realistic window) on ONNX Runtime; then the pretrained
default model (if fetched) on the shipped sample's windows, with the face stage timed apart.

    python bench/bench_inference.py [--model PACKAGE_DIR] [--iters 200] [--threads 2]

Prints one JSON object per line; the last line is a summary with the targets checked.
Without --model it exports the default fused_v1 variant (untrained, seed 0) to a temp dir.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # same as the inference node

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmstream.errors import MmstreamError, optional_dependency  # noqa: E402
from mmstream.messages import TextUtterance  # noqa: E402
from mmstream.runtime.auto import create_backend  # noqa: E402
from mmstream.runtime.package import load_package  # noqa: E402
from mmstream.runtime.pipeline import InferencePipeline, synthetic_window  # noqa: E402


def measure(fn, iters: int, warmup: int = 10) -> dict[str, float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4)}


def backends_to_run(threads: int) -> list[tuple[str, str, dict]]:
    from mmstream.runtime.onnxruntime_backend import available_providers
    from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason

    out = [("torch-eager", "torch", {"threads": threads}),
           ("onnxruntime-cpu", "onnxruntime", {"intra_op_threads": threads})]
    if "CUDAExecutionProvider" in available_providers():
        out.append(("onnxruntime-cuda", "onnxruntime-cuda", {}))
    if tensorrt_unavailable_reason() is None:
        out += [("tensorrt-fp16", "tensorrt", {"precision": "fp16", "max_batch": 8}),
                ("tensorrt-fp32", "tensorrt", {"precision": "fp32", "max_batch": 8})]
    return out


def realistic_window():  # noqa: ANN201
    rng = np.random.default_rng(0)
    w = synthetic_window()
    w.frames = rng.integers(0, 256, (15, 480, 640, 3), dtype=np.uint8)  # 15 VGA frames per 1 s window
    w.frame_mask = np.ones(15, bool)
    w.frame_stamps_ns = np.arange(15, dtype=np.int64)
    w.audio = (0.1 * rng.standard_normal((16000, 1))).astype(np.float32)
    w.utterances = [TextUtterance(start_ns=0, end_ns=1, text="I can't believe how happy I am today!")]
    w.presence = {"video": True, "audio": True, "text": True}
    return w


def pretrained_default_path(threads: int) -> dict | None:
    """The pretrained default model (the one the demo runs) on the sample's windows, in order, as the
    node sees them: per-window latency with and without the face stage (detection + crops)."""
    from mmstream.pretrained.cache import default_model_dir
    from mmstream.sync.config import SyncConfig
    from mmstream.train.dataset import bag_windows

    try:
        model = default_model_dir()
    except MmstreamError as exc:
        print(json.dumps({"backend": "pretrained default model", "skipped": str(exc)}))
        return None
    sample = Path(__file__).resolve().parents[1] / "mmstream" / "data" / "sample.mcap"
    windows = list(bag_windows(sample, SyncConfig(text_horizon_ns=1_500_000_000)))
    pipeline = InferencePipeline.open(model, "onnxruntime", intra_op_threads=threads)
    rows = []
    for _ in range(5):  # five passes over the sample (the tracker restarts with each)
        for w in windows:
            est = pipeline.run([w]).estimates[0]
            if est is not None:
                rows.append(est.latency_ms)
    pipeline.close()

    def pct(values: list[float]) -> dict[str, float]:
        a = np.asarray(values)
        return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}

    out = {"backend": "node-path pretrained default model, onnxruntime-cpu", "windows": len(rows),
           "total": pct([r["total"] for r in rows]),
           "excluding_faces": pct([r["total"] - r.get("preprocess_faces", 0.0) for r in rows]),
           **{stage: pct([r.get(f"preprocess_{stage}", 0.0) for r in rows]) for stage in ("faces", "audio", "text")},
           "infer": pct([r["infer"] for r in rows])}
    print(json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model package dir (default: export fused_v1 to a temp dir)")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="torch threads and onnxruntime intra-op threads")
    args = ap.parse_args(argv)

    if args.model is None:
        args.model = str(Path(tempfile.mkdtemp(prefix="mmstream-bench-")) / "fused_v1")
        t0 = time.perf_counter()
        with optional_dependency("exporting the fused_v1 package to benchmark (or pass --model PACKAGE_DIR)"):
            from mmstream.model.export import export_from

            export_from(args.model, variant="fused_v1")
        print(json.dumps({"event": "exported", "model": args.model, "seconds": round(time.perf_counter() - t0, 1)}))
    pkg = load_package(args.model)
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "model": pkg.name}
    try:
        import torch

        torch.set_num_threads(args.threads)
        env["torch"] = torch.__version__
    except ImportError:
        pass
    import onnxruntime as ort

    env["onnxruntime"] = ort.__version__
    print(json.dumps({"event": "environment", **env}))

    results: dict[tuple[str, int], dict] = {}
    for label, name, opts in backends_to_run(args.threads):
        try:
            be = create_backend(name, pkg, **opts)
        except MmstreamError as exc:
            print(json.dumps({"backend": label, "skipped": str(exc)}))
            continue
        for batch in (1, 8):
            feed = {k: v[:batch] for k, v in pkg.golden()["b8"]["in"].items()}
            r = measure(lambda: be.infer(feed), args.iters)
            r["throughput_windows_per_s"] = round(batch * 1e3 / r["mean_ms"], 1)
            results[(label, batch)] = r
            print(json.dumps({"backend": label, "batch": batch, **r}))
        be.close()

    pipeline = InferencePipeline.open(args.model, "onnxruntime", intra_op_threads=args.threads)
    window = realistic_window()
    pre = measure(lambda: pipeline.preprocessor.prepare([window], pipeline.stream), args.iters)
    node = measure(lambda: pipeline.run([window]), args.iters)
    print(json.dumps({"backend": "node-path onnxruntime-cpu (preprocess only)", "batch": 1, **pre}))
    print(json.dumps({"backend": "node-path onnxruntime-cpu (preprocess+infer+postprocess)", "batch": 1, **node}))

    summary: dict = {"event": "summary"}
    if ("torch-eager", 1) in results and ("onnxruntime-cpu", 1) in results:
        ratio = results[("onnxruntime-cpu", 1)]["p50_ms"] / results[("torch-eager", 1)]["p50_ms"]
        summary["ort_over_torch_p50_batch1"] = round(ratio, 3)
        summary["target_ort_at_most_half_of_torch"] = ratio <= 0.5
    summary["node_p99_ms"] = node["p99_ms"]
    summary["target_node_p99_under_10ms"] = node["p99_ms"] < 10.0
    pretrained = pretrained_default_path(args.threads)
    if pretrained is not None:
        summary["pretrained_default_p99_ms_excluding_faces"] = pretrained["excluding_faces"]["p99_ms"]
        summary["pretrained_default_target_p99_under_10ms_excluding_faces"] = \
            pretrained["excluding_faces"]["p99_ms"] < 10.0
    if ("tensorrt-fp16", 1) in results:
        summary["tensorrt_fp16_p50_batch1_ms"] = results[("tensorrt-fp16", 1)]["p50_ms"]
        summary["target_tensorrt_fp16_p50_under_1ms"] = results[("tensorrt-fp16", 1)]["p50_ms"] < 1.0
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
