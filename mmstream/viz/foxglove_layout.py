"""The Foxglove layout shipped as ``config/foxglove_layout.json``, built from the bridge's topics.

Panel configs are written with the SDK's ``foxglove.layouts`` classes (so the field names are the
app's), arranged in the layout file format the app's "Import from file…" reads: ``configById``
plus a ``layout`` tree of splits. Regenerate after changing topics or labels::

    python -m mmstream.viz.foxglove_layout > config/foxglove_layout.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mmstream.model.config import EMOTION_LABELS  # torch-free
from mmstream.viz.foxglove_bridge import TOPICS

EMOTION_COLORS = ("#e5484d", "#8e4ec6", "#6e56cf", "#f5d90a", "#3e63dd", "#f76b15", "#8b8d98")


def _config(panel: Any) -> dict[str, Any]:
    """The panel's config as the app stores it (None fields dropped)."""
    return json.loads(panel.to_json())["config"]


def panel_configs(labels: tuple[str, ...] = EMOTION_LABELS) -> dict[str, dict[str, Any]]:
    import foxglove.layouts as fl

    image = fl.ImagePanel(config=fl.ImageConfig(image_mode=fl.ImageModeConfig(
        image_topic=TOPICS["image"], synchronize=False,
        annotations={TOPICS["faces"]: fl.ImageAnnotationSettings(visible=True)})))
    emotion = fl.PlotPanel(config=fl.PlotConfig(
        paths=[fl.PlotSeries(value=f"{TOPICS['emotion']}.probs.{lab}", label=lab, color=color, enabled=True,
                             timestamp_method="receiveTime") for lab, color in zip(labels, EMOTION_COLORS * 2)],
        min_y_value=0.0, max_y_value=1.0, show_legend=True, legend_display="top", is_synced=True,
        x_axis_val="timestamp", following_view_width=30.0, y_axis_label="probability"))
    audio = fl.PlotPanel(config=fl.PlotConfig(
        paths=[fl.PlotSeries(value=f"{TOPICS['audio_level']}.level", label="audio level (0 = -60 dBFS)",
                             color="#30a46c", enabled=True, timestamp_method="receiveTime"),
               fl.PlotSeries(value=f"{TOPICS['events']}.scores.speech_present", label="speech probability",
                             color="#0090ff", enabled=True, timestamp_method="receiveTime"),
               fl.PlotSeries(value=f"{TOPICS['events']}.scores.face_present", label="face present",
                             color="#e54666", enabled=True, timestamp_method="receiveTime")],
        min_y_value=0.0, max_y_value=1.0, show_legend=True, legend_display="top", is_synced=True,
        x_axis_val="timestamp", following_view_width=30.0))
    text = fl.LogPanel(config=fl.LogConfig(topic_to_render=TOPICS["text"], min_log_level=1, show_name=True))
    emotion_now = fl.RawMessagesPanel(config=fl.RawMessagesConfig(topic_path=f"{TOPICS['emotion']}",
                                                                  diff_enabled=False, expansion="all"))
    topics_table = fl.TablePanel(config=fl.TableConfig(topic_path=f"{TOPICS['summary']}.topics"))
    nodes_table = fl.TablePanel(config=fl.TableConfig(topic_path=f"{TOPICS['summary']}.nodes"))
    return {"Image!camera": _config(image), "Plot!emotion": _config(emotion), "Plot!audio": _config(audio),
            "Log!text": _config(text), "RawMessages!emotion": _config(emotion_now),
            "Table!topics": _config(topics_table), "Table!nodes": _config(nodes_table)}


def build_layout(labels: tuple[str, ...] = EMOTION_LABELS) -> dict[str, Any]:
    """camera+boxes | emotion plot / audio+speech plot ; text log | emotion now | nodes | topics."""
    def split(first: Any, second: Any, direction: str, percent: float) -> dict[str, Any]:
        return {"first": first, "second": second, "direction": direction, "splitPercentage": percent}

    top = split("Image!camera", split("Plot!emotion", "Plot!audio", "column", 55), "row", 50)
    bottom = split(split("Log!text", "RawMessages!emotion", "row", 55),
                   split("Table!nodes", "Table!topics", "row", 35), "row", 50)
    return {"configById": panel_configs(labels), "globalVariables": {}, "userNodes": {},
            "playbackConfig": {"speed": 1.0}, "layout": split(top, bottom, "column", 62)}


def layout_json(labels: tuple[str, ...] = EMOTION_LABELS) -> str:
    return json.dumps(build_layout(labels), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(layout_json())
