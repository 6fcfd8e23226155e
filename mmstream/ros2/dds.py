"""The bridge's DDS side on Cyclone DDS (PyPI ``cyclonedds``): one participant, one endpoint per route.

Endpoints are configured as rmw_cyclonedds_cpp configures them: topic ``rt/<name>``, type
``<pkg>::msg::dds_::<Name>_``, keyless final types, XCDR1 only, endpoint USER_DATA
``typehash=RIHS01_<hex>;`` and participant USER_DATA ``enclave=/;``. Samples travel as
pre-serialized CDR (:mod:`mmstream.ros2.typesupport`). Readers wake the node through a pipe
(a data-available listener writes one byte), so the node sleeps in its poll instead of spinning.
:meth:`DdsGraph.check_matches` says in words when a route has no peer, or has one whose QoS or
type does not match (DDS itself stays silent about both).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmstream.ros2 import Ros2Error
from mmstream.ros2.bridge import Route
from mmstream.ros2.discovery import Discovery, apply
from mmstream.ros2.naming import dds_topic
from mmstream.ros2.qos import explain_mismatch, from_cyclone, to_cyclone
from mmstream.ros2.typesupport import raw, type_support

ENCLAVE_USER_DATA = b"enclave=/;"
_TAKE_BATCH = 64


@dataclass
class _Endpoint:
    route: Route
    entity: Any                 # DataReader or DataWriter
    cls: type                   # the route's DDS class
    matched: int = 0            # peers matched at the last check
    last_warning: str = ""      # what was last said about its missing peer (said again only when it changes)


class DdsGraph:
    """The participant and the routes' readers and writers."""

    def __init__(self, discovery: Discovery, *, log: logging.Logger | None = None) -> None:
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.qos import Policy, Qos

        self.log = log or logging.getLogger("ros2_bridge")
        self.discovery = discovery
        if not apply(discovery):
            self.log.info("CYCLONEDDS_URI is set: its configuration is used instead of the ROS discovery settings")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            self.participant = DomainParticipant(discovery.domain_id, qos=Qos(Policy.Userdata(ENCLAVE_USER_DATA)))
        except Exception as exc:  # DDSException: bad configuration, no usable interface
            raise Ros2Error(f"cannot create a DDS participant ({discovery.describe()}): {exc}") from None
        self._pubs_seen = BuiltinDataReader(self.participant, BuiltinTopicDcpsPublication)
        self._subs_seen = BuiltinDataReader(self.participant, BuiltinTopicDcpsSubscription)
        alive = SampleState.Any | ViewState.Any | InstanceState.Alive
        self._pubs_alive = ReadCondition(self._pubs_seen, alive)
        self._subs_alive = ReadCondition(self._subs_seen, alive)
        self._readers: list[_Endpoint] = []
        self._writers: dict[Route, _Endpoint] = {}
        self._topics: dict[str, Any] = {}

    @property
    def fd(self) -> int:
        """Readable when a reader has data (the node waits on it)."""
        return self._wake_r

    def _topic(self, route: Route) -> tuple[Any, type]:
        from cyclonedds.topic import Topic

        name = dds_topic(route.ros_topic)
        support = type_support(route.ros_type)
        cls = support.dds_class()
        if name not in self._topics:
            self._topics[name] = Topic(self.participant, name, cls)
        return self._topics[name], cls

    def add_reader(self, route: Route) -> None:
        from cyclonedds.core import Listener
        from cyclonedds.sub import DataReader

        topic, cls = self._topic(route)
        wake_w = self._wake_w

        def on_data(_reader: Any) -> None:  # on a Cyclone thread: only wake the node
            try:
                os.write(wake_w, b"\0")
            except (BlockingIOError, OSError):
                pass  # the pipe is full (the node is awake anyway) or closed

        qos = to_cyclone(route.qos, user_data=type_support(route.ros_type).user_data)
        reader = DataReader(self.participant, topic, qos=qos, listener=Listener(on_data_available=on_data))
        self._readers.append(_Endpoint(route, reader, cls))

    def add_writer(self, route: Route) -> None:
        from cyclonedds.pub import DataWriter

        topic, cls = self._topic(route)
        qos = to_cyclone(route.qos, user_data=type_support(route.ros_type).user_data)
        self._writers[route] = _Endpoint(route, DataWriter(self.participant, topic, qos=qos), cls)

    def write(self, route: Route, cdr: bytes) -> None:
        end = self._writers[route]
        end.entity.write(raw(end.cls, cdr))

    def take(self, deliver: Callable[[Route, bytes, int], None]) -> int:
        """Deliver every sample waiting in any reader as ``deliver(route, cdr, source_time_ns)``."""
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        n = 0
        for end in self._readers:
            while True:
                samples = end.entity.take(N=_TAKE_BATCH)
                for s in samples:
                    info = getattr(s, "sample_info", None)
                    if info is not None and not info.valid_data:
                        continue  # a writer went away (instance state change): no data
                    cdr = getattr(s, "cdr", None)
                    if cdr is None:
                        continue
                    deliver(end.route, cdr, int(info.source_timestamp) if info is not None else 0)
                    n += 1
                if len(samples) < _TAKE_BATCH:
                    break
        return n

    # ---------------------------------------------------------------- matching, in words
    def _remote_endpoints(self) -> list[tuple[bool, Any]]:
        """(is_writer, DcpsEndpoint) of every endpoint discovery knows is alive, ours included."""
        out = []
        for is_writer, reader, cond in ((True, self._pubs_seen, self._pubs_alive), (False, self._subs_seen,
                                                                                     self._subs_alive)):
            out += [(is_writer, ep) for ep in reader.read(N=4096, condition=cond)]
        return out

    def matched(self, route: Route) -> int:
        for end in [*self._readers, *self._writers.values()]:
            if end.route == route:
                return self._match_count(end)
        raise KeyError(route)

    @staticmethod
    def _match_count(end: _Endpoint) -> int:
        ent = end.entity
        status = (ent.get_subscription_matched_status() if end.route.direction == "in"
                  else ent.get_publication_matched_status())
        return int(status.current_count)

    def check_matches(self, *, warn: bool) -> list[str]:
        """Log peers gained and lost; with ``warn``, say why each unmatched route has no peer. Returns the warnings."""
        own = {self.participant.get_guid()}
        warnings = []
        for end in [*self._readers, *self._writers.values()]:
            count = self._match_count(end)
            route = end.route
            if count != end.matched:
                self.log.info("%s: %d matched DDS peer(s) (was %d)", route.ros_topic, count, end.matched)
                if count:
                    end.last_warning = ""
                end.matched = count
            if count or not warn:
                continue
            text = self._explain(route, own)
            if text != end.last_warning:
                end.last_warning = text
                self.log.warning("%s", text)
                warnings.append(text)
        return warnings

    def _explain(self, route: Route, own: set[Any]) -> str:
        name = dds_topic(route.ros_topic)
        want_writer = route.direction == "in"
        type_name = type_support(route.ros_type).dds_name
        same_topic = [ep for is_writer, ep in self._remote_endpoints()
                      if is_writer == want_writer and ep.topic_name == name and ep.participant_key not in own]
        role = "reader" if want_writer else "writer"
        if not same_topic:
            return (f"{route.ros_topic}: no DDS {'writer' if want_writer else 'reader'} on {name} yet "
                    f"({self.discovery.describe()}; our {role}: {route.ros_type}, {route.qos.describe()})")
        parts = []
        for ep in same_topic:
            theirs = from_cyclone(ep.qos)
            why = []
            if ep.type_name != type_name:
                why.append(f"type {ep.type_name} but ours is {type_name}")
            mismatch = explain_mismatch(route.qos, theirs) if want_writer else explain_mismatch(theirs, route.qos)
            if mismatch:
                why.append(mismatch)
            parts.append(f"peer {'writer' if want_writer else 'reader'} with {theirs.describe()}"
                         f"{': ' + '; '.join(why) if why else ''}")
        return (f"{route.ros_topic}: not matched. Our {role}: {route.ros_type}, {route.qos.describe()}; "
                + "; ".join(parts))

    def close(self) -> None:
        for end in [*self._readers, *self._writers.values()]:
            try:
                end.entity.set_listener(None)
            except Exception:  # teardown goes on
                pass
        self._readers.clear()
        self._writers.clear()
        self._topics.clear()
        self.participant = None  # Cyclone deletes entities when their Python objects go
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
