"""The Backend interface every runtime implements: load, warm up, infer dict -> dict, names, info."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from mmstream.runtime.package import ModelPackage


class Backend(ABC):
    """Runs one model package. Create, ``load()``, optionally ``warmup()``, then ``infer(feed)``.

    ``infer`` takes {input name: numpy array with a leading batch dim} and returns
    {output name: numpy float32 array}; raises BackendError when the runtime fails.
    """

    name: str = ""

    def __init__(self, package: ModelPackage) -> None:
        self.package = package
        self.loaded = False

    @abstractmethod
    def load(self) -> None:
        """Create the session/engine; ModelError if the file is bad, BackendError if the runtime is."""

    @abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @property
    @abstractmethod
    def input_names(self) -> list[str]: ...

    @property
    @abstractmethod
    def output_names(self) -> list[str]: ...

    def input_shapes(self) -> dict[str, list[int | str]]:
        """Input name -> shape as the runtime sees it (str or -1 for dynamic axes)."""
        return {}

    def warmup(self, batch_sizes: tuple[int, ...] = (1,), iterations: int = 3) -> float:
        """Runs dummy batches; returns the seconds it took."""
        t0 = time.perf_counter()
        for b in batch_sizes:
            feed = self.package.dummy_feed(b)
            for _ in range(iterations):
                self.infer(feed)
        return time.perf_counter() - t0

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "model": str(self.package.onnx_path), "name": self.package.name}

    def close(self) -> None:
        """Free the session/engine (optional)."""
