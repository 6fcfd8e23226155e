"""The ROS 2 bridge's logic, without DDS or sockets: routes, decoding, conversion, counting.

A :class:`Route` links one ROS 2 topic to one mmstream topic in one direction. Routes are parsed
and checked at start (:func:`parse_routes`): a type the bridge cannot speak is an error listing the
supported ones. :class:`Ros2Bridge` turns received CDR into mmstream messages (``on_sample``) and
mmstream messages into CDR (``on_message``); what it cannot use is counted through
``count_rejected`` with a reason naming the rule and the ROS topic, so each kind is logged once.
The DDS side (:mod:`mmstream.ros2.dds`) and the node (``nodes/ros2_bridge.py``) wire it up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmstream.bag.convert import ConvertOptions, Incoming
from mmstream.messages import Message
from mmstream.ros2 import Ros2Error
from mmstream.ros2 import codec
from mmstream.ros2.naming import fully_qualified, full_type
from mmstream.ros2.qos import PUBLISH_DEFAULT, SUBSCRIBE_DEFAULT, QosProfile
from mmstream.ros2.typesupport import TypeSupport, type_support

_IN_KEYS = {"ros_topic", "type", "topic", "qos", "depth", "durability"}
_OUT_KEYS = {"topic", "ros_topic", "type", "msg", "qos", "depth", "durability"}


@dataclass(frozen=True)
class Route:
    direction: str          # "in" (ROS -> mmstream) or "out" (mmstream -> ROS)
    ros_topic: str          # fully qualified ROS 2 name
    ros_type: str           # pkg/msg/Name
    topic: str              # mmstream topic
    cls: type[Message]      # mmstream class on ``topic``
    qos: QosProfile

    def describe(self) -> str:
        arrow = f"{self.ros_topic} [{self.ros_type}] -> {self.topic}" if self.direction == "in" else \
            f"{self.topic} -> {self.ros_topic} [{self.ros_type}]"
        return f"{arrow} ({self.qos.describe()})"


def _check_keys(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise Ros2Error(f"{where}: unknown key(s) {unknown} (expected {sorted(allowed)})")


def parse_routes(inputs: Iterable[Mapping[str, Any]], outputs: Iterable[Mapping[str, Any]], *,
                 namespace: str = "/") -> list[Route]:
    """Routes from the node's ``inputs`` / ``outputs`` parameters (lists of dicts), checked."""
    routes: list[Route] = []
    for i, spec in enumerate(inputs):
        where = f"ros2_bridge inputs[{i}]"
        if not isinstance(spec, Mapping):
            raise Ros2Error(f"{where}: expected a mapping with keys {sorted(_IN_KEYS)}, got {spec!r}")
        _check_keys(spec, _IN_KEYS, where)
        try:
            ros_type = full_type(str(spec["type"]))
            ros_topic, topic = str(spec["ros_topic"]), str(spec["topic"])
        except KeyError as exc:
            raise Ros2Error(f"{where}: missing key {exc} (need ros_topic, type, topic)") from None
        cls = codec.INBOUND.get(ros_type)
        if cls is None:
            raise Ros2Error(f"{where}: the bridge cannot take in {ros_type!r} (supported inputs: "
                            f"{sorted(codec.INBOUND)})")
        routes.append(Route("in", fully_qualified(ros_topic, namespace), ros_type, "/" + topic.strip("/"), cls,
                            QosProfile.from_spec(spec, SUBSCRIBE_DEFAULT)))
    for i, spec in enumerate(outputs):
        where = f"ros2_bridge outputs[{i}]"
        if not isinstance(spec, Mapping):
            raise Ros2Error(f"{where}: expected a mapping with keys {sorted(_OUT_KEYS)}, got {spec!r}")
        _check_keys(spec, _OUT_KEYS, where)
        try:
            ros_type = full_type(str(spec["type"]))
            ros_topic, topic = str(spec["ros_topic"]), str(spec["topic"])
        except KeyError as exc:
            raise Ros2Error(f"{where}: missing key {exc} (need topic, ros_topic, type)") from None
        msg_name = spec.get("msg")
        cls = None
        if msg_name is not None:
            cls = codec.OUT_CLASSES.get(str(msg_name))
            if cls is None:
                raise Ros2Error(f"{where}: msg {msg_name!r} is not one of {sorted(codec.OUT_CLASSES)}")
        out = codec.outbound_for(ros_type, cls)
        if out is None:
            choices = sorted(f"{c.__name__} as {t}" for c, t in codec.OUTBOUND)
            ambiguous = cls is None and any(t == ros_type for _, t in codec.OUTBOUND)
            hint = " without msg: several classes can be sent as it, say which with msg:" if ambiguous else ""
            raise Ros2Error(f"{where}: the bridge cannot send {msg_name or 'a message'} as {ros_type!r}{hint} "
                            f"(supported outputs: {choices})")
        routes.append(Route("out", fully_qualified(ros_topic, namespace), ros_type, "/" + topic.strip("/"),
                            out.cls, QosProfile.from_spec(spec, PUBLISH_DEFAULT)))
    for r in routes:
        type_support(r.ros_type)  # every type's codec and hash are built (and checked) at start
    return routes


