"""The inference node with a backend that fails mid-run: a fault for `mmstream bench faults`.

The node is the real one (nodes/inference.py); after ``fail_after_batches`` micro-batches its
ONNX Runtime session starts raising what ONNX Runtime raises when a provider breaks mid-run
(``RuntimeException``, as a lost CUDA context does). Production code is untouched: the backend's
own error handling turns that into a BackendError and the pipeline's fallback takes over. The
failing backend calls itself ``onnxruntime+fault`` so estimates show which backend made them.

    exec: bench.faulty_inference   (from the repository root)
"""

from __future__ import annotations

from typing import Any

from mmstream.node import Node, Param, run_node
from nodes.inference import PARAMS as INFERENCE_PARAMS
from nodes.inference import Inference

PARAMS = [*INFERENCE_PARAMS,
          Param("fail_after_batches", 6, min=0, doc="micro-batches the backend runs before it starts failing")]
FAULTY_NAME = "onnxruntime+fault"


class FailingSession:
    """Wraps an onnxruntime InferenceSession: ``run`` works ``ok_runs`` times, then always raises."""

    def __init__(self, session: Any, ok_runs: int) -> None:
        self.session = session
        self.ok_runs = ok_runs

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if self.ok_runs <= 0:
            from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

            raise RuntimeException("injected fault: CUDA failure 700: an illegal memory access was encountered")
        self.ok_runs -= 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


class FaultyInference(Inference):
    NAME = "faulty_inference"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        backend = self.pipeline.backend
        if backend.name != "onnxruntime":
            raise SystemExit(f"faulty_inference injects into onnxruntime only, got backend {backend.name}")
        backend.session = FailingSession(backend.session, node.params["fail_after_batches"])
        backend.name = FAULTY_NAME  # estimates made by the failing backend say so
        node.log.info("fault injection: backend fails after %d batches", node.params["fail_after_batches"])


def main(argv: list[str] | None = None) -> int:
    return run_node(FaultyInference, argv)


if __name__ == "__main__":
    raise SystemExit(main())
