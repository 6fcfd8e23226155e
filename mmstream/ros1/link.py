"""The rospy side of the ROS 1 bridge: one ROS 1 node, its subscribers and publishers.

rospy delivers messages on its own threads. :class:`Ros1Link` hands them to the mmstream node
thread through bounded per-topic inboxes and a wake-up pipe, so the node sleeps in its one poll
(``Wait.until_ready(link.fileno())``) and converts and publishes on its own thread. A full inbox
drops its oldest message (counted), like the sensor QoS of mmstream subscriptions.

rospy registers with the master once. A watcher thread asks the master every
``master_check_period_s`` whether it knows this node (``lookupNode``); when a master that went away
comes back (a restarted ``roscore``), it registers every publisher and subscriber again and hands
the subscribers the current publishers (through the node's own ``publisherUpdate`` slave API, as
the master itself would), so the bridge picks the robot up again without a restart.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import xmlrpc.client
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mmstream.clock import host_now_ns


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self.timeout_s
        return conn


def xmlrpc_proxy(uri: str, timeout_s: float = 2.0) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(uri, transport=_TimeoutTransport(timeout_s), allow_none=True)


@dataclass
class Inbox:
    """What arrived on one ROS 1 subscription, waiting for the node thread."""

    topic: str
    kind: str
    keep_last: int
    items: deque[tuple[Any, int]] = field(default_factory=deque)
    dropped: int = 0


class Ros1Link:
    """A rospy node: subscriptions into inboxes, publishers out, and a master watcher."""

    def __init__(self, rospy: Any, name: str, *, log: logging.Logger, master_check_period_s: float = 1.0) -> None:
        self.rospy = rospy
        self.log = log
        self._lock = threading.Lock()
        self._inboxes: list[Inbox] = []
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._subscribers: list[Any] = []
        self._publishers: list[Any] = []
        self._stop = threading.Event()
        self.reregistrations = 0
        # disable_signals: the mmstream node owns SIGINT/SIGTERM; rospy must not install handlers.
        # init_node loads ROS's logging config, which replaces the root logger's handlers (our stderr
        # lines would go to a file under $ROS_HOME/log): put ours back afterwards.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            rospy.init_node(name, anonymous=False, disable_signals=True)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        self.caller_id = rospy.get_name()
        import rosgraph

        self.master_uri: str = rosgraph.get_master_uri()
        self._watcher = threading.Thread(target=self._watch_master, args=(master_check_period_s,),
                                         name="ros1-master-watch", daemon=True)
        self._watcher.start()

    # ------------------------------------------------------------------ endpoints
    def subscribe(self, topic: str, msg_class: Any, kind: str, *, keep_last: int = 8) -> Inbox:
        inbox = Inbox(topic=topic, kind=kind, keep_last=keep_last)
        with self._lock:
            self._inboxes.append(inbox)
        self._subscribers.append(self.rospy.Subscriber(topic, msg_class, self._on_message, callback_args=inbox,
                                                       queue_size=keep_last, tcp_nodelay=True))
        return inbox

    def publisher(self, topic: str, msg_class: Any, *, queue_size: int = 10, latch: bool = False) -> Any:
        pub = self.rospy.Publisher(topic, msg_class, queue_size=queue_size, latch=latch, tcp_nodelay=True)
        self._publishers.append(pub)
        return pub

    def set_param(self, name: str, value: Any) -> None:
        try:
            self.rospy.set_param(name, value)
        except Exception as exc:  # the master may be away: the value is set again when it changes
            self.log.debug("could not set ROS param %s: %s", name, exc)

    def _on_message(self, msg: Any, inbox: Inbox) -> None:  # rospy thread
        with self._lock:
            if len(inbox.items) >= inbox.keep_last:
                inbox.items.popleft()
                inbox.dropped += 1
            inbox.items.append((msg, host_now_ns()))
        try:
            os.write(self._write_fd, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the node thread is already due to wake

    # ------------------------------------------------------------------ node thread
    def fileno(self) -> int:
        return self._read_fd

    def take(self) -> list[tuple[Inbox, Any, int]]:
        """Everything that arrived, oldest first per topic (round robin across topics)."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        out: list[tuple[Inbox, Any, int]] = []
        with self._lock:
            queues = [(ib, list(ib.items)) for ib in self._inboxes]
            for ib in self._inboxes:
                ib.items.clear()
        for i in range(max((len(items) for _, items in queues), default=0)):
            out += [(ib, *items[i]) for ib, items in queues if i < len(items)]
        return out

    # ------------------------------------------------------------------ the master
    def _watch_master(self, period_s: float) -> None:
        known = None  # did the master know this node at the last look
        while not self._stop.wait(period_s):
            try:
                code, _, _ = xmlrpc_proxy(self.master_uri).lookupNode(self.caller_id, self.caller_id)
            except (OSError, xmlrpc.client.Error) as exc:
                if known is not False:
                    self.log.warning("ROS master %s unreachable (%s); will register again when it is back",
                                     self.master_uri, exc)
                known = False
                continue
            if code == 1:
                known = True
            elif self._registered_once():
                self.log.info("ROS master %s does not know %s (it restarted): registering again",
                              self.master_uri, self.caller_id)
                known = self._register_again()

    def _registered_once(self) -> bool:
        from rospy.impl.registration import get_registration_listeners

        return any(getattr(listener, "registered", False) for listener in get_registration_listeners().listeners)

    def _register_again(self) -> bool:
        from rospy.core import get_node_uri
        from rospy.impl.registration import get_topic_manager

        master, me = xmlrpc_proxy(self.master_uri), get_node_uri()
        tm = get_topic_manager()
        try:
            for topic, type_name in tm.get_publications():
                master.registerPublisher(self.caller_id, topic, type_name, me)
            for topic, type_name in tm.get_subscriptions():
                code, _, uris = master.registerSubscriber(self.caller_id, topic, type_name, me)
                if code == 1:
                    xmlrpc_proxy(me).publisherUpdate("/master", topic, uris)
        except (OSError, xmlrpc.client.Error) as exc:
            self.log.warning("registering again with %s failed (%s); retrying", self.master_uri, exc)
            return False
        self.reregistrations += 1
        return True

    def close(self) -> None:
        self._stop.set()
        for end in self._subscribers + self._publishers:
            try:
                end.unregister()
            except Exception:  # teardown goes on (the master may be gone)
                self.log.debug("unregister failed", exc_info=True)
        self.rospy.signal_shutdown("mmstream bridge closing")
        self._watcher.join(timeout=3.0)
        os.close(self._read_fd)
        os.close(self._write_fd)