def standard_routes(p: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The robot routes named by the node's topic parameters (an empty topic: no route)."""
    ins = [{"ros_topic": p[f"{k}_topic"], "type": p[f"{k}_type"], "topic": p[f"{k}_out"]}
           for k in ("image", "audio", "text") if p[f"{k}_topic"]]
    if p["clock_topic"]:
        from mmstream.messages import CLOCK_TOPIC
        ins.append({"ros_topic": p["clock_topic"], "type": "rosgraph_msgs/msg/Clock", "topic": CLOCK_TOPIC})
    prefix = "/" + p["output_prefix"].strip("/")
    outs = []
    if p["emotion_topic"]:
        outs += [{"topic": p["emotion_topic"], "ros_topic": f"{prefix}/emotion", "type": codec.EMOTION},
                 {"topic": p["emotion_topic"], "ros_topic": f"{prefix}/emotion_label", "type": codec.STRING,
                  "msg": "EmotionEstimate"}]
    if p["detections_topic"]:
        outs.append({"topic": p["detections_topic"], "ros_topic": f"{prefix}/detections",
                     "type": codec.DETECTION_2D_ARRAY})
    if p["annotated_topic"]:
        outs.append({"topic": p["annotated_topic"], "ros_topic": f"{prefix}/annotated", "type": codec.IMAGE})
    return ins, outs


@dataclass
class RouteStats:
    received: int = 0
    sent: int = 0
    rejected: int = 0


@dataclass
class Ros2Bridge:
    """Converts between CDR samples and mmstream messages for a set of routes.

    publish(route, msg): hand an mmstream message to the graph. write(route, cdr): hand CDR to DDS.
    count_rejected(reason, detail): the node's bad-input counter (logs the first of each reason).
    """

    routes: list[Route]
    publish: Callable[[Route, Message], None]
    write: Callable[[Route, bytes], None]
    count_rejected: Callable[[str, str], None]
    options: ConvertOptions = ConvertOptions()
    stats: dict[Route, RouteStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._support: dict[Route, TypeSupport] = {r: type_support(r.ros_type) for r in self.routes}
        self.stats = {r: RouteStats() for r in self.routes}
        self._seq = {r: 0 for r in self.routes}

    def reject(self, route: Route, kind: str, detail: str) -> None:
        self.stats[route].rejected += 1
        self.count_rejected(f"ros2 {kind} on {route.ros_topic}",
                            f"{route.ros_topic} [{route.ros_type}]: {detail}")

    def on_sample(self, route: Route, cdr: bytes, source_time_ns: int = 0) -> Message | None:
        """One received sample (CDR with its encapsulation header) -> published mmstream message."""
        self.stats[route].received += 1
        if len(cdr) < 4 or cdr[:2] not in (b"\x00\x00", b"\x00\x01"):
            self.reject(route, "cdr", f"{len(cdr)} bytes starting {cdr[:4].hex()} (expected XCDR1 CDR, "
                                      f"encapsulation 0000 or 0001)")
            return None
        try:
            ros = self._support[route].decode(cdr)
        except Exception as exc:  # the generated decoder raises struct.error/IndexError/... on truncated CDR
            self.reject(route, "cdr", f"does not decode as {route.ros_type}: {type(exc).__name__}: {exc}")
            return None
        self._seq[route] += 1
        inc = Incoming(seq=self._seq[route], log_time_ns=source_time_ns, options=self.options)
        try:
            msg = codec.from_ros(route.ros_type, ros, inc)
        except codec.InputRejected as exc:
            self.reject(route, exc.kind, str(exc))
            return None
        self.publish(route, msg)
        return msg

    def on_message(self, route: Route, msg: Message) -> bytes | None:
        """One mmstream message -> CDR written to the route's DDS writer."""
        out = codec.OUTBOUND[(route.cls, route.ros_type)]
        try:
            cdr = self._support[route].encode(out.to_ros(msg))
        except (ValueError, TypeError, KeyError, OverflowError) as exc:  # the encoder's errors on bad values
            self.reject(route, "encode", f"{type(msg).__name__} does not encode: {type(exc).__name__}: {exc}")
            return None
        self.stats[route].sent += 1
        self.write(route, cdr)
        return cdr
