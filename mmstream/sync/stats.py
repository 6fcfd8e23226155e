"""Counters kept by the window synchronizer (all monotonic, never reset except by ``reset()``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmstream.sync.config import ALL_STREAMS


def _per_stream() -> dict[str, int]:
    return {s: 0 for s in ALL_STREAMS}


@dataclass
class SyncStats:
    received: dict[str, int] = field(default_factory=_per_stream)
    #: messages that arrived after every window they belong to was emitted (dropped)
    late: dict[str, int] = field(default_factory=_per_stream)
    #: messages part of which came too late for an emitted window (the rest was used)
    late_partial: dict[str, int] = field(default_factory=_per_stream)
    #: held messages evicted by a full buffer before their windows were emitted
    dropped: dict[str, int] = field(default_factory=_per_stream)
    #: messages (frames, utterances) with the same stamp/content as one held: second copy dropped
    duplicates: dict[str, int] = field(default_factory=_per_stream)
    #: messages refused: wrong sample rate, channel count, empty, ...
    rejected: dict[str, int] = field(default_factory=_per_stream)
    late_samples: int = 0
    dropped_samples: int = 0
    duplicate_samples: int = 0
    known_gap_samples: int = 0
    detected_gap_samples: int = 0
    emitted: int = 0
    emitted_by_watermark: int = 0
    emitted_by_deadline: int = 0
    skipped_empty: int = 0
    audio_drift_ppm: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}
