"""What a processing run is configured with: one frozen dataclass, times in integer nanoseconds.

The synchronizer defaults are the demo graph's (``launch/demo.yaml``: the synchronizer node's
defaults plus ``text_horizon_s: 1.5``), so ``mmstream process`` and ``bag play`` through the demo
graph cut the same windows. The tick period is the synchronizer node's ``poll_period_s`` timer
on the player's clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mmstream.errors import ParameterError
from mmstream.sync import SyncConfig
from mmstream.clock import NS_PER_S
from mmstream.sync.config import s_to_ns

#: the demo graph's synchronizer parameters that differ from the node's defaults
DEMO_SYNC = {"text_horizon_ns": s_to_ns(1.5)}
#: the synchronizer node's timer (poll_period_s) and the player's clock grid (clock_hz 100)
POLL_PERIOD_NS = 10_000_000
CLOCK_HZ = 100.0
#: default split: bags longer than this are cut into ranges of this length (0: never split)
SPLIT_NS = 600 * NS_PER_S
#: replayed before each range (not emitted), so the synchronizer's state (audio drift history up to
#: 30 s, buffers, liveness) and the preprocessor's (face track, VAD state) are the same at its start
WARMUP_NS = 30 * NS_PER_S


def sync_config(overrides: dict[str, Any] | None = None) -> SyncConfig:
    """The demo graph's SyncConfig with ``overrides`` (SyncConfig field names in ns, or ``*_s`` in seconds)."""
    names = {f.name for f in fields(SyncConfig)}
    kw: dict[str, Any] = dict(DEMO_SYNC)
    for key, value in (overrides or {}).items():
        if key in names:
            kw[key] = tuple(value) if isinstance(value, list) else value
        elif key.endswith("_s") and key[:-2] + "_ns" in names:
            kw[key[:-2] + "_ns"] = s_to_ns(float(value))
        else:
            raise ParameterError(f"synchronizer parameter {key!r} is unknown (SyncConfig fields, or *_s for *_ns: "
                                 f"{sorted(names)})")
    return SyncConfig(**kw)


@dataclass(frozen=True)
class ProcessConfig:
    """Everything that decides a run's results (and so the resume key), plus how it runs."""

    model: str = "default"                 # model package directory, or "default"
    backend: str = "onnxruntime"
    sync: SyncConfig = field(default_factory=sync_config)
    topic_map: tuple[tuple[str, str], ...] = ()   # (bag topic, modality or topic), as `bag play -m`
    audio_sample_rate_hz: int = 16000       # audio_common AudioData layout (the player's parameters)
    audio_channels: int = 1
    audio_sample_format: str = "S16LE"
    max_batch: int = 8                      # the inference node's micro-batch
    intra_op_threads: int = 1               # per worker: one core each
    split_ns: int = SPLIT_NS
    warmup_ns: int = WARMUP_NS
    poll_period_ns: int = POLL_PERIOD_NS
    clock_hz: float = CLOCK_HZ

    def __post_init__(self) -> None:
        if self.split_ns < 0 or self.warmup_ns < 0:
            raise ParameterError(f"process: split ({self.split_ns} ns) and warm-up ({self.warmup_ns} ns) must be >= 0")
        if self.split_ns and self.split_ns < self.sync.hop_ns:
            raise ParameterError(f"process: split {self.split_ns / 1e9} s is shorter than the hop "
                                 f"{self.sync.hop_ns / 1e9} s")
        if self.max_batch < 1 or self.intra_op_threads < 1:
            raise ParameterError("process: max_batch and intra_op_threads must be >= 1")

    def results_key(self, model_hash: str) -> str:
        """Hash of what decides the estimates of a bag (not how the run is spread over workers)."""
        doc = {"model": model_hash, "backend": self.backend, "sync": asdict(self.sync),
               "topic_map": sorted(self.topic_map), "audio": [self.audio_sample_rate_hz, self.audio_channels,
                                                                self.audio_sample_format],
               "poll_period_ns": self.poll_period_ns, "clock_hz": self.clock_hz,
               "split": [self.split_ns, self.warmup_ns]}  # a split's warm-up can move the preprocessor's state
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
