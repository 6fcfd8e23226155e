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
from mmstream.node import Node, Param, run_node
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


def loop(node: Node) -> None:
    p = node.params
    source = open_video_source(p["source"], width=p["width"], height=p["height"], fps=p["fps"], loop=p["loop"],
                               realtime=p["realtime"], start_stamp_ns=p["start_stamp_ns"], clock_ns=node.now_ns,
                               should_stop=lambda: not node.ok(), log=node.log,
                               backoff_initial_s=p["reopen_backoff_s"], backoff_max_s=p["reopen_backoff_max_s"])
    node.on_shutdown(source.close)
    pub = node.create_publisher(ImageFrame, p["topic"], reliable=p["reliable"])
    if p["wait_for_subscribers"] and not pub.wait_for_subscribers(p["wait_for_subscribers"], p["wait_timeout_s"]):
        node.log.warning("only %d of %d subscriber(s) after %.1f s; publishing anyway",
                         pub.subscription_count, p["wait_for_subscribers"], p["wait_timeout_s"])
    source.restart_clock(p["start_stamp_ns"])
    node.log.info("publishing %s on %s as %s", source.description, pub.topic, p["encoding"])
    count = 0
    while node.ok():
        frame = source.read()
        if frame is None:
            if node.ok():
                node.log.info("%s finished after %d frames", source.description, count)
            break
        pub.publish(to_image_frame(frame, encoding=p["encoding"], jpeg_quality=p["jpeg_quality"],
                                   frame_id=p["frame_id"]))
        count += 1
        node.spin_once(0.0)
        if p["max_frames"] and count >= p["max_frames"]:
            break
    if source.reopen_count:
        node.log.info("%s was reopened %d time(s)", source.description, source.reopen_count)
    _grace(node)


def _grace(node: Node, seconds: float = 0.3) -> None:
    """Let queued messages leave the socket before the node closes (sensor publishers do not linger)."""
    import time

    end = time.monotonic() + seconds
    while node.ok() and time.monotonic() < end:
        node.spin_once(0.05)


def main(argv: list[str] | None = None) -> int:
    return run_node("camera", PARAMS, lambda node: None, argv, loop=loop)


if __name__ == "__main__":
    raise SystemExit(main())
