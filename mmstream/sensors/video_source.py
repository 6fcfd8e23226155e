"""Video sources: a camera (index or ``/dev/videoN``), a video file, a network stream, a test pattern.

Every source returns :class:`CapturedFrame` (BGR uint8 image + stamp in integer ns):

* live cameras and network streams: the host clock right after the frame was grabbed;
* files: a start stamp plus the file's own frame time (``CAP_PROP_POS_MSEC``), so a replayed
  file keeps its exact timing; with ``loop`` the stamps keep increasing across laps;
* the test pattern: the host clock when the frame was drawn, paced at ``fps``. The frame index
  is painted as text and as a row of 32 black/white cells (:func:`read_pattern_index`).

A live stream that stops delivering is reopened with exponential backoff; frames keep their
true stamps. A camera that cannot be opened raises :class:`DeviceNotFoundError` naming the
source and the video devices that exist.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mmstream.clock import host_now_ns
from mmstream.executor import Wait
from mmstream.errors import DeviceNotFoundError, MmstreamError
from mmstream.messages import IMAGE_ENCODINGS, Header, ImageFrame
from mmstream.sensors.devices import describe_video_devices

PATTERN_BITS = 32
PATTERN_CODE_ROWS = 16  # height of the bar code strip at the top of the pattern

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_DEV = re.compile(r"^/dev/video(\d+)$")


@dataclass
class CapturedFrame:
    image: np.ndarray  # H×W×3 BGR uint8
    stamp_ns: int      # capture time (live) or start stamp + file frame time (files)
    index: int         # 0-based frame number since the source was opened (continues across loops)


@dataclass(frozen=True)
class SourceSpec:
    kind: str           # "pattern" | "device" | "file" | "url"
    target: str | int   # device index, path, or URL
    text: str           # what the user wrote


def parse_video_source(spec: str | int) -> SourceSpec:
    """Classify a ``source`` parameter: ``pattern``, ``0``, ``/dev/video2``, ``clip.mp4``, ``rtsp://...``."""
    text = str(spec).strip()
    if not text:
        raise MmstreamError("video source is empty; expected a device index, /dev/videoN, a file, a URL or 'pattern'")
    if text == "pattern":
        return SourceSpec("pattern", "pattern", text)
    if text.isdigit():
        return SourceSpec("device", int(text), text)
    m = _DEV.match(text)
    if m:
        return SourceSpec("device", int(m.group(1)), text)
    if text.startswith("file://"):
        return SourceSpec("file", text[len("file://"):], text)
    if _URL.match(text):
        return SourceSpec("url", text, text)
    return SourceSpec("file", os.path.expanduser(text), text)


def _no_camera_message(spec: SourceSpec, why: str) -> str:
    return (f"camera source {spec.text!r} could not be opened ({why}); {describe_video_devices()}. "
            f"To run without a camera use a video file (--param source=/path/to/clip.mp4) "
            f"or the built-in test pattern (--param source=pattern).")


def _sleep_until(deadline_monotonic_ns: int, should_stop: Callable[[], bool]) -> bool:
    """Sleep in short slices until the deadline; False if asked to stop first."""
    while True:
        remaining = deadline_monotonic_ns - time.monotonic_ns()
        if remaining <= 0:
            return True
        if should_stop():
            return False
        time.sleep(min(remaining / 1e9, 0.05))


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if width > 0 and height > 0 and (image.shape[1] != width or image.shape[0] != height):
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


