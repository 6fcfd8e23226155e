"""What the Foxglove app shows: mmstream messages turned into Foxglove channels.

:class:`FoxgloveBridge` owns a private ``foxglove.Context``, the WebSocket server on it (the
``foxglove.sdk.v1`` protocol the Foxglove app speaks) and, optionally, an MCAP writer on the
same context, so the file holds exactly what the app was shown. It knows nothing about sockets
of the graph: the bridge node feeds it messages.

Channels (names in :data:`TOPICS`; the shipped layout ``config/foxglove_layout.json`` uses them):

======================  =========================  ==============================================
topic                   schema                     from
======================  =========================  ==============================================
/camera/image           foxglove.CompressedImage   ImageFrame: JPEG when the raw frame is larger
                                                   than ``jpeg_above_bytes``, else lossless PNG
/perception/faces       foxglove.ImageAnnotations  Detections boxes (+ top emotion as a label)
/audio/level            JSON                       AudioChunk RMS/peak (dBFS and 0..1 level)
/perception/events      JSON                       Detections event scores (speech_present, ...)
/text/log               foxglove.Log               TextUtterance
/perception/emotion     JSON                       EmotionEstimate (``probs.<label>`` per class)
/graph/stats            JSON                       every node's NodeStats
/graph/summary          JSON                       one row per node and per topic end (Table)
======================  =========================  ==============================================

``log_time`` of every message is the bridge node's clock (the bag clock on replay), so live
and replayed data line up in the app's timeline; the message's own stamp rides inside.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.errors import MmstreamError, ParameterError
from mmstream.messages import AudioChunk, Detections, EmotionEstimate, ImageFrame, NodeStats, TextUtterance

TOPICS = {
    "image": "/camera/image",
    "faces": "/perception/faces",
    "audio_level": "/audio/level",
    "events": "/perception/events",
    "text": "/text/log",
    "emotion": "/perception/emotion",
    "stats": "/graph/stats",
    "summary": "/graph/summary",
}
SILENCE_DBFS = -90.0
LEVEL_FLOOR_DBFS = -60.0  # the 0..1 ``level`` maps [-60 dBFS, 0 dBFS] onto [0, 1]

_AUDIO_LEVEL_SCHEMA = {"type": "object", "properties": {
    "stamp_ns": {"type": "integer"}, "rms_dbfs": {"type": "number"}, "peak_dbfs": {"type": "number"},
    "level": {"type": "number"}, "gap_samples": {"type": "integer"}}}
_EVENTS_SCHEMA = {"type": "object", "properties": {
    "stamp_ns": {"type": "integer"}, "faces": {"type": "integer"},
    "scores": {"type": "object", "additionalProperties": {"type": "number"}}}}
_EMOTION_SCHEMA = {"type": "object", "properties": {
    "window_start_ns": {"type": "integer"}, "window_end_ns": {"type": "integer"},
    "top_label": {"type": "string"}, "top_prob": {"type": "number"}, "backend": {"type": "string"},
    "probs": {"type": "object", "additionalProperties": {"type": "number"}},
    "presence": {"type": "object", "additionalProperties": {"type": "boolean"}},
    "contribution": {"type": "object", "additionalProperties": {"type": "number"}},
    "latency_ms": {"type": "object", "additionalProperties": {"type": "number"}}}}


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless ``allow_remote`` says so explicitly."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ParameterError(f"foxglove bridge host {host!r}: expected an IP address such as 127.0.0.1") from None
    if not loopback and not allow_remote:
        raise ParameterError(f"foxglove bridge host {host!r} is not a loopback address: the WebSocket has no "
                             f"authentication, so set allow_remote=true to serve it to other machines")


def audio_level(chunk: AudioChunk) -> dict[str, Any]:
    """RMS and peak of a chunk in dBFS (all channels), and a 0..1 level for plotting."""
    x = chunk.as_float32()
    if x.size == 0:
        rms = peak = 0.0
    else:
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        peak = float(np.max(np.abs(x)))
    rms_db = 20 * math.log10(rms) if rms > 0 else SILENCE_DBFS
    peak_db = 20 * math.log10(peak) if peak > 0 else SILENCE_DBFS
    level = min(1.0, max(0.0, (rms_db - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS))
    return {"stamp_ns": chunk.header.stamp_ns, "rms_dbfs": round(max(rms_db, SILENCE_DBFS), 2),
            "peak_dbfs": round(max(peak_db, SILENCE_DBFS), 2), "level": round(level, 4),
            "gap_samples": chunk.gap_samples}


def encode_image(bgr: np.ndarray, ext: str, jpeg_quality: int = 80) -> bytes:
    """``bgr`` as JPEG (``ext=".jpg"``, lossy) or PNG (``".png"``, lossless) bytes."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise MmstreamError(f"{ext} encoding of a {bgr.shape} frame failed")
    return buf.tobytes()


