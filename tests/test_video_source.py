"""Video sources on real files made with ffmpeg, the test pattern, and missing devices."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from mmstream.errors import DeviceNotFoundError, MmstreamError
from mmstream.messages import ImageFrame
from mmstream.sensors.devices import list_video_devices
from mmstream.sensors.video_source import (CapturedFrame, FileVideoSource, LiveVideoSource, PatternSource,
                                           SourceSpec, open_video_source, parse_video_source, read_pattern_index,
                                           to_image_frame)
from tests.fixtures_media import make_video

NS = 1_000_000_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", width=320, height=240, rate=30, seconds=2)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "short.mp4", width=160, height=120, rate=25, seconds=0.4)


def _read_all(src, limit: int = 10_000) -> list[CapturedFrame]:
    frames = []
    while len(frames) < limit and (f := src.read()) is not None:
        frames.append(f)
    return frames


def test_parse_video_source_kinds() -> None:
    assert parse_video_source("pattern").kind == "pattern"
    assert parse_video_source("0") == SourceSpec("device", 0, "0")
    assert parse_video_source(2).target == 2
    assert parse_video_source("/dev/video3") == SourceSpec("device", 3, "/dev/video3")
    assert parse_video_source("rtsp://cam.local/stream").kind == "url"
    assert parse_video_source("http://10.0.0.2:8080/video.mjpg").kind == "url"
    assert parse_video_source("file:///data/a.mp4") == SourceSpec("file", "/data/a.mp4", "file:///data/a.mp4")
    assert parse_video_source("clips/a.mp4").kind == "file"
    with pytest.raises(MmstreamError, match="video source is empty"):
        parse_video_source("  ")


def test_file_stamps_follow_frame_times(clip: Path) -> None:
    start = 1_700_000_000 * NS
    with FileVideoSource(str(clip), realtime=False, start_stamp_ns=start) as src:
        frames = _read_all(src)
    assert len(frames) == 60
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(60))
    for i, f in enumerate(frames):
        assert abs(f.stamp_ns - (start + i * NS / 30)) < 1_000, (i, f.stamp_ns - start)


def test_file_realtime_pacing_and_resize(short_clip: Path) -> None:
    t0 = time.monotonic()
    with FileVideoSource(str(short_clip), realtime=True, width=80, height=60) as src:
        frames = _read_all(src)
    elapsed = time.monotonic() - t0
    assert len(frames) == 10
    assert frames[0].image.shape == (60, 80, 3)
    # the last frame is due at 9/25 s = 0.36 s after the start
    assert 0.33 <= elapsed < 0.8, elapsed
    # the first frame comes out at once, not after a frame period
    assert frames[-1].stamp_ns - frames[0].stamp_ns == pytest.approx(0.36 * NS, abs=1e6)


def test_file_loop_keeps_time_increasing(short_clip: Path) -> None:
    with FileVideoSource(str(short_clip), realtime=False, loop=True, start_stamp_ns=NS) as src:
        frames = _read_all(src, limit=25)
    assert len(frames) == 25
    d = np.diff([f.stamp_ns for f in frames])
    # every step is one frame period, including the wrap from frame 9 to the next lap's frame 0
    assert np.all(np.abs(d - NS / 25) < 1_000), d
    assert [f.index for f in frames] == list(range(25))


def test_pattern_index_roundtrip_every_encoding() -> None:
    src = PatternSource(width=320, height=240, fps=200)
    for i in range(12):
        frame = src.read()
        assert frame is not None and frame.index == i
        for enc in ("bgr8", "rgb8", "mono8", "jpeg"):
            msg = to_image_frame(frame, encoding=enc, jpeg_quality=40, frame_id="cam0")
            msg.validate()
            assert msg.header.stamp_ns == frame.stamp_ns and msg.header.frame_id == "cam0"
            assert (msg.width, msg.height) == (320, 240)
            assert read_pattern_index(msg.to_bgr()) == i, enc
    # large indices survive too
    img = np.zeros((48, 64, 3), np.uint8)
    from mmstream.sensors.video_source import draw_pattern_code
    draw_pattern_code(img, 0xDEADBEEF)
    assert read_pattern_index(img) == 0xDEADBEEF


def test_encodings_shapes_and_sizes() -> None:
    frame = PatternSource(width=640, height=480, fps=1000).read()
    assert frame is not None
    bgr = to_image_frame(frame, encoding="bgr8")
    rgb = to_image_frame(frame, encoding="rgb8")
    mono = to_image_frame(frame, encoding="mono8")
    lo = to_image_frame(frame, encoding="jpeg", jpeg_quality=10)
    hi = to_image_frame(frame, encoding="jpeg", jpeg_quality=95)
    assert bgr.data.shape == (480, 640, 3) and np.array_equal(rgb.data, bgr.data[..., ::-1])
    assert mono.data.shape == (480, 640, 1)
    assert lo.data.ndim == 1 and lo.data.nbytes < hi.data.nbytes < bgr.data.nbytes
    with pytest.raises(MmstreamError, match="encoding 'yuv' unknown"):
        to_image_frame(frame, encoding="yuv")


def test_pattern_paces_at_fps() -> None:
    src = PatternSource(width=128, height=96, fps=50)
    t0 = time.monotonic()
    frames = [src.read() for _ in range(11)]
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 0.5, elapsed
    stamps = np.array([f.stamp_ns for f in frames if f is not None])
    assert np.all(np.diff(stamps) > 0)
    assert np.median(np.diff(stamps)) == pytest.approx(NS / 50, rel=0.2)


def _absent_device_index() -> int:
    present = {d.index for d in list_video_devices()}
    return next(i for i in range(60, 200) if i not in present)


def test_missing_camera_names_source_and_devices() -> None:
    index = _absent_device_index()
    with pytest.raises(DeviceNotFoundError) as err:
        open_video_source(str(index))
    text = str(err.value)
    assert f"camera source '{index}' could not be opened" in text
    devices = list_video_devices()
    if devices:
        assert all(d.path in text for d in devices)
    else:
        assert "no video devices exist (no /dev/video* on this host)" in text
    assert "--param source=/path/to/clip.mp4" in text and "source=pattern" in text
    with pytest.raises(DeviceNotFoundError, match=f"camera source '/dev/video{index}' could not be opened"):
        open_video_source(f"/dev/video{index}")


def test_missing_or_bad_file_and_unreachable_stream(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFoundError, match=r"video file '.*nope\.mp4' does not exist"):
        open_video_source(str(tmp_path / "nope.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(DeviceNotFoundError, match="exists but OpenCV cannot decode it"):
        open_video_source(str(junk))
    with pytest.raises(DeviceNotFoundError, match=r"video stream 'http://127.0.0.1:1/cam.mjpg' could not be opened"):
        open_video_source("http://127.0.0.1:1/cam.mjpg")


def test_live_stream_that_stops_is_reopened_with_backoff(short_clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A stream source pointed at a short clip "drops" at its end; the source must reopen it and
    # keep stamping frames with the host time of capture.
    log = logging.getLogger("test_reopen")
    src = LiveVideoSource(SourceSpec("url", str(short_clip), "stream-under-test"), log=log,
                          backoff_initial_s=0.05, backoff_max_s=0.2, read_failures_before_reopen=1)
    with caplog.at_level(logging.INFO, logger="test_reopen"):
        frames = _read_all(src, limit=25)
    src.close()
    assert len(frames) == 25
    assert src.reopen_count >= 2
    assert "stopped delivering frames; reopening in 0.1 s (attempt 1)" in caplog.text
    assert "reopened after 1 attempt(s)" in caplog.text
    stamps = np.array([f.stamp_ns for f in frames])
    assert np.all(np.diff(stamps) > 0)
    # the backoff pause shows up as a true gap between frame 9 and 10, not hidden
    assert stamps[10] - stamps[9] >= 0.04 * NS
    assert frames[0].stamp_ns == pytest.approx(time.time_ns(), abs=5 * NS)


def test_open_video_source_dispatch(short_clip: Path) -> None:
    assert isinstance(open_video_source("pattern", width=64, height=48), PatternSource)
    src = open_video_source(str(short_clip), realtime=False)
    assert isinstance(src, FileVideoSource) and src.file_fps == 25
    src.close()
    msg = to_image_frame(CapturedFrame(np.zeros((4, 6, 3), np.uint8), 5, 0))
    assert isinstance(msg, ImageFrame) and msg.header.stamp_ns == 5