class VideoSource:
    """Base: ``read()`` returns the next frame, or None when finished (or asked to stop)."""

    description = ""
    reopen_count = 0

    def read(self) -> CapturedFrame | None:
        raise NotImplementedError

    def due_in_s(self) -> float:
        """Seconds until the next frame is due; 0: ``read()`` returns at once or blocks in the device."""
        return 0.0

    def next_wait(self) -> Wait:
        """What a node waits for before calling ``read()``."""
        return Wait.seconds(self.due_in_s())

    def close(self) -> None:
        pass

    def restart_clock(self, start_stamp_ns: int = 0) -> None:
        """Start timing now (files, pattern): call after waiting for subscribers so nothing bursts."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- test pattern


def draw_pattern_code(image: np.ndarray, index: int) -> None:
    """Paint ``index`` as PATTERN_BITS black/white cells (MSB first) across the top rows."""
    width = image.shape[1]
    cell = width // PATTERN_BITS
    image[:PATTERN_CODE_ROWS] = 0
    for bit in range(PATTERN_BITS):
        if (index >> (PATTERN_BITS - 1 - bit)) & 1:
            image[:PATTERN_CODE_ROWS, bit * cell:(bit + 1) * cell] = 255


def read_pattern_index(image: np.ndarray) -> int:
    """Read back the index painted by :func:`draw_pattern_code` (BGR, RGB or mono; survives JPEG)."""
    strip = image[2:PATTERN_CODE_ROWS - 2]
    gray = strip.reshape(strip.shape[0], strip.shape[1], -1).mean(axis=2)
    cell = image.shape[1] // PATTERN_BITS
    value = 0
    for bit in range(PATTERN_BITS):
        centre = gray[:, bit * cell + cell // 4: (bit + 1) * cell - cell // 4]
        value = (value << 1) | int(centre.mean() > 127)
    return value


class PatternSource(VideoSource):
    """Moving colour bars with the frame index as text and as a bar code, paced at ``fps``."""

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0,
                 clock_ns: Callable[[], int] = host_now_ns, should_stop: Callable[[], bool] = lambda: False,
                 max_frames: int = 0) -> None:
        if width < 2 * PATTERN_BITS or height < 2 * PATTERN_CODE_ROWS:
            raise MmstreamError(f"test pattern {width}x{height} is too small "
                                f"(expected at least {2 * PATTERN_BITS}x{2 * PATTERN_CODE_ROWS})")
        if fps <= 0:
            raise MmstreamError(f"test pattern fps must be > 0, got {fps}")
        self.description = f"test pattern {width}x{height}@{fps:g}"
        self.width, self.height, self.fps = width, height, fps
        self._clock = clock_ns
        self._should_stop = should_stop
        self._max_frames = max_frames
        self._period_ns = int(round(1e9 / fps))
        self._index = 0
        self._next_mono_ns = time.monotonic_ns()
        colours = np.array([[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0],
                            [255, 0, 255], [0, 0, 255], [255, 0, 0], [40, 40, 40]], np.uint8)
        bar = np.repeat(colours, -(-2 * width // len(colours)), axis=0)[: 2 * width]
        self._bars = np.ascontiguousarray(np.broadcast_to(bar, (height, 2 * width, 3)))

    def restart_clock(self, start_stamp_ns: int = 0) -> None:
        self._next_mono_ns = time.monotonic_ns()

    def due_in_s(self) -> float:
        return max(0.0, (self._next_mono_ns - time.monotonic_ns()) / 1e9)

    def read(self) -> CapturedFrame | None:
        if self._max_frames and self._index >= self._max_frames:
            return None
        if not _sleep_until(self._next_mono_ns, self._should_stop):
            return None
        self._next_mono_ns += self._period_ns
        if time.monotonic_ns() - self._next_mono_ns > 10 * self._period_ns:  # fell far behind: don't burst
            self._next_mono_ns = time.monotonic_ns()
        shift = (self._index * 4) % self.width
        image = self._bars[:, shift:shift + self.width].copy()
        draw_pattern_code(image, self._index)
        cv2.putText(image, f"frame {self._index}", (10, self.height // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.5, self.width / 640), (0, 0, 0), 2, cv2.LINE_AA)
        frame = CapturedFrame(image=image, stamp_ns=self._clock(), index=self._index)
        self._index += 1
        return frame


# --------------------------------------------------------------------------- files


class FileVideoSource(VideoSource):
    """A video file; stamps = start stamp + the file's frame time, optionally paced in real time."""

    def __init__(self, path: str, *, width: int = 0, height: int = 0, loop: bool = False, realtime: bool = True,
                 start_stamp_ns: int = 0, clock_ns: Callable[[], int] = host_now_ns,
                 should_stop: Callable[[], bool] = lambda: False, log: logging.Logger | None = None) -> None:
        self.path = path
        self.description = f"video file {path}"
        if not Path(path).is_file():
            raise DeviceNotFoundError(f"video file {path!r} does not exist (or is not a file); "
                                      f"expected a video OpenCV can read, e.g. made with "
                                      f"'ffmpeg -f lavfi -i testsrc=size=640x480:rate=30 -t 5 clip.mp4'")
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise DeviceNotFoundError(f"video file {path!r} exists but OpenCV cannot decode it "
                                      f"(backends tried: FFMPEG and others); expected a video file")
        self.width, self.height = width, height
        self.loop, self.realtime = loop, realtime
        self._log = log or logging.getLogger("video_source")
        self._should_stop = should_stop
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.file_fps = fps if fps and fps > 0 else 0.0
        self._clock = clock_ns
        self.start_stamp_ns = start_stamp_ns or clock_ns()
        self._pace_origin_mono_ns = time.monotonic_ns()
        self._lap_offset_ns = 0
        self._last_pos_ns = -1
        self._index = 0
        self._warned_pos = False
        self._ahead: tuple[np.ndarray, int] | None = None  # decoded, not yet returned (pacing looks ahead)

    def restart_clock(self, start_stamp_ns: int = 0) -> None:
        if self._index == 0:
            self.start_stamp_ns = start_stamp_ns or self._clock()
            self._pace_origin_mono_ns = time.monotonic_ns()

    def _frame_period_ns(self) -> int:
        return int(round(1e9 / self.file_fps)) if self.file_fps else 33_333_333

    def due_in_s(self) -> float:
        if not self.realtime:
            return 0.0
        if self._ahead is None:
            self._ahead = self._decode()
            if self._ahead is None:
                return 0.0  # finished: read() says so at once
        return max(0.0, (self._pace_origin_mono_ns + self._ahead[1] - time.monotonic_ns()) / 1e9)

    def read(self) -> CapturedFrame | None:
        if self._should_stop():
            return None
        decoded, self._ahead = self._ahead or self._decode(), None
        if decoded is None:
            return None
        image, rel_ns = decoded
        if self.realtime and not _sleep_until(self._pace_origin_mono_ns + rel_ns, self._should_stop):
            return None
        frame = CapturedFrame(image=_fit(image, self.width, self.height), stamp_ns=self.start_stamp_ns + rel_ns,
                              index=self._index)
        self._index += 1
        return frame

    def _decode(self) -> tuple[np.ndarray, int] | None:
        """The next image and its time since the file's start (laps included); None at the end."""
        ok, image = self._cap.read()
        if not ok:
            if not self.loop or (self._index == 0 and self._last_pos_ns < 0):
                return None
            # next lap: time continues one frame period after the last frame
            self._lap_offset_ns += self._last_pos_ns + self._frame_period_ns()
            self._last_pos_ns = -1
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
            if not ok:
                self._cap.release()
                self._cap = cv2.VideoCapture(self.path)
                ok, image = self._cap.read()
                if not ok:
                    raise MmstreamError(f"video file {self.path!r} could not be rewound for the next loop")
            self._log.info("video file %s: starting lap at +%.3f s", self.path, self._lap_offset_ns / 1e9)
        pos_ns = int(round(self._cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6))
        if pos_ns <= self._last_pos_ns:  # backend without usable frame times: fall back to fps
            if not self._warned_pos:
                self._log.warning("video file %s: frame times not increasing (%d ns after %d ns); "
                                  "using the nominal frame rate", self.path, pos_ns, self._last_pos_ns)
                self._warned_pos = True
            pos_ns = self._last_pos_ns + self._frame_period_ns()
        self._last_pos_ns = pos_ns
        return image, self._lap_offset_ns + pos_ns

    def close(self) -> None:
        self._cap.release()


