"""The in-process pipeline equals `bag play` through the node graph (real processes), value for value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bag_helpers import write_robot_bag
from tests.conftest import REPO

SAMPLE = REPO / "mmstream/data/sample.mcap"
ROBOT_MAP = {"/camera/image_raw": "camera", "/audio/audio": "microphone", "/speech/text": "text"}

# the demo graph (launch/demo.yaml's synchronizer and inference parameters), recording the estimates
GRAPH = """
launch:
  - arg: {name: out}
  - node:
      exec: player
      name: player
      required: true
      params: {bag: BAG, fast: true, keyboard: false, wait_for_subscribers: 1, topic_map: MAP}
  - node:
      exec: synchronizer
      name: synchronizer
      params: {use_sim_time: true, reliable_input: true, reliable_output: true, text_horizon_s: 1.5, SYNC_HOLD}
  - node:
      exec: inference
      name: inference
      params: {use_sim_time: true, reliable: true, print_estimates: false, INFERENCE_HOLD}
  - node:
      exec: recorder
      name: recorder
      params: {output: $(var out), topics: [/perception/emotion, /perception/detections], progress_s: 0}
"""


def _values(e) -> tuple:  # noqa: ANN001 (everything but the latencies, which are wall time)
    return (e.header.stamp_ns, e.window_start_ns, e.window_end_ns, e.labels, e.probs, e.top_label, e.top_prob,
            e.presence, e.contribution)


def _det_values(d) -> tuple:  # noqa: ANN001
    return (d.window_start_ns, d.window_end_ns, d.event_labels, d.event_scores, d.boxes.tolist(),
            d.box_scores.tolist(), d.image_width, d.image_height)


def graph_outputs(spawn, tmp_path: Path, bag: Path, topic_map: dict[str, str]) -> tuple[list, list]:  # noqa: ANN001
    from mmstream.bag.reader import BagReader
    from mmstream.messages import Detections, EmotionEstimate

    launch = tmp_path / "graph.yaml"
    text = GRAPH.replace("BAG", str(bag)).replace("MAP", "{" + ", ".join(f"{k}: {v}" for k, v in topic_map.items()) + "}")
    text = text.replace("SYNC_HOLD", "wait_for_subscribers: 1")
    # the recorder misses neither the first estimate nor the first detection
    text = text.replace("INFERENCE_HOLD", "wait_for_subscribers: 1, detections_wait_for_subscribers: 1")
    launch.write_text(text)
    out = tmp_path / "graph_out.mcap"
    proc = spawn([sys.executable, "-m", "mmstream.cli", "launch", str(launch), f"out:={out}"])
    log, _ = proc.communicate(timeout=100)
    assert proc.returncode == 0, log[-3000:]
    msgs = [m.msg for m in BagReader(out).messages()]
    return ([m for m in msgs if isinstance(m, EmotionEstimate)], [m for m in msgs if isinstance(m, Detections)])


def in_process_outputs(bag: Path, topic_map: dict[str, str]) -> tuple[list, list, int]:
    from mmstream.process import ProcessConfig
    from mmstream.process.task import BagTask, run_task
    from mmstream.process.worker import open_pipeline
    from mmstream.process.model_bundle import resolve_model

    cfg = ProcessConfig(topic_map=tuple(topic_map.items()))
    result = run_task(BagTask(str(bag), "x"), cfg, open_pipeline(str(resolve_model("default")), cfg))
    assert not result.error, result.error
    return result.estimates, [d for d in result.detections if d is not None], result.windows


@pytest.mark.timeout(150)
@pytest.mark.parametrize("which", ["sample", "robot"])
def test_in_process_equals_socket_replay(which: str, spawn, run_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    if which == "sample":
        bag, topic_map = SAMPLE, {}
    else:  # a multi-topic rosbag2 directory written by rosbags: Image + CompressedImage, AudioDataStamped, String
        bag, topic_map = tmp_path / "robot", ROBOT_MAP
        write_robot_bag(bag, seconds=4.0)
    graph_est, graph_det = graph_outputs(spawn, tmp_path, bag, topic_map)
    est, det, windows = in_process_outputs(bag, topic_map)
    assert windows == len(est)
    if which == "sample":
        assert len(est) == 23  # what the demo graph emits (bag_windows cuts 26: see mmstream/process/graph_clock.py)
    else:
        assert len(est) >= 5
    assert [_values(e) for e in est] == [_values(e) for e in graph_est]
    assert [_det_values(d) for d in det] == [_det_values(d) for d in graph_det]
    assert all(e.backend == g.backend for e, g in zip(est, graph_est))