def emotion_json(est: EmotionEstimate) -> dict[str, Any]:
    return {"window_start_ns": est.window_start_ns, "window_end_ns": est.window_end_ns,
            "top_label": est.top_label, "top_prob": float(est.top_prob), "backend": est.backend,
            "probs": {lab: float(p) for lab, p in zip(est.labels, est.probs)},
            "presence": dict(est.presence), "contribution": dict(est.contribution),
            "latency_ms": dict(est.latency_ms)}


def events_json(det: Detections) -> dict[str, Any]:
    return {"stamp_ns": det.header.stamp_ns, "faces": int(det.boxes.shape[0]),
            "scores": {lab: float(s) for lab, s in zip(det.event_labels, det.event_scores)}}


def summary_rows(stats: dict[str, NodeStats]) -> dict[str, Any]:
    """Per-node and per-topic-end rows for a Table panel (stats topics themselves left out)."""
    nodes, topics = [], []
    for name in sorted(stats):
        s = stats[name]
        nodes.append({"node": name, "state": s.state, "pid": s.pid, "uptime_s": s.uptime_s, "cpu_s": s.cpu_s})
        for t in s.topics:
            if t.get("topic", "").endswith("/stats"):
                continue
            topics.append({"topic": t.get("topic"), "node": name, "dir": t.get("direction"),
                           "rate_hz": t.get("rate_hz"), "drops": t.get("drops"), "rejected": t.get("rejected"),
                           "latency_p50_ms": t.get("latency_p50_ms"), "latency_p99_ms": t.get("latency_p99_ms")})
    topics.sort(key=lambda r: (r["topic"] or "", r["dir"] or "", r["node"]))
    return {"nodes": nodes, "topics": topics}


def _ts(stamp_ns: int) -> Any:
    from foxglove.messages import Timestamp

    return Timestamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)


