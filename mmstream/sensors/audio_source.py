"""Audio sources: a PortAudio input (microphone) and an audio file (wav/flac).

Both produce :class:`~mmstream.messages.AudioChunk` messages whose ``header.stamp_ns`` is the
host-clock time of the chunk's first sample.

Microphone timing (:class:`AudioStamper`): each PortAudio callback gives the ADC time of its
first sample on the stream clock; we map it to the host clock (host now − (PortAudio now − ADC
time)). Device timing is noisy at start-up (ALSA's pulse plugin reports a constant ~0.7 s delay
for the first half second, then converges), so the first ``settle_s`` of blocks are held back and
the anchor is chosen from all of them: the latest ADC estimate, but never later than causality
allows (a block cannot be delivered before its last sample was captured). After that stamps are
*contiguous*: ``anchor + samples_so_far / rate`` exactly. Only a detected gap re-anchors: an input
overflow reported by PortAudio, blocks we dropped because the consumer fell behind, or an ADC time
that runs ahead of the contiguous stamp by more than ``gap_threshold_s``. The next chunk then
carries ``gap_samples`` > 0. Gaps are never hidden.

The PortAudio callback never blocks: it copies the block into a bounded queue; when the queue is
full the block is dropped, counted, and reported as a gap on the next block that gets through.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmstream.clock import NS_PER_S, host_now_ns
from mmstream.executor import Wait
from mmstream.errors import DeviceNotFoundError, MmstreamError
from mmstream.messages import AudioChunk, Header
from mmstream.sensors.devices import describe_input_devices

AUDIO_DTYPES = ("float32", "int16")


@dataclass
class RawBlock:
    """What the PortAudio callback hands to the consumer."""

    samples: np.ndarray     # frames × channels
    adc_host_ns: int        # ADC time of the first sample mapped to the host clock (0 if unknown)
    callback_host_ns: int   # host time when the callback ran
    overflow: bool          # PortAudio reported an input overflow before/in this block
    dropped_samples: int    # samples we dropped (queue full) right before this block


class AudioStamper:
    """Turns raw blocks into contiguously stamped chunks; re-anchors only on a detected gap."""

    def __init__(self, sample_rate_hz: int, *, settle_s: float = 0.2, gap_threshold_s: float = 0.1,
                 max_delivery_latency_s: float = 0.2, log: logging.Logger | None = None) -> None:
        self.rate = int(sample_rate_hz)
        self.settle_ns = int(settle_s * NS_PER_S)
        self.gap_threshold_ns = int(gap_threshold_s * NS_PER_S)
        self.max_delivery_ns = int(max_delivery_latency_s * NS_PER_S)
        self._log = log or logging.getLogger("audio_stamper")
        self._held: list[RawBlock] = []
        self._anchor_ns: int | None = None
        self._samples_since_anchor = 0
        self.gaps = 0
        self.gap_samples_total = 0
        self.adc_rejected = 0
        self._warned_behind = False

    def _plausible_adc(self, block: RawBlock) -> int:
        """The block's ADC time if causality allows it, else 0.

        A block's first sample is captured no later than its callback minus its duration, and
        no earlier than that minus the stream's delivery latency.
        """
        if block.adc_host_ns <= 0:
            return 0
        latest = block.callback_host_ns - block.samples.shape[0] * NS_PER_S // self.rate
        if latest - self.max_delivery_ns <= block.adc_host_ns <= latest + 2_000_000:
            return block.adc_host_ns
        self.adc_rejected += 1
        return 0

    def _next_stamp_ns(self) -> int:
        assert self._anchor_ns is not None
        return self._anchor_ns + self._samples_since_anchor * NS_PER_S // self.rate

    def push(self, block: RawBlock) -> list[tuple[int, np.ndarray, int]]:
        """Feed one block; returns ``(stamp_ns, samples, gap_samples)`` for each chunk now ready."""
        if self._anchor_ns is None:
            self._held.append(block)
            if block.callback_host_ns - self._held[0].callback_host_ns < self.settle_ns:
                return []
            return self._settle()
        return [self._stamp(block)]

    def flush(self) -> list[tuple[int, np.ndarray, int]]:
        """Emit held blocks even if the settle time has not passed (stream ending)."""
        return self._settle() if self._anchor_ns is None and self._held else []

    def _settle(self) -> list[tuple[int, np.ndarray, int]]:
        held, self._held = self._held, []
        before = 0
        adc_candidates, causal_bounds = [], []
        for b in held:
            n = b.samples.shape[0]
            adc = self._plausible_adc(b)
            if adc:
                adc_candidates.append(adc - before * NS_PER_S // self.rate)
            causal_bounds.append(b.callback_host_ns - (before + n) * NS_PER_S // self.rate)
            before += n
        causal = min(causal_bounds)
        anchor = min(max(adc_candidates), causal) if adc_candidates else causal
        self._log.info("audio stamps anchored from %d block(s): %s (%d implausible ADC time(s) ignored)", len(held),
                       "PortAudio ADC time" if adc_candidates and anchor < causal else "arrival time (causal bound)",
                       self.adc_rejected)
        self._anchor_ns = anchor
        self._samples_since_anchor = 0
        out = []
        for b in held:  # gaps inside the settle window are still reported
            gap = b.dropped_samples
            if gap:
                self._re_anchor(self._next_stamp_ns() + gap * NS_PER_S // self.rate)
            out.append(self._emit(b, gap))
        return out

    def _re_anchor(self, stamp_ns: int) -> None:
        self._anchor_ns = stamp_ns
        self._samples_since_anchor = 0

    def _emit(self, block: RawBlock, gap: int) -> tuple[int, np.ndarray, int]:
        stamp = self._next_stamp_ns()
        self._samples_since_anchor += block.samples.shape[0]
        if gap:
            self.gaps += 1
            self.gap_samples_total += gap
        return stamp, block.samples, gap

    def _stamp(self, block: RawBlock) -> tuple[int, np.ndarray, int]:
        expected = self._next_stamp_ns()
        adc = self._plausible_adc(block)
        ahead_ns = adc - expected if adc else 0
        if block.dropped_samples or block.overflow or ahead_ns > self.gap_threshold_ns:
            # samples were lost: the ADC estimate says how many, our own drop count is a floor
            est = max(ahead_ns, 0) * self.rate // NS_PER_S
            gap = max(block.dropped_samples, est, 1 if block.overflow else 0)
            self._re_anchor(expected + gap * NS_PER_S // self.rate)
            self._log.warning("audio gap of %d samples (%.1f ms) before stamp %d (%s)", gap, 1e3 * gap / self.rate,
                              self._anchor_ns,
                              "input overflow" if block.overflow else
                              "dropped blocks" if block.dropped_samples else "ADC time jumped")
            return self._emit(block, gap)
        if ahead_ns < -self.gap_threshold_ns - 10 * NS_PER_S // 1000 and not self._warned_behind:
            # device clock runs slow vs host: stamps never step back, so only say it once
            self._log.info("audio ADC time is %.1f ms behind the contiguous stamp (clock drift); keeping "
                           "stamps contiguous", -ahead_ns / 1e6)
            self._warned_behind = True
        return self._emit(block, 0)


def _resolve_device(device: str | int | None) -> int | str | None:
    if device is None or device == "":
        return None
    if isinstance(device, int):
        return device
    text = str(device).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _no_input_device(asked: str | int | None, why: str) -> DeviceNotFoundError:
    what = "the default input device" if asked is None else f"audio input device {asked!r}"
    return DeviceNotFoundError(
        f"microphone: {what} could not be opened ({why}); {describe_input_devices()}. "
        f"Pick one by index or name (--param device=...), or read an audio file instead "
        f"(--param source=/path/to/speech.wav).")


class MicrophoneSource:
    """PortAudio capture through ``sounddevice.InputStream``; ``read()`` returns stamped AudioChunks."""

    def __init__(self, *, device: str | int | None = None, sample_rate_hz: int = 16000, channels: int = 1,
                 block_s: float = 0.02, dtype: str = "float32", queue_blocks: int = 50,
                 settle_s: float = 0.2, gap_threshold_s: float = 0.1, frame_id: str = "microphone",
                 clock_ns: Callable[[], int] = host_now_ns, log: logging.Logger | None = None,
                 latency: str | float = "low") -> None:
        if dtype not in AUDIO_DTYPES:
            raise MmstreamError(f"microphone dtype {dtype!r} unknown; expected one of {AUDIO_DTYPES}")
        try:
            import sounddevice as sd
        except OSError as exc:
            raise DeviceNotFoundError(f"microphone: PortAudio library not found ({exc}); install libportaudio2 "
                                      f"or read an audio file instead (--param source=/path/to/speech.wav)") from None
        self._sd = sd
        self.asked = device
        self.rate = int(sample_rate_hz)
        self.channels = int(channels)
        self.block_frames = max(1, int(round(block_s * self.rate)))
        self.dtype = dtype
        self.frame_id = frame_id
        self._clock = clock_ns
        self._log = log or logging.getLogger("microphone")
        self._queue: queue.Queue[RawBlock] = queue.Queue(maxsize=queue_blocks)
        self.dropped_blocks = 0
        self.dropped_samples = 0
        self.overflows = 0
        self._pending_drop = 0
        self._pending_overflow = False
        self._ready: list[tuple[int, np.ndarray, int]] = []
        self._signal_r, self._signal_w = os.pipe()  # readable while blocks wait: the node's poll waits on it
        os.set_blocking(self._signal_r, False)
        os.set_blocking(self._signal_w, False)
        dev = _resolve_device(device)
        try:
            info = sd.query_devices(dev, "input")
        except ValueError as exc:  # no device matching the name / not an input device
            raise _no_input_device(device, str(exc)) from None
        except sd.PortAudioError as exc:  # "Error querying device -1": no default input at all
            raise _no_input_device(device, str(exc)) from None
        self.device_name = str(info["name"])
        self.device_index = int(info["index"])
        try:
            self._stream = sd.InputStream(device=self.device_index, samplerate=self.rate, channels=self.channels,
                                          blocksize=self.block_frames, dtype=dtype, callback=self._callback,
                                          latency=latency)
        except sd.PortAudioError as exc:
            raise _no_input_device(device, f"{self.device_name!r} refused {self.rate} Hz × {self.channels} ch "
                                           f"{dtype}: {exc}") from None
        # delivery can lag capture by the stream's input latency plus a block (and scheduling slack)
        max_delivery_s = float(self._stream.latency) + block_s + 0.05
        self._stamper = AudioStamper(self.rate, settle_s=settle_s, gap_threshold_s=gap_threshold_s,
                                     max_delivery_latency_s=max_delivery_s, log=self._log)
        self.description = (f"microphone {self.device_index} {self.device_name!r} {self.rate} Hz "
                            f"{self.channels} ch, {self.block_frames}-sample blocks")

    # runs on PortAudio's thread: copy, stamp, hand over, never block
    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        host_ns = self._clock()
        adc = getattr(time_info, "inputBufferAdcTime", 0.0)
        now = getattr(time_info, "currentTime", 0.0)
        adc_host_ns = host_ns - int((now - adc) * NS_PER_S) if adc > 0 and now > 0 else 0
        overflow = bool(getattr(status, "input_overflow", False)) or self._pending_overflow
        block = RawBlock(samples=indata.copy(), adc_host_ns=adc_host_ns, callback_host_ns=host_ns,
                         overflow=overflow, dropped_samples=self._pending_drop)
        if getattr(status, "input_overflow", False):
            self.overflows += 1
        try:
            self._queue.put_nowait(block)
            self._pending_drop = 0
            self._pending_overflow = False
            try:
                os.write(self._signal_w, b"\0")
            except (BlockingIOError, OSError):
                pass  # the pipe already says "ready"
        except queue.Full:
            self.dropped_blocks += 1
            self.dropped_samples += frames
            self._pending_drop += frames
            self._pending_overflow = overflow

    def start(self) -> None:
        self._stream.start()
        self._log.info("capturing from %s", self.description)

    def fileno(self) -> int:
        """Readable when a captured block waits: poll it, then ``read(0)`` until it returns None."""
        return self._signal_r

    def next_wait(self) -> Wait:
        return Wait.until_ready(self._signal_r)

    def read(self, timeout_s: float = 0.05) -> AudioChunk | None:
        """The next chunk, or None if none arrived within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        if self._queue.empty():
            try:
                while os.read(self._signal_r, 4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        while not self._ready:
            remaining = deadline - time.monotonic()
            try:
                block = self._queue.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return None
            self._ready.extend(self._stamper.push(block))
        stamp, samples, gap = self._ready.pop(0)
        return AudioChunk(header=Header(stamp_ns=stamp, frame_id=self.frame_id), sample_rate_hz=self.rate,
                          channels=self.channels, gap_samples=int(gap), samples=samples)

    @property
    def gaps(self) -> int:
        return self._stamper.gaps

    def close(self) -> None:
        try:
            self._stream.stop()
        finally:
            self._stream.close()
            for fd in (self._signal_r, self._signal_w):
                try:
                    os.close(fd)
                except OSError:
                    pass


class AudioFileSource:
    """A wav/flac file in blocks; stamps = start stamp + samples/rate; paced in real time or not."""

    def __init__(self, path: str, *, block_s: float = 0.02, realtime: bool = True, loop: bool = False,
                 channels: int = 0, dtype: str = "float32", start_stamp_ns: int = 0, frame_id: str = "microphone",
                 clock_ns: Callable[[], int] = host_now_ns, should_stop: Callable[[], bool] = lambda: False) -> None:
        import soundfile as sf

        if dtype not in AUDIO_DTYPES:
            raise MmstreamError(f"audio dtype {dtype!r} unknown; expected one of {AUDIO_DTYPES}")
        if not Path(path).is_file():
            raise DeviceNotFoundError(f"audio file {path!r} does not exist (or is not a file); expected a wav or "
                                      f"flac file, e.g. made with 'espeak-ng -w speech.wav \"hello\"'")
        try:
            self._file = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DeviceNotFoundError(f"audio file {path!r} cannot be read ({exc}); expected wav or flac") from None
        self.path = path
        self.rate = int(self._file.samplerate)
        self.file_channels = int(self._file.channels)
        self.channels = channels or self.file_channels
        if self.channels not in (1, self.file_channels):
            raise MmstreamError(f"audio file {path!r} has {self.file_channels} channels; can publish those or 1 "
                                f"(downmix), not {self.channels}")
        self.block_frames = max(1, int(round(block_s * self.rate)))
        self.dtype = dtype
        self.realtime, self.loop = realtime, loop
        self.frame_id = frame_id
        self._should_stop = should_stop
        self.start_stamp_ns = start_stamp_ns or clock_ns()
        self._origin_mono_ns = time.monotonic_ns()
        self._samples_done = 0
        self._clock = clock_ns
        self.description = f"audio file {path} ({self.rate} Hz, {self.file_channels} ch)"

    def restart_clock(self, start_stamp_ns: int = 0) -> None:
        """Start timing now (call after waiting for subscribers)."""
        if self._samples_done == 0:
            self.start_stamp_ns = start_stamp_ns or self._clock()
            self._origin_mono_ns = time.monotonic_ns()

    def next_wait(self) -> Wait:
        return Wait.seconds(self.due_in_s())

    def due_in_s(self) -> float:
        """Seconds until the next chunk is due (0: now, or not paced)."""
        if not self.realtime:
            return 0.0
        end_ns = (self._samples_done + self.block_frames) * NS_PER_S // self.rate
        return max(0.0, (self._origin_mono_ns + end_ns - time.monotonic_ns()) / 1e9)

    def read(self) -> AudioChunk | None:
        """The next chunk (paced if ``realtime``), or None at the end of the file."""
        data = self._file.read(self.block_frames, dtype=self.dtype, always_2d=True)
        if data.shape[0] == 0 and self.loop and self._samples_done:
            self._file.seek(0)
            data = self._file.read(self.block_frames, dtype=self.dtype, always_2d=True)
        if data.shape[0] == 0:
            return None
        if self.channels == 1 and data.shape[1] > 1:
            data = data.mean(axis=1, keepdims=True).astype(self.dtype)
        rel_ns = self._samples_done * NS_PER_S // self.rate
        end_ns = (self._samples_done + data.shape[0]) * NS_PER_S // self.rate
        if self.realtime:  # a chunk exists once its last sample has been "captured"
            deadline = self._origin_mono_ns + end_ns
            while (remaining := deadline - time.monotonic_ns()) > 0:
                if self._should_stop():
                    return None
                time.sleep(min(remaining / 1e9, 0.05))
        self._samples_done += data.shape[0]
        return AudioChunk(header=Header(stamp_ns=self.start_stamp_ns + rel_ns, frame_id=self.frame_id),
                          sample_rate_hz=self.rate, channels=self.channels, gap_samples=0,
                          samples=np.ascontiguousarray(data))

    def close(self) -> None:
        self._file.close()