# --------------------------------------------------------------------------- live devices and streams


class LiveVideoSource(VideoSource):
    """A camera or network stream; stamps are host time at grab; reopened with backoff when it stops."""

    def __init__(self, spec: SourceSpec, *, width: int = 0, height: int = 0, fps: float = 0.0,
                 clock_ns: Callable[[], int] = host_now_ns, should_stop: Callable[[], bool] = lambda: False,
                 log: logging.Logger | None = None, backoff_initial_s: float = 0.5, backoff_max_s: float = 8.0,
                 read_failures_before_reopen: int = 3) -> None:
        self.spec = spec
        self.description = f"camera {spec.text}" if spec.kind == "device" else f"stream {spec.text}"
        self.width, self.height, self.fps = width, height, fps
        self._clock = clock_ns
        self._should_stop = should_stop
        self._log = log or logging.getLogger("video_source")
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._failures_before_reopen = read_failures_before_reopen
        self.reopen_count = 0
        self._index = 0
        self._warned_size = False
        self._cap = self._open()
        if self._cap is None:
            if spec.kind == "device" and os.path.exists(f"/dev/video{spec.target}"):
                why = f"/dev/video{spec.target} exists but did not open: busy, no permission, or not a capture device"
            else:
                why = "no such device" if spec.kind == "device" else "the stream did not open"
            if spec.kind == "url":
                raise DeviceNotFoundError(
                    f"video stream {spec.text!r} could not be opened ({why}); check the URL, that the "
                    f"camera is reachable and that OpenCV's FFMPEG backend supports the protocol; "
                    f"{describe_video_devices()}; for a local test use a video file or source=pattern")
            raise DeviceNotFoundError(_no_camera_message(spec, why))

    def _open(self) -> cv2.VideoCapture | None:
        if self.spec.kind == "device":
            index = int(self.spec.target)
            if sys.platform.startswith("linux"):
                if not os.path.exists(f"/dev/video{index}"):
                    return None  # nothing to open (and spare the user OpenCV's warnings)
                cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
                if not cap.isOpened():
                    cap = cv2.VideoCapture(index)  # other backends
            else:
                cap = cv2.VideoCapture(index)
        else:
            cap = cv2.VideoCapture(str(self.spec.target))
        if not cap.isOpened():
            cap.release()
            return None
        if self.width > 0 and self.height > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps > 0:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a stale queue (where supported)
        return cap

    def _reopen(self) -> bool:
        delay = self._backoff_initial_s
        attempt = 0
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        while not self._should_stop():
            attempt += 1
            self._log.warning("%s stopped delivering frames; reopening in %.1f s (attempt %d)",
                              self.description, delay, attempt)
            if not _sleep_until(time.monotonic_ns() + int(delay * 1e9), self._should_stop):
                return False
            self._cap = self._open()
            if self._cap is not None:
                self.reopen_count += 1
                self._log.info("%s reopened after %d attempt(s)", self.description, attempt)
                return True
            delay = min(delay * 2, self._backoff_max_s)
        return False

    def read(self) -> CapturedFrame | None:
        failures = 0
        while not self._should_stop():
            if self._cap is None and not self._reopen():
                return None
            assert self._cap is not None
            if self._cap.grab():
                stamp_ns = self._clock()
                ok, image = self._cap.retrieve()
                if ok and image is not None:
                    if self.width > 0 and self.height > 0 and image.shape[:2] != (self.height, self.width) \
                            and not self._warned_size:
                        self._log.warning("%s delivers %dx%d, not the requested %dx%d; resizing",
                                          self.description, image.shape[1], image.shape[0], self.width, self.height)
                        self._warned_size = True
                    if image.ndim == 2:
                        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                    frame = CapturedFrame(image=_fit(image, self.width, self.height), stamp_ns=stamp_ns,
                                          index=self._index)
                    self._index += 1
                    return frame
            failures += 1
            if failures >= self._failures_before_reopen:
                failures = 0
                self._cap.release()
                self._cap = None
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_video_source(source: str | int, *, width: int = 0, height: int = 0, fps: float = 0.0,
                      loop: bool = False, realtime: bool = True, start_stamp_ns: int = 0,
                      clock_ns: Callable[[], int] = host_now_ns, should_stop: Callable[[], bool] = lambda: False,
                      log: logging.Logger | None = None, backoff_initial_s: float = 0.5,
                      backoff_max_s: float = 8.0) -> VideoSource:
    """Open whatever ``source`` names (see :func:`parse_video_source`)."""
    spec = parse_video_source(source)
    if spec.kind == "pattern":
        return PatternSource(width=width or 640, height=height or 480, fps=fps or 30.0, clock_ns=clock_ns,
                             should_stop=should_stop)
    if spec.kind == "file":
        return FileVideoSource(str(spec.target), width=width, height=height, loop=loop, realtime=realtime,
                               start_stamp_ns=start_stamp_ns, clock_ns=clock_ns, should_stop=should_stop, log=log)
    return LiveVideoSource(spec, width=width, height=height, fps=fps, clock_ns=clock_ns, should_stop=should_stop,
                           log=log, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s)


# --------------------------------------------------------------------------- encoding


def to_image_frame(frame: CapturedFrame, *, encoding: str = "bgr8", jpeg_quality: int = 85,
                   frame_id: str = "camera") -> ImageFrame:
    """An :class:`ImageFrame` for ``frame`` in ``encoding`` (bgr8, rgb8, mono8 or jpeg)."""
    image = frame.image
    height, width = image.shape[:2]
    if encoding == "bgr8":
        data = image
    elif encoding == "rgb8":
        data = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif encoding == "mono8":
        data = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None]
    elif encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise MmstreamError(f"JPEG encoding of a {width}x{height} frame failed")
        data = buf.reshape(-1)
    else:
        raise MmstreamError(f"image encoding {encoding!r} unknown; expected one of {IMAGE_ENCODINGS}")
    return ImageFrame(header=Header(stamp_ns=frame.stamp_ns, frame_id=frame_id), encoding=encoding,
                      height=height, width=width, data=np.ascontiguousarray(data))
