#!/usr/bin/env bash
# GPU check: what can only be verified on a machine with an NVIDIA GPU, in one run of < 5 minutes,
# written to one JSON file. Needs torch with CUDA and onnxruntime; TensorRT is optional.
#
#   bash bench/gpu_check.sh [OUT.json]        (default: $OUT/gpu_check.json, else ./gpu_check.json)
#
# Steps (each timed, each recorded even when it fails or is skipped, with the reason):
#   environment  python, torch + CUDA, GPU, onnxruntime providers, tensorrt importable?
#   parity       on the fused_v1 package (exported here, seed 0, untrained) and the pretrained default
#                package (when fetched; MMSTREAM_DEFAULT_MODEL=<dir> overrides): the torch backend on CUDA
#                and ONNX Runtime CPU (and ONNX Runtime CUDA when present) against golden.npz and against
#                each other, within the golden tolerances (mmstream.runtime.pipeline.GOLDEN_ATOL);
#                p50/p99 latency at batch 1 and 8
#   train        `mmstream model train --device cuda` on a tiny synthetic benchmark (2 epochs)
#   tensorrt     tests/test_runtime_tensorrt.py (marked gpu) and the fake-tensorrt tests, when
#                `import tensorrt` works; else the reason
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_ITERS (default 100).
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
RESULT="${1:-${OUT:-.}/gpu_check.json}"
WORK="$(mktemp -d /tmp/gpu_check.XXXXXX)"
PARTS="$WORK/parts"
mkdir -p "$PARTS" "$(dirname "$RESULT")"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
T_START=$(date +%s)

# step NAME TIMEOUT_S CMD...: runs CMD, keeps its output tail, writes $PARTS/NAME.step.json
step() {
  local name="$1" limit="$2"; shift 2
  local t0 rc
  t0=$(date +%s.%N)
  timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  "$PY" - "$name" "$rc" "$t0" "$limit" "$WORK/$name.log" "$PARTS/$name.step.json" <<'EOF'
import json, sys, time
name, rc, t0, limit, log, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
tail = open(log, errors="replace").read()[-3000:]
json.dump({"rc": rc, "seconds": round(time.time() - t0, 1), "timed_out": rc in (124, 137),
           "limit_s": int(limit), "log_tail": tail}, open(out, "w"))
EOF
  echo "[gpu_check] $name: rc=$rc" >&2
}

# ------------------------------------------------------------------ environment
cat >"$WORK/env.py" <<'EOF'
import json, platform, sys
out = {"python": platform.python_version(), "machine": platform.machine(), "platform": platform.platform()}
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out["compute_capability"] = list(torch.cuda.get_device_capability(0))
except Exception as exc:  # noqa: BLE001
    out["torch"] = f"not usable: {type(exc).__name__}: {exc}"
try:
    import onnxruntime as ort
    out["onnxruntime"] = ort.__version__
    out["onnxruntime_providers"] = ort.get_available_providers()
except Exception as exc:  # noqa: BLE001
    out["onnxruntime"] = f"not usable: {type(exc).__name__}: {exc}"
try:
    import tensorrt
    out["tensorrt"] = tensorrt.__version__
    from mmstream.runtime.engine_cache import tensorrt_cuda_flavour
    from mmstream.runtime.tensorrt_backend import tensorrt_unavailable_reason
    out["tensorrt_cuda_flavour"] = tensorrt_cuda_flavour(torch_cuda=out.get("torch_cuda"))
    out["tensorrt_unavailable_reason"] = tensorrt_unavailable_reason()
except Exception as exc:  # noqa: BLE001
    out["tensorrt"] = None
    out["tensorrt_unavailable_reason"] = f"{type(exc).__name__}: {exc}"
json.dump(out, open(sys.argv[1], "w"))
print(json.dumps(out))
EOF
step environment 60 "$PY" "$WORK/env.py" "$PARTS/environment.json"

# ------------------------------------------------------------------ parity + latency
cat >"$WORK/parity.py" <<'EOF'
"""torch on CUDA vs ONNX Runtime (CPU, and CUDA if present) on one package: golden parity, cross parity, latency."""
import json, os, sys, time
from pathlib import Path

import numpy as np

from mmstream.runtime.auto import create_backend
from mmstream.runtime.onnxruntime_backend import available_providers
from mmstream.runtime.package import load_package
from mmstream.runtime.pipeline import GOLDEN_ATOL

label, pkg_dir, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
ITERS = int(os.environ.get("GPU_CHECK_ITERS", "100"))
ATOL = GOLDEN_ATOL["fp32"]


