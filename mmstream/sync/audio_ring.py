"""A bounded audio timeline: every sample gets one integer index and one fixed time, once.

Samples are counted, not stamped: a chunk that continues the previous one (next ``seq``, stamp
within ``resync_tolerance_ns`` of where counting puts it) is placed right after it, so scheduling
jitter in chunk stamps never creates gaps or duplicates. Stamps steer the count only slowly (see
:mod:`mmstream.sync.drift`). A chunk whose stamp disagrees by more than the tolerance, or that
follows a sequence gap, starts where its stamp says: the samples in between are a gap (zero,
masked), and samples already held are duplicates (dropped, counted). ``gap_samples`` on a chunk
is a gap the sender knows about. Reordered (older) chunks fill the holes they belong to.

Each run of samples is a *segment* with a linear *clock* ``time(n) = t_ref + round(frac_ref +
(n - n_ref)·period)``; indices in a hole take their time from the segment before the hole, so a
sample's time never changes once it exists (masked or filled). A window [start, end) is exactly
the indices whose time falls in it; consecutive windows therefore share or split samples exactly.
Only real samples are stored (a gap costs nothing); the total is capped.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from mmstream.clock import NS_PER_S
from mmstream.sync.drift import AudioClockEstimator
#: phase steering toward the fitted stamp line: fraction per chunk, and at most this many periods
STEER_GAIN = 0.05
STEER_MAX_PERIODS = 0.125


@dataclass(frozen=True)
class SampleClock:
    """time(n) = t_ref_ns + round(frac_ref + (n - n_ref)·period_ns); frac_ref in [0, 1)."""

    n_ref: int
    t_ref_ns: int
    frac_ref: float
    period_ns: float

    def time_ns(self, n: int) -> int:
        return self.t_ref_ns + math.floor(self.frac_ref + (n - self.n_ref) * self.period_ns + 0.5)

    def exact_ns(self, n: int) -> tuple[int, float]:
        """Time of index n as (integer ns, fraction in [0, 1))."""
        x = self.frac_ref + (n - self.n_ref) * self.period_ns
        whole = math.floor(x)
        return self.t_ref_ns + whole, x - whole

    def index_at_or_after(self, t_ns: int) -> int:
        """Smallest n with time_ns(n) >= t_ns."""
        n = self.n_ref + math.ceil((t_ns - self.t_ref_ns - self.frac_ref - 0.5) / self.period_ns)
        while self.time_ns(n - 1) >= t_ns:
            n -= 1
        while self.time_ns(n) < t_ns:
            n += 1
        return n

    def rebased(self, n: int, shift_ns: float = 0.0, period_ns: float | None = None) -> "SampleClock":
        t, frac = self.exact_ns(n)
        frac += shift_ns
        whole = math.floor(frac)
        return SampleClock(n, t + whole, frac - whole, self.period_ns if period_ns is None else period_ns)


@dataclass
class Segment:
    """Samples [n0, n0 + len(data)) with their clock; len 0 = an anchor kept after trimming."""

    n0: int
    clock: SampleClock
    data: np.ndarray
    stamp_ns: int = -1  # header stamp of the chunk these samples came from (-1: anchor)
    seq: int = -1  # header seq of that chunk (places reordered neighbours exactly)
    gap_before: int = 0  # samples the sender said were lost right before this chunk

    @property
    def end(self) -> int:
        return self.n0 + int(self.data.shape[0])


@dataclass
class PushResult:
    placed: int = 0
    late: int = 0
    duplicate: int = 0
    known_gap: int = 0
    detected_gap: int = 0
    filled: int = 0  # samples that filled a hole left by a chunk not yet arrived
    dropped: int = 0


@dataclass
class AudioCut:
    samples: np.ndarray  # N×C float32
    mask: np.ndarray  # N bool
    chunk_stamps_ns: list[int] = field(default_factory=list)


class AudioTimeline:
    """Places audio chunks on a sample-index timeline and cuts exact [start, end) spans."""

    def __init__(self, sample_rate_hz: int, channels: int, *, capacity_samples: int,
                 resync_tolerance_ns: int, estimate_drift: bool = True, max_segments: int = 4096) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.nominal_period_ns = NS_PER_S / sample_rate_hz
        self._capacity = capacity_samples
        self._tol_ns = resync_tolerance_ns
        self._max_segments = max_segments
        self._estimator = AudioClockEstimator(sample_rate_hz) if estimate_drift else None
        self.reset()

    def reset(self) -> None:
        self._segs: list[Segment] = []
        self._floor_n: int | None = None
        self._last_seq: int | None = None
        self._held = 0
        # sample index of each window boundary already cut: a boundary shared by two windows (tiling,
        # or overlap on the hop grid) keeps the index it had, even if a later chunk re-steered the clock
        self._boundaries: dict[int, int] = {}
        if self._estimator is not None:
            self._estimator.reset()

    # ------------------------------------------------------------------ queries

    @property
    def started(self) -> bool:
        return bool(self._segs)

    @property
    def drift_ppm(self) -> float:
        return self._estimator.drift_ppm if self._estimator is not None else 0.0

    @property
    def held_samples(self) -> int:
        return self._held

    def _period_ns(self) -> float:
        return self._estimator.period_ns if self._estimator is not None else self.nominal_period_ns

    def _seg_index_for(self, n: int) -> int:
        """Index of the segment whose clock times index n (the last with n0 <= n, else the first)."""
        i = bisect.bisect_right([s.n0 for s in self._segs], n) - 1
        return max(i, 0)

    def index_at_or_after(self, t_ns: int) -> int:
        segs = self._segs
        i = 0
        for j in range(len(segs) - 1, -1, -1):
            if segs[j].clock.time_ns(segs[j].n0) <= t_ns:
                i = j
                break
        n = segs[i].clock.index_at_or_after(t_ns)
        if i + 1 < len(segs):
            n = min(n, segs[i + 1].n0)
        return max(n, segs[i].n0) if i > 0 else n

    def watermark_ns(self) -> int | None:
        """Time of the next sample expected: every sample before it has been received or lost."""
        if not self._segs:
            return None
        head = self._segs[-1]
        return head.clock.time_ns(head.end)

    def earliest_data_ns(self) -> int | None:
        """Time of the oldest held sample (None when nothing is held)."""
        for s in self._segs:
            if s.data.shape[0]:
                n = s.n0 if self._floor_n is None else max(s.n0, self._floor_n)
                if n < s.end:
                    return s.clock.time_ns(n)
        return None

    # ------------------------------------------------------------------ push

    def push(self, samples: np.ndarray, stamp_ns: int, *, source_stamp_ns: int, gap_samples: int = 0,
             seq: int = 0) -> PushResult:
        """Place one chunk (N×C float32) whose first sample is stamped ``stamp_ns`` (node clock)."""
        res = PushResult(known_gap=max(gap_samples, 0))
        n = int(samples.shape[0])
        period = self._period_ns()
        # seq 0 = the sender does not number its chunks: place this one by contiguity/stamp only
        last_seq = self._last_seq
        if seq:
            self._last_seq = seq if last_seq is None else max(seq, last_seq)
        if not self._segs:
            clock = SampleClock(0, stamp_ns, 0.0, period)
            self._insert(Segment(0, clock, samples, source_stamp_ns, seq, max(gap_samples, 0)))
            res.placed = n
            if self._estimator is not None:
                self._estimator.add(0, stamp_ns)
            self._enforce_caps(res)
            return res
        head = self._segs[-1]
        head_n = head.end
        in_order = seq == 0 or last_seq is None or seq == last_seq + 1
        skipped = seq != 0 and last_seq is not None and seq > last_seq + 1
        contiguous = False
        if in_order or skipped:
            n_exp = head_n + max(gap_samples, 0)
            r_ns = stamp_ns - head.clock.time_ns(n_exp)
            k = 0 if abs(r_ns) <= self._tol_ns else round(r_ns / head.clock.period_ns)
            if skipped:  # chunks went missing in between: trust the stamp, never overlap
                k = max(round(r_ns / head.clock.period_ns), 0)
            n0 = n_exp + k
            contiguous = k == 0 and in_order
            if k > 0:
                res.detected_gap = k
        else:  # an older chunk arriving late: next to its seq neighbours, else where its stamp says
            n0 = self._reordered_start(seq, n, max(gap_samples, 0),
                                       head_n + round((stamp_ns - head.clock.time_ns(head_n)) / head.clock.period_ns))
        self._place(samples, n0, stamp_ns, source_stamp_ns, contiguous, period, res, seq, max(gap_samples, 0))
        self._enforce_caps(res)
        return res

    def _reordered_start(self, seq: int, n: int, gap: int, n_raw: int) -> int:
        before = [s for s in self._segs if s.seq == seq - 1 and s.data.shape[0]]
        if before:
            return max(s.end for s in before) + gap
        after = [s for s in self._segs if s.seq == seq + 1 and s.data.shape[0]]
        if after:
            first = min(after, key=lambda s: s.n0)
            return first.n0 - first.gap_before - n
        # no neighbour held: trust the stamp, snapped to a hole edge within the jitter tolerance
        tol = min(int(self._tol_ns / self.nominal_period_ns), n // 2)
        best, best_d = n_raw, tol + 1
        for s in self._segs:
            for cand in (s.end, s.n0 - n):
                d = abs(cand - n_raw)
                if d < best_d:
                    best, best_d = cand, d
        return best

    def _place(self, samples: np.ndarray, n0: int, stamp_ns: int, source_stamp_ns: int, contiguous: bool,
               period: float, res: PushResult, seq: int, gap: int) -> None:
        n = int(samples.shape[0])
        lo = n0
        if self._floor_n is not None and lo < self._floor_n:
            res.late += min(self._floor_n - lo, n)
            lo = self._floor_n
        hi = n0 + n
        if lo >= hi:
            return
        # free intervals of [lo, hi) not covered by held samples
        free: list[tuple[int, int]] = []
        cur = lo
        for s in (self._segs if lo < self._segs[-1].end else ()):  # appending past the head: all free
            if s.end <= cur or not s.data.shape[0]:
                continue
            if s.n0 >= hi:
                break
            if s.n0 > cur:
                free.append((cur, s.n0))
            cur = max(cur, s.end)
            if cur >= hi:
                break
        if cur < hi:
            free.append((cur, hi))
        res.duplicate += (hi - lo) - sum(b - a for a, b in free)
        head_n = self._segs[-1].end
        for a, b in free:
            part = samples[a - n0:b - n0]
            if a >= head_n:  # extends the timeline
                base = self._segs[-1].clock
                shift = 0.0
                if contiguous and a == n0 and self._estimator is not None:
                    self._estimator.add(n0, stamp_ns)
                    t_int, frac = base.exact_ns(a)
                    fitted = self._estimator.predict_delta_ns(a, t_int)
                    if fitted is not None:
                        lim = STEER_MAX_PERIODS * base.period_ns
                        shift = max(-lim, min(lim, STEER_GAIN * (fitted - frac)))
                elif a == n0 and self._estimator is not None:
                    self._estimator.add(n0, stamp_ns)
                clock = base.rebased(a, shift, period)
            else:  # fills a hole: keep the hole's clock so its times do not change
                clock = self._segs[self._seg_index_for(a)].clock
                res.filled += b - a
            self._insert(Segment(a, clock, part, source_stamp_ns, seq, gap if a == n0 else 0))
            res.placed += b - a

    def _insert(self, seg: Segment) -> None:
        starts = [s.n0 for s in self._segs]
        i = bisect.bisect_right(starts, seg.n0)
        # an anchor at the same index is superseded by real samples
        if i > 0 and self._segs[i - 1].n0 == seg.n0 and not self._segs[i - 1].data.shape[0]:
            self._segs.pop(i - 1)
            i -= 1
        self._segs.insert(i, seg)
        self._held += int(seg.data.shape[0])

    def _drop_first(self) -> int:
        """Turn the oldest data segment into an anchor; returns the samples dropped."""
        for i, s in enumerate(self._segs):
            if s.data.shape[0]:
                dropped = int(s.data.shape[0])
                self._segs[i] = Segment(s.end, s.clock, s.data[:0])
                self._held -= dropped
                self._floor_n = s.end if self._floor_n is None else max(self._floor_n, s.end)
                self._prune_anchors()
                return dropped
        return 0

    def _prune_anchors(self) -> None:
        """Keep only the last anchor before the first data segment (it times the hole after it)."""
        first_data = next((i for i, s in enumerate(self._segs) if s.data.shape[0]), len(self._segs))
        if first_data > 1:
            keep = self._segs[first_data - 1]
            self._segs = [keep] + self._segs[first_data:]

    def _enforce_caps(self, res: PushResult) -> None:
        while self._held > self._capacity or len(self._segs) > self._max_segments:
            dropped = self._drop_first()
            if not dropped and len(self._segs) <= self._max_segments:
                break
            res.dropped += dropped
            if not dropped:
                self._segs.pop(0)

    # ------------------------------------------------------------------ cut / trim

    def cut(self, start_ns: int, end_ns: int) -> AudioCut:
        """Exactly the samples whose time is in [start_ns, end_ns); zero and masked where none arrived."""
        if not self._segs:
            count = math.ceil((end_ns - start_ns) / self.nominal_period_ns)
            return AudioCut(np.zeros((count, self.channels), np.float32), np.zeros(count, np.bool_))
        n_lo = self._boundary(start_ns)
        n_hi = max(self._boundary(end_ns), n_lo)
        count = n_hi - n_lo
        out = np.zeros((count, self.channels), np.float32)
        mask = np.zeros(count, np.bool_)
        stamps: list[int] = []
        for s in self._segs:
            a, b = max(s.n0, n_lo), min(s.end, n_hi)
            if a >= b:
                continue
            out[a - n_lo:b - n_lo] = s.data[a - s.n0:b - s.n0]
            mask[a - n_lo:b - n_lo] = True
            if s.stamp_ns not in stamps:
                stamps.append(s.stamp_ns)
        return AudioCut(out, mask, sorted(stamps))

    def _boundary(self, t_ns: int) -> int:
        n = self._boundaries.get(t_ns)
        if n is None:
            n = self._boundaries[t_ns] = self.index_at_or_after(t_ns)
            if len(self._boundaries) > 4096:  # bounded; trim_before prunes the past as windows advance
                self._boundaries.pop(next(iter(self._boundaries)))
        return n

    def trim_before(self, t_ns: int) -> None:
        """Forget samples before ``t_ns``; any that arrive later for that span count as late."""
        if not self._segs:
            return
        floor_n = self.index_at_or_after(t_ns)
        for b in [b for b in self._boundaries if b < t_ns]:
            del self._boundaries[b]
        if self._floor_n is not None and floor_n <= self._floor_n:
            return
        self._floor_n = floor_n
        while self._segs and self._segs[0].data.shape[0] and self._segs[0].end <= floor_n \
                or (len(self._segs) > 1 and not self._segs[0].data.shape[0] and self._segs[1].n0 <= floor_n):
            s = self._segs[0]
            if s.data.shape[0]:
                self._held -= int(s.data.shape[0])
                self._segs[0] = Segment(s.end, s.clock, s.data[:0])
            else:
                self._segs.pop(0)
        self._prune_anchors()
