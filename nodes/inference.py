"""Inference node: /sync/window -> fused model -> /perception/emotion + /perception/detections.

Windows are queued by the subscription callback and run in micro-batches (up to ``max_batch``)
between spins, so a burst of windows is batched instead of falling behind. The model package,
its preprocessing and the backend are checked at start (ModelError names file and mismatch).
"""

from __future__ import annotations

import collections
import time

from mmstream.errors import ParameterError
from mmstream.messages import Detections, EmotionEstimate, Window
from mmstream.node import Node, Param, run_node
from mmstream.runtime.auto import BACKENDS

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
    Param("hold_first_estimate", 0, min=0, doc="the first estimate waits (up to 10 s) for this many subscribers "
                                               "of /perception/emotion (replay: late consumers miss nothing)"),
    Param("window_topic", "/sync/window", type=str),
]


def setup(node: Node) -> dict:
    from mmstream.runtime.pipeline import InferencePipeline

    p = node.params
    if not p["model"]:
        raise ParameterError(f"node {node.name!r} parameter 'model' is empty: pass --param model=<package dir> "
                             f"(make one with `mmstream model export`) or model=default")
    if p["model"] == "default":
        from mmstream.pretrained.fetch import default_model_dir

        p["model"] = str(default_model_dir())  # ModelError saying to run `mmstream models fetch` if absent
    # each backend takes the options it knows: onnxruntime the threads, tensorrt precision and batch range
    options = {"intra_op_threads": p["intra_op_threads"], "max_batch": p["max_batch"], "precision": p["precision"]}
    pipeline = InferencePipeline.open(p["model"], p["backend"], fallback=p["fallback"], verify=p["verify"],
                                      **options)
    pipeline.backend.warmup((1,), iterations=2)
    node.log.info("model %s on %s: %s", p["model"], pipeline.backend_name, pipeline.backend.info())
    node.on_shutdown(pipeline.close)
    emotion = node.create_publisher(EmotionEstimate, "/perception/emotion", reliable=p["reliable"],
                                    hold_first_for=p["hold_first_estimate"])
    detections = node.create_publisher(Detections, "/perception/detections")
    queue: collections.deque[tuple[Window, float]] = collections.deque()
    node.create_subscription(Window, p["window_topic"], lambda w: queue.append((w, time.perf_counter())),
                             keep_last=None if p["reliable"] else p["keep_last"])
    return {"pipeline": pipeline, "queue": queue, "emotion": emotion, "detections": detections}


def loop(node: Node, state: dict) -> None:
    pipeline, queue = state["pipeline"], state["queue"]
    max_batch, show = node.params["max_batch"], node.params["print_estimates"]
    while node.ok():
        node.spin_once(0.05 if not queue else 0.0)
        if not queue:
            continue
        batch = [queue.popleft() for _ in range(min(max_batch, len(queue)))]
        for sizes, out in run_batch(node, pipeline, batch):
            publish(node, state, out, sizes, show)


def run_batch(node: Node, pipeline, batch: list) -> list:  # noqa: ANN001
    """[(batch size, BatchOutput)]; a window the preprocessing rejects is counted and dropped alone."""
    try:
        return [(len(batch), pipeline.run([w for w, _ in batch], [t for _, t in batch]))]
    except (ValueError, IndexError) as exc:
        if len(batch) == 1:
            node.count_rejected("bad_window", f"window starting {batch[0][0].start_ns} ns: {exc}")
            return []
        return [r for item in batch for r in run_batch(node, pipeline, [item])]


def publish(node: Node, state: dict, out, batch_size: int, show: bool) -> None:  # noqa: ANN001
    for est, det in zip(out.estimates, out.detections):
        if est is not None:
            state["emotion"].publish(est)
            if show:
                present = "+".join(m for m, on in est.presence.items() if on) or "nothing"
                node.log.info("window %.3f-%.3f s: %s %.2f (%s) %s batch %d %.1f ms", est.window_start_ns / 1e9,
                              est.window_end_ns / 1e9, est.top_label, est.top_prob, present, est.backend,
                              batch_size, est.latency_ms["total"])
        if det is not None:
            state["detections"].publish(det)


def main(argv: list[str] | None = None) -> int:
    state: dict = {}
    return run_node("inference", PARAMS, lambda node: state.update(setup(node)), argv,
                    loop=lambda node: loop(node, state))


if __name__ == "__main__":
    raise SystemExit(main())
