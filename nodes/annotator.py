"""Draws face boxes and the current emotion on camera frames and republishes them.

Subscribes to /camera/image, /perception/detections and /perception/emotion; publishes bgr8
frames on /camera/annotated. With ``show_window`` it also shows them in an OpenCV window, but
only where a display exists ($DISPLAY or $WAYLAND_DISPLAY); otherwise it says so once and goes on.
"""

from __future__ import annotations

import os

from mmstream.messages import Detections, EmotionEstimate, ImageFrame
from mmstream.node import Component, Node, Param, run_node
from mmstream.viz.annotate import FrameAnnotator

PARAMS = [
    Param("max_age_s", 2.0, min=0.0, doc="draw detections/emotion at most this far from the frame's stamp"),
    Param("thickness", 2, min=1, max=20, doc="box line width in pixels"),
    Param("show_window", False, doc="also show the frames in an OpenCV window (needs a display)"),
    Param("window_name", "mmstream annotated"),
]


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Annotator(Component):
    NAME = "annotator"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.annotator = FrameAnnotator(max_age_ns=int(p["max_age_s"] * 1e9), thickness=p["thickness"])
        self.pub = node.create_publisher(ImageFrame, "/camera/annotated")
        self.show = p["show_window"] and has_display()
        if p["show_window"] and not self.show:
            node.log.warning("show_window is set but there is no display ($DISPLAY/$WAYLAND_DISPLAY unset): "
                             "publishing on %s only", self.pub.topic)
        node.create_subscription(Detections, "/perception/detections", self.annotator.on_detections, keep_last=4)
        node.create_subscription(EmotionEstimate, "/perception/emotion", self.annotator.on_emotion, keep_last=4)
        node.create_subscription(ImageFrame, "/camera/image", self.on_frame, keep_last=2)

    def on_frame(self, frame: ImageFrame) -> None:
        out = self.annotator.annotate(frame)
        self.pub.publish(out)
        if self.show:
            import cv2

            cv2.imshow(self.node.params["window_name"], out.data)
            if cv2.waitKey(1) & 0xFF == ord("q"):
                self.node.shutdown()

    def close(self) -> None:
        if self.show:
            import cv2

            cv2.destroyAllWindows()


def main(argv: list[str] | None = None) -> int:
    return run_node(Annotator, argv)


if __name__ == "__main__":
    raise SystemExit(main())
