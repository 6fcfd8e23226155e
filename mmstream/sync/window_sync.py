"""The windowed join: camera frames, audio chunks and text in; time-aligned :class:`Window` out.

A pure object: no sockets, no threads, no clock of its own. The caller passes the node clock's
time with every call (``push(msg, now_ns)``, ``poll(now_ns)``), so a replayed bag on its own
clock yields the same windows every time.

Windows lie on a fixed grid: window k is ``[origin + k·hop, origin + k·hop + window)``. The first
window emitted is the first one that can hold the oldest data held when the first emission
happens; after that windows are emitted in order, each exactly once (empty ones are skipped and
counted unless ``emit_empty``).

Emission (the watermark): window k is emitted

* at once when every *live* dense stream (video, audio) has passed its end: the newest frame
  stamp is at or beyond the last slot + tolerance, the next expected audio sample lies at or
  beyond the end. A stream is live while its last message arrived at most ``liveness_timeout``
  ago on the node clock. An expected stream never seen yet holds windows back during the first
  ``liveness_timeout`` after start (so a camera that opens slowly loses nothing); one that never
  starts, or falls silent, stops holding anything back once that timeout passes;
* at the latest when the node clock reaches ``end + max_delay``, with whatever arrived; what is
  missing is masked, never invented.

Text is sparse (nobody knows when the next utterance comes), so it never holds a window back:
an utterance is in a window if it arrived before the window was emitted.

A message that arrives after every window it belongs to was emitted is counted late and dropped.
All buffers are bounded (frames, audio samples, utterances); overflow is counted.
"""

from __future__ import annotations

import numpy as np

from mmstream.messages import MODALITIES, AudioChunk, Header, ImageFrame, Message, TextUtterance, Window
from mmstream.sync.audio_ring import AudioTimeline
from mmstream.sync.config import DENSE_STREAMS, SyncConfig
from mmstream.sync.frame_buffer import FrameBuffer, HeldFrame
from mmstream.sync.stats import SyncStats
from mmstream.sync.text_buffer import HeldUtterance, TextBuffer


class _StreamState:
    __slots__ = ("last_arrival_ns", "watermark_ns")

    def __init__(self) -> None:
        self.last_arrival_ns: int | None = None
        self.watermark_ns: int | None = None