class FoxgloveBridge:
    """A WebSocket server (and optional MCAP file) showing the graph's messages in Foxglove."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False,
                 name: str = "mmstream", jpeg_above_bytes: int = 65536, jpeg_quality: int = 80,
                 mcap_path: str | Path | None = None, clock: Callable[[], int] | None = None) -> None:
        import foxglove
        from foxglove.channels import CompressedImageChannel, ImageAnnotationsChannel, LogChannel

        check_bind_host(host, allow_remote)
        self.jpeg_above_bytes = jpeg_above_bytes
        self.jpeg_quality = jpeg_quality
        self._clock = clock
        self.latest_emotion: EmotionEstimate | None = None
        self.stats: dict[str, NodeStats] = {}
        self.counts: dict[str, int] = {k: 0 for k in TOPICS}
        self._ctx = foxglove.Context()
        # every channel exists before the server starts: a channel advertised to an already
        # connected client can race its subscription ("Unknown channel ID")
        self._image = CompressedImageChannel(TOPICS["image"], context=self._ctx)
        self._faces = ImageAnnotationsChannel(TOPICS["faces"], context=self._ctx)
        self._text = LogChannel(TOPICS["text"], context=self._ctx)
        self._audio = foxglove.Channel(TOPICS["audio_level"], schema=_AUDIO_LEVEL_SCHEMA, context=self._ctx)
        self._events = foxglove.Channel(TOPICS["events"], schema=_EVENTS_SCHEMA, context=self._ctx)
        self._emotion = foxglove.Channel(TOPICS["emotion"], schema=_EMOTION_SCHEMA, context=self._ctx)
        self._stats = foxglove.Channel(TOPICS["stats"], context=self._ctx)
        self._summary = foxglove.Channel(TOPICS["summary"], context=self._ctx)
        self._mcap = None
        if mcap_path:
            path = Path(mcap_path)
            if path.exists():
                raise MmstreamError(f"foxglove bridge: MCAP file {path} exists; choose a new mcap_path")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._mcap = foxglove.open_mcap(path, context=self._ctx)
        try:
            self._server = foxglove.start_server(name=name, host=host, port=port, context=self._ctx)
        except Exception as exc:  # the SDK raises its own error types
            if self._mcap is not None:
                self._mcap.close()
            raise MmstreamError(f"foxglove bridge: cannot serve on {host}:{port}: {exc}") from None
        self.host = host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _log_time(self, fallback_ns: int) -> int:
        return self._clock() if self._clock is not None else fallback_ns

    def _wanted(self, channel: Any) -> bool:
        return channel.has_sinks()

    # ----------------------------------------------------------------- converters
    def on_image(self, frame: ImageFrame) -> None:
        from foxglove.messages import CompressedImage

        if not self._wanted(self._image):
            return
        stamp = frame.header.stamp_ns
        if frame.encoding == "jpeg":
            data, fmt = frame.data.tobytes(), "jpeg"
        elif frame.data.nbytes > self.jpeg_above_bytes:
            data, fmt = encode_image(frame.to_bgr(), ".jpg", self.jpeg_quality), "jpeg"
        else:
            data, fmt = encode_image(frame.to_bgr(), ".png"), "png"
        self._image.log(CompressedImage(timestamp=_ts(stamp), frame_id=frame.header.frame_id, data=data, format=fmt),
                        log_time=self._log_time(stamp))
        self.counts["image"] += 1

    def on_detections(self, det: Detections) -> None:
        from foxglove.messages import (Color, ImageAnnotations, Point2, PointsAnnotation, PointsAnnotationType,
                                       TextAnnotation)

        stamp = det.header.stamp_ns
        log_time = self._log_time(stamp)
        self._events.log(events_json(det), log_time=log_time)
        self.counts["events"] += 1
        ts = _ts(stamp)
        green = Color(r=0.0, g=1.0, b=0.0, a=1.0)
        caption = ""
        if self.latest_emotion is not None and self.latest_emotion.top_label:
            caption = f"{self.latest_emotion.top_label} {self.latest_emotion.top_prob:.2f}"
        points, texts = [], []
        for (x1, y1, x2, y2), label, score in zip(det.boxes.tolist(), det.box_labels, det.box_scores.tolist()):
            corners = [Point2(x=x1, y=y1), Point2(x=x2, y=y1), Point2(x=x2, y=y2), Point2(x=x1, y=y2)]
            points.append(PointsAnnotation(timestamp=ts, type=PointsAnnotationType.LineLoop, points=corners,
                                           outline_color=green, thickness=2.0))
            text = " ".join(p for p in (label, f"{score:.2f}", caption) if p)
            texts.append(TextAnnotation(timestamp=ts, position=Point2(x=x1, y=max(0.0, y1 - 4)), text=text,
                                        font_size=14.0, text_color=Color(r=1, g=1, b=1, a=1),
                                        background_color=Color(r=0, g=0.5, b=0, a=0.8)))
        self._faces.log(ImageAnnotations(timestamp=ts, points=points, texts=texts), log_time=log_time)
        self.counts["faces"] += 1

    def on_audio(self, chunk: AudioChunk) -> None:
        if not self._wanted(self._audio):
            return
        self._audio.log(audio_level(chunk), log_time=self._log_time(chunk.header.stamp_ns))
        self.counts["audio_level"] += 1

    def on_text(self, utt: TextUtterance) -> None:
        from foxglove.messages import Log, LogLevel

        self._text.log(Log(timestamp=_ts(utt.end_ns or utt.header.stamp_ns), level=LogLevel.Info, message=utt.text,
                           name=utt.source or "text"), log_time=self._log_time(utt.header.stamp_ns))
        self.counts["text"] += 1

    def on_emotion(self, est: EmotionEstimate) -> None:
        self.latest_emotion = est
        self._emotion.log(emotion_json(est), log_time=self._log_time(est.header.stamp_ns))
        self.counts["emotion"] += 1

    def on_stats(self, stats: NodeStats) -> None:
        self.stats[stats.node] = stats
        self._stats.log({"node": stats.node, "pid": stats.pid, "state": stats.state, "uptime_s": stats.uptime_s,
                         "cpu_s": stats.cpu_s, "topics": stats.topics},
                        log_time=self._log_time(stats.header.stamp_ns))
        self.counts["stats"] += 1

    def publish_summary(self, now_ns: int) -> None:
        if self.stats:
            self._summary.log(summary_rows(self.stats), log_time=now_ns)
            self.counts["summary"] += 1

    def forget_node(self, name: str) -> None:
        self.stats.pop(name, None)

    # ----------------------------------------------------------------- teardown
    def close(self) -> None:
        self._server.stop()
        if self._mcap is not None:
            self._mcap.close()
            self._mcap = None
