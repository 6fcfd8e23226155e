"""Inference node: /sync/window -> fused model -> /perception/emotion + /perception/detections.

Windows are queued by the subscription callback and run in micro-batches (up to ``max_batch``)
between spins, so a burst of windows is batched instead of falling behind. The model package,
its preprocessing and the backend are checked at start (ModelError names file and mismatch).
"""

from __future__ import annotations

import collections
import time

from typing import TYPE_CHECKING

from mmstream.errors import BadWindowError, ParameterError
from mmstream.messages import Detections, EmotionEstimate, Window
from mmstream.node import IDLE, NOW, Component, Node, Param, Wait, run_node
from mmstream.runtime.auto import BACKENDS

if TYPE_CHECKING:
    from mmstream.runtime.pipeline import BatchOutput

PARAMS = [
    Param("model", "default", type=str,
          doc="model package directory (model.onnx + model.json); 'default': the pretrained default package"),
    Param("backend", "auto", choices=BACKENDS, doc="auto: tensorrt, then onnxruntime CUDA, then onnxruntime CPU"),
    Param("fallback", "onnxruntime", choices=("onnxruntime", "torch", "none"),
          doc="backend to switch to if the chosen one fails at run time"),
    Param("intra_op_threads", 2, min=1, max=64, doc="onnxruntime intra-op threads"),
    Param("precision", "fp16", choices=("fp16", "fp32"), doc="tensorrt precision"),
    Param("max_batch", 8, min=1, max=256, doc="largest micro-batch"),
    Param("reliable", False, doc="receive every window and publish every estimate, waiting instead of dropping "
                                 "(use on replay)"),
    Param("keep_last", 16, min=1, doc="windows kept when not reliable"),
    Param("verify", True, doc="check the backend against the package's golden.npz at start"),
    Param("print_estimates", True, doc="log one line per emotion estimate"),
    Param("wait_for_subscribers", 0, min=0, doc="the first estimate waits for this many subscribers of "
                                                "/perception/emotion (replay: late consumers miss nothing)"),
    Param("detections_wait_for_subscribers", 0, min=0,
          doc="the same for /perception/detections (a recorder of both topics on replay: 1)"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="how long to wait for them"),
    Param("window_topic", "/sync/window", type=str),
]


class Inference(Component):
    """Queues windows as they arrive; ``step()`` runs them in micro-batches and publishes the results."""

    NAME = "inference"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        from mmstream.runtime.pipeline import InferencePipeline

        super().__init__(node)
        p = node.params
        model = p["model"]
        if not model:
            raise ParameterError(f"node {node.name!r} parameter 'model' is empty: pass --param model=<package dir> "
                                 f"(make one with `mmstream model export`) or model=default")
        if model == "default":
            from mmstream.pretrained.fetch import default_model_dir

            model = str(default_model_dir())  # ModelError saying to run `mmstream models fetch` if absent
        # each backend takes the options it knows: onnxruntime the threads, tensorrt precision and batch range
        options = {"intra_op_threads": p["intra_op_threads"], "max_batch": p["max_batch"], "precision": p["precision"]}
        self.pipeline = InferencePipeline.open(model, p["backend"], fallback=p["fallback"], verify=p["verify"],
                                               **options)
        self.pipeline.backend.warmup((1,), iterations=2)
        node.log.info("model %s on %s: %s", model, self.pipeline.backend_name, self.pipeline.backend.info())
        self.emotion = node.create_publisher(EmotionEstimate, "/perception/emotion", reliable=p["reliable"],
                                             hold_first_for=p["wait_for_subscribers"],
                                             hold_timeout_s=p["wait_timeout_s"])
        self.detections = node.create_publisher(Detections, "/perception/detections", reliable=p["reliable"],
                                                hold_first_for=p["detections_wait_for_subscribers"],
                                                hold_timeout_s=p["wait_timeout_s"])
        self.queue: collections.deque[tuple[Window, float]] = collections.deque()
        node.create_subscription(Window, p["window_topic"], self.on_window,
                                 keep_last=None if p["reliable"] else p["keep_last"])

    def on_window(self, window: Window) -> None:
        self.queue.append((window, time.perf_counter()))

    def step(self) -> Wait:
        if not self.queue:
            return IDLE
        batch = [self.queue.popleft() for _ in range(min(self.node.params["max_batch"], len(self.queue)))]
        for size, out in self.run_batch(batch):
            self.publish(out, size)
        return NOW if self.queue else IDLE

    def run_batch(self, batch: list[tuple[Window, float]]) -> list[tuple[int, BatchOutput]]:
        """[(batch size, BatchOutput)]; a window the preprocessing rejects is counted and dropped alone."""
        try:
            return [(len(batch), self.pipeline.run([w for w, _ in batch], [t for _, t in batch]))]
        except BadWindowError as exc:
            if len(batch) == 1:
                self.node.count_rejected("bad_window", f"window starting {batch[0][0].start_ns} ns: {exc}")
                return []
            return [r for item in batch for r in self.run_batch([item])]

    def publish(self, out: BatchOutput, batch_size: int) -> None:
        for est, det in zip(out.estimates, out.detections):
            if est is not None:
                self.emotion.publish(est)
                if self.node.params["print_estimates"]:
                    present = "+".join(m for m, on in est.presence.items() if on) or "nothing"
                    self.node.log.info("window %.3f-%.3f s: %s %.2f (%s) %s batch %d %.1f ms",
                                       est.window_start_ns / 1e9, est.window_end_ns / 1e9, est.top_label,
                                       est.top_prob, present, est.backend, batch_size, est.latency_ms["total"])
            if det is not None:
                self.detections.publish(det)

    def close(self) -> None:
        self.pipeline.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(Inference, argv)


if __name__ == "__main__":
    raise SystemExit(main())