def latency(fn, iters=ITERS, warmup=10):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def batch_of(feed, n):
    return {k: np.ascontiguousarray(np.concatenate([v] * -(-n // len(v)))[:n]) for k, v in feed.items()}


def diff(a, b):
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())


pkg = load_package(pkg_dir)
golden = pkg.golden() or {}
base = next(iter(golden.values()))["in"] if golden else pkg.dummy_feed(1)
feeds = {1: batch_of(base, 1), 8: batch_of(base, 8)}
report = {"package": str(pkg_dir), "name": pkg.name, "golden_atol": ATOL, "backends": {}}
runs = [("onnxruntime-cpu", "onnxruntime", {}), ("torch-cuda", "torch", {"device": "cuda"})]
if "CUDAExecutionProvider" in available_providers():
    runs.append(("onnxruntime-cuda", "onnxruntime-cuda", {}))
outputs = {}
try:
    import torch
    report["torch_cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)  # TF32 convolutions: ~1e-3 rel. error
    report["torch_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
except Exception:  # noqa: BLE001
    pass
for name, kind, opts in runs:
    r = {}
    if kind == "torch" and pkg.checkpoint_path is None:
        report["backends"][name] = {"skipped": "package has no model.pt; its golden.npz holds the torch fp32 outputs"}
        continue
    try:
        be = create_backend(kind, pkg, **opts)
        diffs = {f"{case}/{n}": diff(be.infer(d["in"])[n], w) for case, d in golden.items() for n, w in d["out"].items()}
        if diffs:
            worst = max(diffs, key=diffs.get)
            r.update(golden_max_abs_diff=diffs[worst], golden_worst=worst, golden_ok=diffs[worst] <= ATOL)
        outputs[name] = {b: be.infer(f) for b, f in feeds.items()}
        for b, f in feeds.items():
            r[f"batch{b}"] = latency(lambda f=f: be.infer(f))
        be.close()
    except Exception as exc:  # noqa: BLE001 - recorded, the check goes on
        r["error"] = f"{type(exc).__name__}: {exc}"
    report["backends"][name] = r
    print(name, json.dumps(r), flush=True)
ref = outputs.get("onnxruntime-cpu")
for name in ("torch-cuda", "onnxruntime-cuda"):
    if ref and name in outputs:
        d = max(diff(outputs[name][b][n], ref[b][n]) for b in feeds for n in ref[b] if n in outputs[name][b])
        report[f"{name}_vs_onnxruntime_cpu_max_abs_diff"] = d
        report[f"{name}_vs_onnxruntime_cpu_ok"] = d <= ATOL
json.dump(report, open(out_path, "w"), indent=1)
EOF

cat >"$WORK/packages.py" <<'EOF'
"""Export fused_v1 (seed 0) into the test fixture's cache path (so the TensorRT tests reuse it); find the default."""
import json, os, sys, tempfile
from pathlib import Path

sys.path.insert(0, os.getcwd())
from tests.model_package_support import _source_key, export_default_package

cache = Path(tempfile.gettempdir()) / "mmstream-test-packages"
cache.mkdir(exist_ok=True)
fused = export_default_package(cache / f"fused_v1-{_source_key()}")
out = {"fused_v1": str(fused)}
try:
    if os.environ.get("MMSTREAM_DEFAULT_MODEL"):
        out["default"] = os.environ["MMSTREAM_DEFAULT_MODEL"]
    else:
        from mmstream.pretrained.fetch import default_model_dir
        out["default"] = str(default_model_dir())
except Exception as exc:  # noqa: BLE001
    out["default_skipped"] = f"{type(exc).__name__}: {exc}"
json.dump(out, open(sys.argv[1], "w"))
print(json.dumps(out))
EOF
step packages 150 "$PY" "$WORK/packages.py" "$PARTS/packages.json"
for pkg in fused_v1 default; do
  dir=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ''))" "$PARTS/packages.json" "$pkg" 2>/dev/null)
  if [ -n "$dir" ]; then
    step "parity_$pkg" 90 "$PY" "$WORK/parity.py" "$pkg" "$dir" "$PARTS/parity_$pkg.json"
  fi
done

# ------------------------------------------------------------------ training on CUDA
cat >"$WORK/train_setup.py" <<'EOF'
"""A tiny synthetic benchmark and a training config for it (device cuda, 2 epochs)."""
import json, sys
from pathlib import Path

from mmstream.train.synthetic import EVENTS, LABELS, SynthConfig, generate

work = Path(sys.argv[1])
generate(work / "synth", SynthConfig(sessions=4, segments_per_session=6, fps=4, frame_size=32, seed=0))
cfg = {"out_dir": str(work / "run"), "seed": 0, "device": "cuda",
       "data": {"manifest": str(work / "synth" / "manifest.json"), "dataset_dir": str(work / "ds"),
                "sync": {"window_s": 1.0, "hop_s": 1.0, "frames_per_window": 2},
                "emotion_labels": list(LABELS), "event_labels": list(EVENTS), "split_fractions": [0.5, 0.25, 0.25]},
       "model": {"overrides": {"embed_dim": 16, "attention_heads": 2, "dropout": 0.0,
                               "video": {"frames": 2, "size": 16, "channels": [8, 16]},
                               "audio": {"n_mels": 16, "n_frames": 50, "n_fft": 400, "hop_length": 320,
                                         "channels": [8, 16]},
                               "text": {"embed_dim": 16, "vocab_size": 64, "max_tokens": 12}}},
       "train": {"epochs": 2, "batch_size": 16, "lr": 0.01, "patience": 100}}
(work / "train.yaml").write_text(json.dumps(cfg, indent=1))  # JSON is YAML
EOF
step train_setup 60 "$PY" "$WORK/train_setup.py" "$WORK"
step train 90 "$PY" -m mmstream.cli model train --config "$WORK/train.yaml" --device cuda --epochs 2 --no-progress

# ------------------------------------------------------------------ TensorRT tests
if "$PY" -c "import tensorrt" >/dev/null 2>&1; then
  step tensorrt_tests 180 "$PY" -m pytest -q -p no:cacheprovider --timeout 150 -rs \
    --junitxml "$WORK/tensorrt_junit.xml" tests/test_runtime_tensorrt.py tests/test_runtime_tensorrt_fake.py
else
  "$PY" -c "import tensorrt" >"$WORK/no_tensorrt.log" 2>&1
  echo "{\"skipped\": true}" >"$PARTS/tensorrt_tests.skip.json"
fi

# ------------------------------------------------------------------ one JSON
"$PY" - "$PARTS" "$WORK" "$RESULT" "$T_START" <<'EOF'
import json, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path

parts, work, result, t_start = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
out = {"check": "mmstream gpu_check", "seconds_total": round(time.time() - t_start, 1), "steps": {}}
for p in sorted(parts.glob("*.step.json")):
    out["steps"][p.name.removesuffix(".step.json")] = json.loads(p.read_text())
for name in ("environment", "packages", "parity_fused_v1", "parity_default"):
    p = parts / f"{name}.json"
    out[name] = json.loads(p.read_text()) if p.is_file() else None
train_log = (work / "train.log")
if train_log.is_file():
    text = train_log.read_text(errors="replace")
    try:
        out["train"] = json.loads(text[text.index("{"):text.rindex("}") + 1])
    except ValueError:
        out["train"] = None
junit = work / "tensorrt_junit.xml"
if junit.is_file():
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        state = "passed"
        for kind in ("failure", "error", "skipped"):
            el = case.find(kind)
            if el is not None:
                state = kind if kind != "failure" else "failed"
                cases.append({"test": case.get("name"), "state": state, "message": (el.get("message") or "")[:500]})
                break
        else:
            cases.append({"test": case.get("name"), "state": state})
    out["tensorrt_tests"] = {"cases": cases, **{s: sum(c["state"] == s for c in cases)
                                                for s in ("passed", "failed", "error", "skipped")}}
elif (parts / "tensorrt_tests.skip.json").is_file():
    out["tensorrt_tests"] = {"skipped": "tensorrt is not importable: " +
                             (work / "no_tensorrt.log").read_text(errors="replace")[-500:].strip()}
checks = {}
for name in ("parity_fused_v1", "parity_default"):
    r = out.get(name) or {}
    for be, v in (r.get("backends") or {}).items():
        if "golden_ok" in v:
            checks[f"{name}.{be}.golden"] = v["golden_ok"]
        if "error" in v:
            checks[f"{name}.{be}.runs"] = False
    for k, v in r.items():
        if k.endswith("_ok"):
            checks[f"{name}.{k}"] = v
checks["train.rc0"] = out["steps"].get("train", {}).get("rc") == 0
if "cases" in (out.get("tensorrt_tests") or {}):
    checks["tensorrt_tests.no_failures"] = out["tensorrt_tests"]["failed"] + out["tensorrt_tests"]["error"] == 0
out["checks"] = checks
out["all_ok"] = all(checks.values())
result.write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps({"result": str(result), "all_ok": out["all_ok"], "checks": checks,
                  "seconds_total": out["seconds_total"]}, indent=1))
EOF
