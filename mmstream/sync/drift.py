"""Audio device clock drift: how fast the sound card's sample clock runs against the node clock.

A sound card counts samples with its own crystal; the host stamps each chunk with the node clock
when it is handed over, with a few milliseconds of scheduling jitter. Over the last
``history_ns`` of chunks we fit, by ordinary least squares,

    stamp_ns(chunk) ≈ intercept_ns + period_ns · first_sample_index(chunk)

(indices count every sample the device produced, lost ones included), so ``period_ns`` is the
real duration of one sample on the node clock and ``drift_ppm = (period_ns / nominal - 1)·1e6``.
Jitter averages out: with J ms of jitter over an S-second history the slope error is about
J/(S·sqrt(n)). Until the history spans ``min_span_ns`` the nominal period is used, and the
estimate is clamped to ±``max_drift_ppm`` so a burst of bad stamps cannot run away with it.
Coordinates are taken relative to the oldest point so the fit stays exact in float64.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from mmstream.clock import NS_PER_S


class AudioClockEstimator:
    """Least-squares fit of chunk stamps against sample indices over a sliding history."""

    def __init__(self, nominal_rate_hz: int, *, history_ns: int = 30 * NS_PER_S, max_points: int = 512,
                 min_span_ns: int = 2 * NS_PER_S, max_drift_ppm: float = 1000.0, refit_every: int = 16) -> None:
        self._refit_every = refit_every
        self._since_fit = 0
        self.nominal_period_ns = NS_PER_S / nominal_rate_hz
        self._history_ns = history_ns
        self._min_span_ns = min_span_ns
        self._max_drift = max_drift_ppm * 1e-6
        self._points: deque[tuple[int, int]] = deque(maxlen=max_points)
        self._period_ns = self.nominal_period_ns
        self._intercept: tuple[int, float] | None = None  # (base stamp, offset) at index base
        self._base_index = 0

    def reset(self) -> None:
        self._since_fit = 0
        self._points.clear()
        self._period_ns = self.nominal_period_ns
        self._intercept = None

    def add(self, index: int, stamp_ns: int) -> None:
        """Record that the sample with absolute ``index`` was stamped ``stamp_ns``."""
        if self._points and index <= self._points[-1][0]:
            return  # only in-order points: a re-sent or reordered chunk says nothing new
        self._points.append((index, stamp_ns))
        while len(self._points) > 2 and stamp_ns - self._points[0][1] > self._history_ns:
            self._points.popleft()
        # the fit moves slowly: refitting every few chunks costs a fraction and changes nothing
        self._since_fit += 1
        if self._intercept is None or self._since_fit >= self._refit_every or len(self._points) < 16:
            self._since_fit = 0
            self._refit()

    def _refit(self) -> None:
        i0, t0 = self._points[0]
        pts = np.array(self._points, dtype=np.int64)
        x = (pts[:, 0] - i0).astype(np.float64)
        y = (pts[:, 1] - t0).astype(np.float64)
        self._base_index = i0
        if len(x) < 3 or y[-1] - y[0] < self._min_span_ns:
            self._period_ns = self.nominal_period_ns
            offset = float(np.mean(y - x * self._period_ns))
        else:
            xm, ym = x.mean(), y.mean()
            slope = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
            lo = self.nominal_period_ns * (1 - self._max_drift)
            hi = self.nominal_period_ns * (1 + self._max_drift)
            self._period_ns = min(max(slope, lo), hi)
            offset = float(ym - self._period_ns * xm)
        self._intercept = (t0, offset)

    @property
    def period_ns(self) -> float:
        """Estimated duration of one sample on the node clock (nominal until enough history)."""
        return self._period_ns

    @property
    def drift_ppm(self) -> float:
        return (self._period_ns / self.nominal_period_ns - 1.0) * 1e6

    def predict_delta_ns(self, index: int, reference_ns: int) -> float | None:
        """Fitted stamp of sample ``index`` minus ``reference_ns`` (float64-exact for nearby values)."""
        if self._intercept is None:
            return None
        t0, offset = self._intercept
        return (t0 - reference_ns) + offset + (index - self._base_index) * self._period_ns
