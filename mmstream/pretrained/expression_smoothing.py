"""Temporal smoothing of the face expression, per tracked face, so one bad frame does not flip the label.

An exponential moving average in probability space over the windows in which a track is the main
face: s <- s + a·(p - s), a = 1 - exp(-dt / tau_s), dt the time since the track's last update
(window end stamps, integer ns). A track seen for the first time (or after more than
``forget_after_tau`` time constants) starts from its own probabilities. tau_s = 0 turns smoothing off.
A pure object: time comes in with each call.
"""

from __future__ import annotations

import math

import numpy as np

from mmstream.clock import NS_PER_S


class ExpressionSmoother:
    def __init__(self, tau_s: float, *, forget_after_tau: float = 10.0) -> None:
        if tau_s < 0:
            raise ValueError(f"expression smoothing time constant {tau_s} s: expected >= 0")
        self.tau_s = float(tau_s)
        self.forget_after_tau = float(forget_after_tau)
        self._tracks: dict[int, tuple[np.ndarray, int]] = {}  # track id -> (smoothed probs, stamp_ns)

    def reset(self) -> None:
        self._tracks.clear()

    def update(self, track_id: int, probs: np.ndarray, stamp_ns: int) -> np.ndarray:
        """The smoothed probabilities of ``track_id`` after seeing ``probs`` at ``stamp_ns``."""
        probs = np.asarray(probs, np.float64)
        if self.tau_s == 0.0:
            return probs.copy()
        horizon_ns = int(self.forget_after_tau * self.tau_s * NS_PER_S)
        for tid in [t for t, (_, s) in self._tracks.items() if stamp_ns - s > horizon_ns or s > stamp_ns]:
            del self._tracks[tid]  # long gone, or time went back (a replay restarting)
        prev = self._tracks.get(track_id)
        if prev is None:
            smoothed = probs.copy()
        else:
            dt_s = (stamp_ns - prev[1]) / NS_PER_S
            a = 1.0 - math.exp(-dt_s / self.tau_s)
            smoothed = prev[0] + a * (probs - prev[0])
        self._tracks[track_id] = (smoothed, int(stamp_ns))
        return smoothed.copy()