class WindowSynchronizer:
    """Push messages in with the node clock's time, poll windows out. See the module docstring."""

    def __init__(self, config: SyncConfig | None = None) -> None:
        self.config = config or SyncConfig()
        c = self.config
        self._frames = FrameBuffer(c.max_buffered_frames)
        self._audio = AudioTimeline(c.sample_rate_hz, c.audio_channels, capacity_samples=c.audio_capacity_samples,
                                    resync_tolerance_ns=c.audio_resync_tolerance_ns, estimate_drift=c.estimate_drift)
        self._text = TextBuffer(c.max_buffered_utterances, c.text_horizon_ns)
        self.reset()

    def reset(self) -> None:
        """Forget everything held and start over (e.g. the replay clock jumped back)."""
        self.stats = SyncStats()
        self._frames.clear()
        self._audio.reset()
        self._text.clear()
        self._streams = {name: _StreamState() for name in MODALITIES}
        self._next_k: int | None = None
        self._started_ns: int | None = None

    # ------------------------------------------------------------------ state queries

    def buffered(self) -> dict[str, int]:
        """How much is held now: frames, audio samples, utterances (for bounds checks)."""
        return {"video": len(self._frames), "audio": self._audio.held_samples, "text": len(self._text)}

    # ------------------------------------------------------------------ push

    def push(self, msg: Message, now_ns: int) -> str | None:
        """Take one message that arrived at ``now_ns``. Returns None if it was taken, else why not
        ("late", "duplicate", "sample_rate", "channels", "empty", "not_expected")."""
        if self._started_ns is None:
            self._started_ns = now_ns
        if isinstance(msg, ImageFrame):
            stream = "video"
        elif isinstance(msg, AudioChunk):
            stream = "audio"
        elif isinstance(msg, TextUtterance):
            stream = "text"
        else:
            raise TypeError(f"WindowSynchronizer.push: {type(msg).__name__} is not ImageFrame, AudioChunk "
                            "or TextUtterance")
        self.stats.received[stream] += 1
        if stream not in self.config.streams:
            return self._refuse(stream, "not_expected")
        why = getattr(self, f"_push_{stream}")(msg)
        if why is None or why in ("duplicate", "late"):
            # late or repeated data still proves the stream is alive
            self._streams[stream].last_arrival_ns = now_ns
        if why in ("late", "duplicate"):
            getattr(self.stats, "late" if why == "late" else "duplicates")[stream] += 1
        return why

    def _refuse(self, stream: str, why: str) -> str:
        self.stats.rejected[stream] += 1
        return why

    def _push_video(self, frame: ImageFrame) -> str | None:
        t = frame.header.stamp_ns + self.config.video_offset_ns
        if self._next_k is not None and t < self._video_floor_ns(self._next_k):
            if t >= self._needed_ns("video", self._next_k - 1):
                return None  # after the last slot of the window emitted last: could not change it
            return "late"
        inserted, evicted = self._frames.push(t, frame)
        self.stats.dropped["video"] += evicted
        if not inserted:
            return "duplicate"
        st = self._streams["video"]
        st.watermark_ns = t if st.watermark_ns is None else max(st.watermark_ns, t)
        return None

    def _push_audio(self, chunk: AudioChunk) -> str | None:
        c = self.config
        if chunk.sample_rate_hz != c.sample_rate_hz:
            return self._refuse("audio", "sample_rate")
        if chunk.samples.ndim != 2 or chunk.samples.shape[1] != c.audio_channels:
            return self._refuse("audio", "channels")
        if chunk.num_samples == 0:
            return self._refuse("audio", "empty")
        t = chunk.header.stamp_ns + c.audio_offset_ns
        if self._next_k is not None and not self._audio.started \
                and t + chunk.duration_ns <= c.window_bounds(self._next_k)[0]:
            self.stats.late_samples += chunk.num_samples
            return "late"
        samples = np.ascontiguousarray(chunk.as_float32(), dtype=np.float32)
        res = self._audio.push(samples, t, source_stamp_ns=chunk.header.stamp_ns,
                               gap_samples=chunk.gap_samples, seq=chunk.header.seq)
        s = self.stats
        s.late_samples += res.late
        s.duplicate_samples += res.duplicate
        s.known_gap_samples += res.known_gap
        s.detected_gap_samples = max(0, s.detected_gap_samples + res.detected_gap - res.filled)
        s.dropped_samples += res.dropped
        s.audio_drift_ppm = self._audio.drift_ppm
        if res.dropped:
            s.dropped["audio"] += 1
        self._streams["audio"].watermark_ns = self._audio.watermark_ns()
        if res.placed == 0:
            return "late" if res.late else "duplicate"
        if res.late:
            s.late_partial["audio"] += 1
        return None

    def _push_text(self, utt: TextUtterance) -> str | None:
        off = self.config.text_offset_ns
        held = HeldUtterance(utt.start_ns + off, max(utt.end_ns, utt.start_ns + 1) + off, utt)
        if self._next_k is not None:
            next_start = self.config.window_bounds(self._next_k)[0]
            if self._text.relevant_until_ns(held) <= next_start:
                return "late"
            prev_start, prev_end = self.config.window_bounds(self._next_k - 1)
            if held.start_ns < prev_end and self._text.relevant_until_ns(held) > prev_start:
                self.stats.late_partial["text"] += 1
        inserted, evicted = self._text.push(held)
        self.stats.dropped["text"] += evicted
        if not inserted:
            return "duplicate"
        st = self._streams["text"]
        st.watermark_ns = held.end_ns if st.watermark_ns is None else max(st.watermark_ns, held.end_ns)
        return None

    # ------------------------------------------------------------------ poll

    def poll(self, now_ns: int) -> list[Window]:
        """Every window that is ready at ``now_ns``, in order (usually zero or one)."""
        if self._started_ns is None:
            self._started_ns = now_ns
        out: list[Window] = []
        while True:
            k = self._next_k if self._next_k is not None else self._first_window()
            if k is None:
                break
            ready, by_deadline = self._ready(k, now_ns)
            if not ready:
                break
            window = self._assemble(k)
            if window is None:
                self.stats.skipped_empty += 1
                self._advance(self._skip_target(k, now_ns))
                continue
            out.append(window)
            self.stats.emitted += 1
            if by_deadline:
                self.stats.emitted_by_deadline += 1
            else:
                self.stats.emitted_by_watermark += 1
            self._advance(k + 1)
        return out

    def _video_floor_ns(self, k: int) -> int:
        """Frames stamped before this cannot fill any slot of window k or later."""
        return max(self.config.window_bounds(k)[0], self.config.slot_times_ns(k)[0] - self.config.slot_tolerance_ns)

    def _earliest_data_ns(self, dense_only: bool) -> int | None:
        times = []
        t = self._frames.earliest_ns()
        if t is not None:
            times.append(t)
        t = self._audio.earliest_data_ns()
        if t is not None:
            times.append(t)
        if not times or not dense_only:
            t = self._text.earliest_ns()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def _first_window(self) -> int | None:
        e = self._earliest_data_ns(dense_only=True)
        return None if e is None else self.config.first_window_ending_after(e)

    def _skip_target(self, k: int, now_ns: int) -> int:
        """After an empty window k: the next window that can hold data or is not yet due."""
        c = self.config
        e = self._earliest_data_ns(dense_only=False)
        k_data = c.first_window_ending_after(e) if e is not None else None
        k_due = c.first_window_ending_after(now_ns - c.max_delay_ns)  # first window whose deadline is ahead
        target = k_due if k_data is None else min(k_data, k_due)
        return max(k + 1, target)

    def _ready(self, k: int, now_ns: int) -> tuple[bool, bool]:
        c = self.config
        _, end = c.window_bounds(k)
        if now_ns >= end + c.max_delay_ns:
            return True, True
        if not c.watermark_emission:
            return False, False
        live = []
        for stream in DENSE_STREAMS:
            if stream not in c.streams:
                continue
            st = self._streams[stream]
            if st.last_arrival_ns is None:
                if now_ns - self._started_ns < c.liveness_timeout_ns:  # type: ignore[operator]
                    return False, False  # expected, not seen yet: give it a chance to start
                continue
            if now_ns - st.last_arrival_ns <= c.liveness_timeout_ns:
                live.append(stream)
        if not live:
            return False, False
        for stream in live:
            wm = self._streams[stream].watermark_ns
            if wm is None or wm < self._needed_ns(stream, k):
                return False, False
        return True, False

    def _needed_ns(self, stream: str, k: int) -> int:
        _, end = self.config.window_bounds(k)
        if stream == "video":
            # frames arrive in stamp order: once one at or after the last slot is here, no later
            # frame can be nearer to any slot (and frames count only inside [start, end))
            t = self.config.frames_per_window
            return min(end - 1, end - self.config.window_ns + ((2 * t - 1) * self.config.window_ns) // (2 * t))
        return end

    def _advance(self, k_next: int) -> None:
        self._next_k = k_next
        start, _ = self.config.window_bounds(k_next)
        self._frames.trim_before(self._video_floor_ns(k_next))
        self._audio.trim_before(start)
        self._text.trim_before(start)

    # ------------------------------------------------------------------ assembly

    def _assemble(self, k: int) -> Window | None:
        c = self.config
        start, end = c.window_bounds(k)
        slots = c.slot_times_ns(k)
        picks = [self._frames.nearest(s, c.slot_tolerance_ns, start, end) for s in slots]
        frames, frame_mask, frame_stamps, encoding = self._stack_frames(picks)
        cut = self._audio.cut(start, end)
        held_utts = self._text.select(start, end)
        n_audio = int(cut.mask.shape[0])
        presence = {"video": bool(frame_mask.any()), "audio": bool(cut.mask.any()), "text": bool(held_utts)}
        if not any(presence.values()) and not c.emit_empty:
            return None
        coverage = {
            "video": float(frame_mask.mean()) if frame_mask.size else 0.0,
            "audio": float(cut.mask.mean()) if n_audio else 0.0,
            "text": _text_coverage(held_utts, start, end),
        }
        return Window(
            header=Header(stamp_ns=end, frame_id="sync"),
            start_ns=start, end_ns=end, sample_rate_hz=c.sample_rate_hz, frame_encoding=encoding,
            utterances=[h.utterance for h in held_utts], presence=presence, coverage=coverage,
            frames=frames, frame_mask=frame_mask, frame_stamps_ns=frame_stamps,
            audio=cut.samples, audio_mask=cut.mask,
            audio_chunk_stamps_ns=np.asarray(cut.chunk_stamps_ns, np.int64),
        )

    def _stack_frames(self, picks: list[HeldFrame | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        t = len(picks)
        encodings = {p.frame.encoding for p in picks if p is not None}
        encoding = encodings.pop() if len(encodings) == 1 else "bgr8"
        if encoding == "jpeg":
            encoding = "bgr8"
        images: list[np.ndarray | None] = []
        for p in picks:
            if p is None:
                images.append(None)
            elif p.frame.encoding == encoding:
                images.append(p.frame.data)
            else:
                images.append(p.frame.to_bgr())
        shapes = [im.shape for im in images if im is not None]
        layout = shapes[-1] if shapes else (self.config.empty_frame_shape or (0, 0, 3))
        if encoding != "mono8" and layout[-1] != 3:
            layout = (layout[0], layout[1], 3)
        frames = np.zeros((t, *layout), np.uint8)
        mask = np.zeros(t, np.bool_)
        stamps = np.zeros(t, np.int64)
        for i, (p, im) in enumerate(zip(picks, images)):
            if p is None or im is None or im.shape != tuple(layout):
                continue  # a frame of another size than the window's is masked, not resized
            frames[i] = im
            mask[i] = True
            stamps[i] = p.frame.header.stamp_ns
        return frames, mask, stamps, encoding


def _text_coverage(held: list[HeldUtterance], start: int, end: int) -> float:
    """Fraction of [start, end) covered by the union of the utterances' spans."""
    spans = sorted((max(h.start_ns, start), min(h.end_ns, end)) for h in held)
    covered, cur = 0, start
    for a, b in spans:
        a = max(a, cur)
        if b > a:
            covered += b - a
            cur = b
    return covered / (end - start)
