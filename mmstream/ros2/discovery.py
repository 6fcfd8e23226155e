"""Discovery settings the way ROS 2 reads them from the environment, as a Cyclone DDS configuration.

``ROS_DOMAIN_ID`` (default 0); ``ROS_AUTOMATIC_DISCOVERY_RANGE`` = ``LOCALHOST`` (the default
here: loopback only, no multicast, peer ``localhost``, participant index auto — what
rmw_cyclonedds_cpp configures for that range), ``SUBNET`` (multicast on the default interface),
``OFF`` (no automatic discovery: static peers only), ``SYSTEM_DEFAULT`` (Cyclone's own defaults);
``ROS_STATIC_PEERS`` (``;``-separated hosts, added as unicast peers); Humble's
``ROS_LOCALHOST_ONLY=1`` means LOCALHOST when no range is set. A ``CYCLONEDDS_URI`` the user
set wins over all of this (the bridge logs that it does).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from mmstream.ros2 import Ros2Error

RANGES = ("LOCALHOST", "SUBNET", "OFF", "SYSTEM_DEFAULT")


@dataclass(frozen=True)
class Discovery:
    domain_id: int = 0
    range: str = "LOCALHOST"
    static_peers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.domain_id <= 232:
            raise Ros2Error(f"ROS domain id {self.domain_id} out of range (expected 0..232)")
        if self.range not in RANGES:
            raise Ros2Error(f"discovery range {self.range!r} is not one of {list(RANGES)}")

    def describe(self) -> str:
        peers = f", static peers {list(self.static_peers)}" if self.static_peers else ""
        return f"domain {self.domain_id}, discovery range {self.range}{peers}"

    def cyclone_xml(self) -> str:
        """The ``CYCLONEDDS_URI`` document for this discovery (inline XML)."""
        general, disc = [], []
        if self.range in ("LOCALHOST", "OFF"):
            general.append('<Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>')
            general.append("<AllowMulticast>false</AllowMulticast>")
            disc.append("<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>100</MaxAutoParticipantIndex>")
        peers = list(self.static_peers) + (["localhost"] if self.range == "LOCALHOST" else [])
        if peers:
            disc.append("<Peers>" + "".join(f'<Peer address="{escape(p)}"/>' for p in peers) + "</Peers>")
        return ("<CycloneDDS><Domain id=\"any\"><General>" + "".join(general) + "</General><Discovery>"
                + "".join(disc) + "</Discovery></Domain></CycloneDDS>")


def from_env(env: Mapping[str, str] | None = None, *, domain_id: int = -1, range_: str = "",
             static_peers: str = "") -> Discovery:
    """Discovery from explicit settings, else the ROS 2 environment variables, else the defaults."""
    env = os.environ if env is None else env
    if domain_id < 0:
        text = env.get("ROS_DOMAIN_ID", "").strip() or "0"
        try:
            domain_id = int(text)
        except ValueError:
            raise Ros2Error(f"ROS_DOMAIN_ID={text!r} is not an integer") from None
    rng = (range_ or env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")).strip().upper()
    if not rng:
        rng = "LOCALHOST"  # Humble's ROS_LOCALHOST_ONLY=1 and our default agree
        if env.get("ROS_LOCALHOST_ONLY", "").strip() == "0":
            rng = "SUBNET"
    peers_text = static_peers or env.get("ROS_STATIC_PEERS", "")
    peers = tuple(p.strip() for p in peers_text.replace(",", ";").split(";") if p.strip())
    return Discovery(domain_id=domain_id, range=rng, static_peers=peers)


def apply(discovery: Discovery, env: dict[str, str] | None = None) -> bool:
    """Put the configuration in ``CYCLONEDDS_URI`` before the first participant; False if the user set one."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    if env.get("CYCLONEDDS_URI") and not env.get("CYCLONEDDS_URI", "").startswith("<CycloneDDS><Domain id=\"any\">"):
        return False
    if discovery.range != "SYSTEM_DEFAULT" or discovery.static_peers:
        env["CYCLONEDDS_URI"] = discovery.cyclone_xml()
    return True
