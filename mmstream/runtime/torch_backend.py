"""torch backend: the reference. Runs the package's model.pt checkpoint in eager mode (CPU or CUDA)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmstream.errors import BackendError, ModelError, missing_extra
from mmstream.runtime.base import Backend
from mmstream.runtime.package import ModelPackage


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, package: ModelPackage, *, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__(package)
        self.device = device
        self.threads = threads
        self.wrapper: Any = None

    def load(self) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendError(f"torch backend: {missing_extra('torch', 'the torch backend')}") from exc
        from mmstream.model.checkpoint import load_checkpoint
        from mmstream.model.fused import InferenceWrapper

        path = self.package.checkpoint_path
        if path is None:
            raise ModelError(f"model package {self.package.directory}: no model.pt checkpoint for the torch backend")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("torch backend: CUDA asked for but torch.cuda.is_available() is False")
        if self.threads:
            torch.set_num_threads(self.threads)
        model, _, _ = load_checkpoint(path)
        self._names = list(model.output_names())
        missing = set(self.package.output_names) - set(self._names)
        if missing:
            raise ModelError(f"{path}: outputs {self._names} lack {sorted(missing)} named in model.json")
        self.wrapper = InferenceWrapper(model).to(self.device).eval()
        self._torch = torch
        self.loaded = True

    @property
    def input_names(self) -> list[str]:
        from mmstream.model.fused import INPUT_NAMES

        return list(INPUT_NAMES)

    @property
    def output_names(self) -> list[str]:
        return list(self._names)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            with torch.inference_mode():
                args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in self.input_names]
                outs = self.wrapper(*args)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"torch backend failed on {self.package.checkpoint_path}: {exc}") from exc
        return {n: o.detach().cpu().numpy() for n, o in zip(self._names, outs)}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": str(self.package.checkpoint_path), "device": self.device,
                "torch": self._torch.__version__ if self.loaded else None}
