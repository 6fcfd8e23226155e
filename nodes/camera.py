"""Camera node: publishes ImageFrame from a camera, a video file, a network stream or a test pattern.

    python -m nodes.camera --param source=0                      # /dev/video0
    python -m nodes.camera --param source=clip.mp4 --param loop=true
    python -m nodes.camera --param source=rtsp://cam.local/stream --param encoding=jpeg
    python -m nodes.camera --param source=pattern --param width=640 --param height=480

Live frames are stamped with the host time of capture; file frames with the start stamp plus the
file's own frame times. See :mod:`mmstream.sensors.video_source`.
"""

from __future__ import annotations

from mmstream.messages import IMAGE_ENCODINGS, ImageFrame
from mmstream.node import DONE, NOW, Component, Node, Param, Wait, run_node
from mmstream.sensors.video_source import open_video_source, to_image_frame

PARAMS = [
    Param("source", "pattern", type=str, doc="device index, /dev/videoN, video file, stream URL, or 'pattern'"),
    Param("width", 0, min=0, doc="frame width in pixels (0: the source's own)"),
    Param("height", 0, min=0, doc="frame height in pixels (0: the source's own)"),
    Param("fps", 0.0, min=0.0, doc="requested frame rate of a camera / pattern rate (0: default)"),
    Param("encoding", "bgr8", choices=IMAGE_ENCODINGS, doc="output encoding"),
    Param("jpeg_quality", 85, min=1, max=100, doc="JPEG quality when encoding=jpeg"),
    Param("frame_id", "camera", doc="header.frame_id of every frame"),
    Param("topic", "/camera/image", doc="topic to publish on"),
    Param("loop", False, doc="files: start again at the end (stamps keep increasing)"),
    Param("realtime", True, doc="files: pace at the file's frame times (false: as fast as possible)"),
    Param("start_stamp_ns", 0, min=0, doc="files: stamp of the file's time 0 (0: now)"),
    Param("reopen_backoff_s", 0.5, min=0.01, doc="live streams: first wait before reopening a dropped stream"),
    Param("reopen_backoff_max_s", 8.0, min=0.01, doc="live streams: the wait doubles up to this"),
    Param("max_frames", 0, min=0, doc="stop after this many frames (0: no limit)"),
    Param("reliable", False, doc="wait for slow subscribers instead of dropping (files as fast as possible)"),
    Param("wait_for_subscribers", 0, min=0, doc="wait for this many subscribers before the first frame"),
    Param("wait_timeout_s", 10.0, min=0.0, doc="how long to wait for them"),
]


class Camera(Component):
    """Reads frames from the source and publishes each when it is due; sleeps between frames."""

    NAME = "camera"
    PARAMS = PARAMS

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        p = node.params
        self.source = open_video_source(
            p["source"], width=p["width"], height=p["height"], fps=p["fps"], loop=p["loop"], realtime=p["realtime"],
            start_stamp_ns=p["start_stamp_ns"], clock_ns=node.now_ns, should_stop=lambda: not node.ok(), log=node.log,
            backoff_initial_s=p["reopen_backoff_s"], backoff_max_s=p["reopen_backoff_max_s"])
        self.pub = node.create_publisher(ImageFrame, p["topic"], reliable=p["reliable"])
        if p["wait_for_subscribers"]:
            node.wait_for_subscribers([self.pub], p["wait_for_subscribers"], p["wait_timeout_s"])
        self.source.restart_clock(p["start_stamp_ns"])
        self.count = 0
        node.log.info("publishing %s on %s as %s", self.source.description, self.pub.topic, p["encoding"])

    def step(self) -> Wait:
        p = self.node.params
        if not self.node.ok() or (p["max_frames"] and self.count >= p["max_frames"]):
            return DONE
        wait = self.source.next_wait()
        if wait.timeout_s:
            return wait
        frame = self.source.read()
        if frame is None:
            if self.node.ok():
                self.node.log.info("%s finished after %d frames", self.source.description, self.count)
            return DONE
        self.pub.publish(to_image_frame(frame, encoding=p["encoding"], jpeg_quality=p["jpeg_quality"],
                                        frame_id=p["frame_id"]))
        self.count += 1
        return NOW

    def close(self) -> None:
        if self.source.reopen_count:
            self.node.log.info("%s was reopened %d time(s)", self.source.description, self.source.reopen_count)
        self.source.close()


def main(argv: list[str] | None = None) -> int:
    return run_node(Camera, argv)


if __name__ == "__main__":
    raise SystemExit(main())
