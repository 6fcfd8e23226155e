"""Configuration of the windowed synchronizer: one frozen dataclass, all times in integer ns."""

from __future__ import annotations

from dataclasses import dataclass

from mmstream.clock import NS_PER_S
from mmstream.errors import ParameterError

#: continuous streams: they hold a window back (watermark) while live
DENSE_STREAMS = ("video", "audio")
#: sparse streams: used if arrived in time, never hold a window back
SPARSE_STREAMS = ("text",)
ALL_STREAMS = DENSE_STREAMS + SPARSE_STREAMS


def s_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_S))


@dataclass(frozen=True)
class SyncConfig:
    """Parameters of :class:`~mmstream.sync.window_sync.WindowSynchronizer` (see docs/synchronizer.md).

    Window k covers ``[origin_ns + k*hop_ns, origin_ns + k*hop_ns + window_ns)`` on the node clock.
    A message's stamp is moved onto the node clock by adding its stream's ``*_offset_ns``.
    """

    window_ns: int = NS_PER_S
    hop_ns: int = NS_PER_S // 2
    origin_ns: int = 0
    #: T: frames per window, one per evenly spaced slot (slot centres)
    frames_per_window: int = 8
    #: a frame fills a slot only if |frame - slot| <= this; 0 = half the slot spacing
    frame_tolerance_ns: int = 0
    sample_rate_hz: int = 16000
    audio_channels: int = 1
    #: utterances ending up to this long before the window start are included
    text_horizon_ns: int = 0
    #: a window is emitted at the latest when the node clock reaches end + max_delay
    max_delay_ns: int = 300_000_000
    #: a stream is live while its last message arrived (node clock) at most this long ago
    liveness_timeout_ns: int = 500_000_000
    video_offset_ns: int = 0
    audio_offset_ns: int = 0
    text_offset_ns: int = 0
    #: modalities expected in this graph; an expected dense stream never seen yet holds windows
    #: back (until max_delay) during the first liveness_timeout after start
    streams: tuple[str, ...] = ALL_STREAMS
    #: estimate the audio device clock's rate against the node clock (docs: "drift")
    estimate_drift: bool = True
    #: an audio chunk whose stamp is further than this from where sample counting puts it
    #: starts a new segment (gap or overlap) instead of continuing the count
    audio_resync_tolerance_ns: int = 40_000_000
    #: H, W, C of the (all-masked) frames of a window that has none; None = 0×0×3, so that a
    #: window never depends on frames outside it
    empty_frame_shape: tuple[int, int, int] | None = None
    max_buffered_frames: int = 120
    max_buffered_utterances: int = 256
    #: 0 = derived: 2 × (window + hop + max_delay) + 1 s worth of samples
    max_buffered_audio_samples: int = 0
    #: emit windows that hold no data at all (else they are skipped and counted)
    emit_empty: bool = False
    #: emit as soon as every live dense stream passed the window end; False = only at end + max_delay
    #: (slower, but the windows then depend on nothing but what arrived within max_delay)
    watermark_emission: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.window_ns > 0, f"window_ns {self.window_ns} must be > 0"),
            (0 < self.hop_ns, f"hop_ns {self.hop_ns} must be > 0"),
            (self.frames_per_window >= 1, f"frames_per_window {self.frames_per_window} must be >= 1"),
            (self.frame_tolerance_ns >= 0, f"frame_tolerance_ns {self.frame_tolerance_ns} must be >= 0"),
            (self.sample_rate_hz > 0, f"sample_rate_hz {self.sample_rate_hz} must be > 0"),
            (self.audio_channels >= 1, f"audio_channels {self.audio_channels} must be >= 1"),
            (self.text_horizon_ns >= 0, f"text_horizon_ns {self.text_horizon_ns} must be >= 0"),
            (self.max_delay_ns >= 0, f"max_delay_ns {self.max_delay_ns} must be >= 0"),
            (self.liveness_timeout_ns > 0, f"liveness_timeout_ns {self.liveness_timeout_ns} must be > 0"),
            (self.audio_resync_tolerance_ns > 0, "audio_resync_tolerance_ns must be > 0"),
            (self.max_buffered_frames >= 1, f"max_buffered_frames {self.max_buffered_frames} must be >= 1"),
            (self.max_buffered_utterances >= 1, "max_buffered_utterances must be >= 1"),
            (set(self.streams) <= set(ALL_STREAMS) and len(self.streams) > 0,
             f"streams {self.streams!r} must be a non-empty subset of {ALL_STREAMS}"),
        ]
        for ok, why in checks:
            if not ok:
                raise ParameterError(f"SyncConfig: {why}")

    @property
    def slot_tolerance_ns(self) -> int:
        return self.frame_tolerance_ns or self.window_ns // (2 * self.frames_per_window)

    @property
    def audio_capacity_samples(self) -> int:
        if self.max_buffered_audio_samples:
            return self.max_buffered_audio_samples
        span_ns = 2 * (self.window_ns + self.hop_ns + self.max_delay_ns) + NS_PER_S
        return span_ns * self.sample_rate_hz // NS_PER_S

    def window_bounds(self, k: int) -> tuple[int, int]:
        start = self.origin_ns + k * self.hop_ns
        return start, start + self.window_ns

    def slot_times_ns(self, k: int) -> list[int]:
        """Centres of the T evenly spaced slots of window k."""
        start, _ = self.window_bounds(k)
        t = self.frames_per_window
        return [start + ((2 * i + 1) * self.window_ns) // (2 * t) for i in range(t)]

    def first_window_ending_after(self, t_ns: int) -> int:
        """Smallest k with window end > t_ns (the first window that can hold something at t_ns)."""
        # end_k = origin + k*hop + window > t  <=>  k > (t - origin - window) / hop
        return (t_ns - self.origin_ns - self.window_ns) // self.hop_ns + 1
