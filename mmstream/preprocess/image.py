"""Frame / face-crop preparation, numpy only: square crop, bilinear resize, RGB, normalize."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def square_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """Centre square (x1, y1, x2, y2) of an H×W image."""
    side = min(height, width)
    y1, x1 = (height - side) // 2, (width - side) // 2
    return x1, y1, x1 + side, y1 + side


@lru_cache(maxsize=32)
def _taps(n_in: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source indices (i0, i1) and weight of i1 for each of ``size`` outputs (align_corners=False)."""
    pos = np.clip((np.arange(size) + 0.5) * (n_in / size) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    return i0, np.minimum(i0 + 1, n_in - 1), (pos - i0).astype(np.float32)


def resize_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """H×W×C uint8/float -> size×size×C float32, bilinear (align_corners=False sampling)."""
    y0, y1, wy = _taps(img.shape[0], size)
    x0, x1, wx = _taps(img.shape[1], size)
    wy, wx = wy[:, None, None], wx[None, :, None]
    rows0, rows1 = img[y0], img[y1]  # size×W×C: only the rows we need
    top = rows0[:, x0].astype(np.float32)
    top += (rows0[:, x1] - top) * wx
    bottom = rows1[:, x0].astype(np.float32)
    bottom += (rows1[:, x1] - bottom) * wx
    top += (bottom - top) * wy
    return top


def prepare_frame(frame: np.ndarray, size: int, mean: float, std: float, encoding: str = "bgr8",
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """One H×W×C uint8 frame (bgr8/rgb8/mono8) -> 3×size×size float32 RGB normalized (x/255-mean)/std.

    ``box`` (x1, y1, x2, y2) crops a face; default is the centre square.
    """
    if frame.ndim != 3:
        raise ValueError(f"frame shape {frame.shape} (expected H×W×C)")
    x1, y1, x2, y2 = box if box is not None else square_crop_box(frame.shape[0], frame.shape[1])
    crop = frame[max(0, y1):y2, max(0, x1):x2]
    if crop.size == 0:
        raise ValueError(f"crop box {box} is empty for a frame of {frame.shape[1]}x{frame.shape[0]}")
    img = resize_bilinear(crop, size)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif encoding == "bgr8":
        img = img[..., ::-1]
    return ((img * (1.0 / 255.0) - mean) / std).transpose(2, 0, 1).astype(np.float32)
