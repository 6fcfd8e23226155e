"""ROS 2 QoS profiles for bridge endpoints, and their Cyclone DDS form.

Defaults follow what matches robots' drivers: subscriptions best-effort (a best-effort reader
matches best-effort and reliable writers), publications reliable (a reliable writer matches both
kinds of reader); keep-last, volatile. Every endpoint offers XCDR1 only: ROS readers never match
an XCDR2 writer. Mismatches are silent in DDS, so :func:`explain_mismatch` says in words why two
profiles do not match (the bridge logs it with the topic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmstream.ros2 import Ros2Error

RELIABILITY = ("reliable", "best_effort")
DURABILITY = ("volatile", "transient_local")
_MAX_BLOCKING_S = 0.1  # a reliable writer blocks at most this long on a full history before dropping


@dataclass(frozen=True)
class QosProfile:
    reliability: str = "best_effort"
    depth: int = 5
    durability: str = "volatile"

    def __post_init__(self) -> None:
        if self.reliability not in RELIABILITY:
            raise Ros2Error(f"QoS reliability {self.reliability!r} is not one of {list(RELIABILITY)}")
        if self.durability not in DURABILITY:
            raise Ros2Error(f"QoS durability {self.durability!r} is not one of {list(DURABILITY)}")
        if not 1 <= int(self.depth) <= 1000:
            raise Ros2Error(f"QoS depth {self.depth} out of range (expected 1..1000)")

    def describe(self) -> str:
        return f"{self.reliability}, keep-last {self.depth}, {self.durability}"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], default: QosProfile) -> QosProfile:
        """From a route's ``qos`` / ``depth`` / ``durability`` keys, falling back to ``default``."""
        return cls(reliability=str(spec.get("qos", default.reliability)),
                   depth=int(spec.get("depth", default.depth)),
                   durability=str(spec.get("durability", default.durability)))


SUBSCRIBE_DEFAULT = QosProfile("best_effort", 5, "volatile")
PUBLISH_DEFAULT = QosProfile("reliable", 10, "volatile")


def explain_mismatch(reader: QosProfile, writer: QosProfile) -> str | None:
    """Why a reader with ``reader`` QoS does not match a writer with ``writer`` QoS; None if they match."""
    reasons = []
    if reader.reliability == "reliable" and writer.reliability == "best_effort":
        reasons.append("the reader asks for reliable but the writer offers best_effort")
    if reader.durability == "transient_local" and writer.durability == "volatile":
        reasons.append("the reader asks for transient_local but the writer offers volatile")
    return "; ".join(reasons) or None


def to_cyclone(profile: QosProfile, *, user_data: bytes = b"") -> Any:
    """The Cyclone DDS Qos of an endpoint with ``profile`` (XCDR1 only, USER_DATA as given)."""
    from cyclonedds.qos import Policy, Qos

    rel = (Policy.Reliability.Reliable(int(_MAX_BLOCKING_S * 1e9)) if profile.reliability == "reliable"
           else Policy.Reliability.BestEffort)
    dur = Policy.Durability.TransientLocal if profile.durability == "transient_local" else Policy.Durability.Volatile
    policies = [rel, dur, Policy.History.KeepLast(profile.depth),
                Policy.DataRepresentation(use_cdrv0_representation=True)]
    if user_data:
        policies.append(Policy.Userdata(user_data))
    return Qos(*policies)


def from_cyclone(qos: Any) -> QosProfile:
    """The profile of a discovered endpoint's Cyclone Qos (unknown parts: the DDS defaults)."""
    from cyclonedds.qos import Policy

    rel = "best_effort"
    dur = "volatile"
    depth = 1
    for p in qos:  # a Qos iterates over its policies
        if isinstance(p, Policy.Reliability.Reliable):
            rel = "reliable"
        elif p == Policy.Durability.TransientLocal:
            dur = "transient_local"
        elif isinstance(p, Policy.History.KeepLast):
            depth = max(1, min(1000, int(p.depth)))
    return QosProfile(rel, depth, dur)
