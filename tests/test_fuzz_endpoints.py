"""Bad input on every endpoint a running graph exposes: counted, logged once per kind, no crash, no growth.

One graph (player on the sample bag, looping; text node on a zmq PULL socket; synchronizer;
Foxglove bridge) with /camera/image on a CURVE tcp endpoint. Hypothesis draws byte strings and
malformed frames, and each example goes to every endpoint:

* topic sockets over ipc: an impostor publisher of /fuzz/text (the synchronizer's and the
  bridge's text input is remapped there) sends random frames and broken messages (bad msgpack,
  unknown schema, wrong version, missing or mis-sized buffers, wrong type, oversized); every
  publisher's socket gets random frames upstream from an XSUB peer, and raw bytes on its unix socket;
* the tcp endpoint: raw bytes, a peer with no key (NULL), a random CURVE key, and a peer with
  an authorized key that sends garbage upstream;
* the player's control socket (REP): random requests and broken envelopes;
* the text node's socket (PULL): random multipart frames;
* the Foxglove WebSocket: random text and binary frames and malformed protocol operations.

Then: every node is the same process, the launch is up, each node logged each kind of rejection
at most once, rejections were counted in the subscribers' stats, and no node's RSS grew by more
than a few MB between a warm-up round and the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmstream import graph, security, wire
from mmstream.messages import NodeStats, TextUtterance
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(120)
NODES = ("player", "text", "synchronizer", "foxglove_bridge")
FUZZ_TOPIC = "/fuzz/text"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone: the checks below say which node died
        return 0.0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pids(run_dir: Path) -> dict[str, int]:
    procs = json.loads((run_dir / "processes.json").read_text())
    return {p["name"]: p["pid"] for p in procs if p["pid"] and p["state"] == "running"}


def _malformed(topic: str, rng: random.Random) -> list[list[bytes]]:
    """Broken messages of every kind the wire format rejects, built from a valid TextUtterance."""
    good = [bytes(memoryview(f)) for f in wire.encode(topic, TextUtterance(text="hello"))]
    header = msgpack.unpackb(good[1], raw=False)
    t = topic.encode()

    def with_header(**changes: object) -> list[bytes]:
        return [t, msgpack.packb({**header, **changes}, use_bin_type=True), *good[2:]]

    frame = wire.encode("/x", NodeStats(node="impostor"))
    return [
        [t],                                                    # truncated: no header
        [t, bytes(rng.randbytes(64))],                          # bad-header: not msgpack
        [t, msgpack.packb([1, 2, 3])],                          # bad-header: not a map
        with_header(s="mmstream/NoSuchThing"),                  # unknown-schema
        with_header(v=999),                                     # wrong-version
        with_header(a=[["<f4", [4, 4]]]),                       # truncated: a buffer listed, none sent
        [t, good[1], b"\x00" * 7],                              # truncated: a buffer that is not listed
        with_header(t="not-an-int"),                            # bad-header: stamp type
        with_header(d={"text": 123, "bogus": [1]}),             # bad-fields
        [t, *[bytes(memoryview(f)) for f in frame[1:]]],        # wrong-type (NodeStats on a text topic)
        [b"\xff\xfe" + t, good[1]],                             # bad-topic: not UTF-8 (never matches a filter)
        [t, good[1], b"\x00" * (300 * 1024)],                    # oversized (the bridge caps at 256 KiB)
    ]


LAUNCH = """\
launch:
  - node: {{exec: player, name: player, params: {{bag: "{bag}", loop: true, keyboard: false, exit_on_end: false,
           progress_s: 0}}, remap: [{{from: /text/utterance, to: /bag/text}}]}}
  - node: {{exec: text, name: text, params: {{source: zmq, endpoint: "tcp://127.0.0.1:{text_port}", exit_on_end: false}}}}
  - node: {{exec: synchronizer, name: synchronizer, remap: [{{from: /text/utterance, to: {fuzz}}}]}}
  - node: {{exec: foxglove_bridge, name: foxglove_bridge, params: {{port: {ws_port}, text_topic: {fuzz},
           max_message_bytes: 262144}}}}
endpoints: {{/camera/image: "tcp://127.0.0.1:{cam_port}"}}
security:
  key_dir: keys
  key: graph
  allow:
    graph: {{publish: ["/camera/*"], subscribe: ["/camera/*", "/_input/*"]}}
    fuzzer: {{subscribe: ["/camera/*"], publish: ["/_input/*"]}}
"""


class Fuzzer:
    """Sockets into every endpoint of the graph; ``send(frames)`` throws one example at all of them."""

    def __init__(self, run_dir: Path, keys: Path, ports: dict[str, int]) -> None:
        self.run_dir, self.ports = run_dir, ports
        self.ctx = zmq.Context()
        self.socks: list[zmq.Socket] = []
        self.impostor = self._sock(zmq.XPUB)
        self.impostor.bind(graph.topic_endpoint(FUZZ_TOPIC, run_dir))
        self.topic_files = [p for p in (run_dir / "topics").glob("*.sock") if p.name != "fuzz.text.sock"]
        self.upstream = []
        for path in self.topic_files:
            s = self._sock(zmq.XSUB)
            s.connect(f"ipc://{path}")
            self.upstream.append(s)
        cam = f"tcp://127.0.0.1:{ports['cam']}"
        self.tcp_null = self._sock(zmq.XSUB)
        self.tcp_null.connect(cam)
        self.tcp_random = self._sock(zmq.XSUB)
        self.tcp_random.curve_serverkey = security.load_public_key(keys, "graph")
        self.tcp_random.curve_publickey, self.tcp_random.curve_secretkey = zmq.curve_keypair()
        self.tcp_random.connect(cam)
        self.tcp_keyed = self._sock(zmq.XSUB)
        pub, sec = zmq.auth.load_certificate(str(keys / "fuzzer.key_secret"))
        self.tcp_keyed.curve_serverkey = security.load_public_key(keys, "graph")
        self.tcp_keyed.curve_publickey, self.tcp_keyed.curve_secretkey = pub, sec
        self.tcp_keyed.connect(cam)
        self.control = self._sock(zmq.DEALER)
        self.control.connect(f"ipc://{run_dir}/player.ctl")
        self.text = self._sock(zmq.PUSH)  # an authorized key: its frames reach the text node's parser
        self.text.setsockopt(zmq.SNDHWM, 100)
        self.text.curve_serverkey = security.load_public_key(keys, "graph")
        self.text.curve_publickey, self.text.curve_secretkey = pub, sec
        self.text.connect(f"tcp://127.0.0.1:{ports['text']}")
        self.text_null = self._sock(zmq.PUSH)  # no key: refused at the handshake
        self.text_null.setsockopt(zmq.SNDHWM, 100)
        self.text_null.connect(f"tcp://127.0.0.1:{ports['text']}")
        self.ws = None
        self.sent: Counter[str] = Counter()
        self.malformed = _malformed(FUZZ_TOPIC, random.Random(7))

    def _sock(self, kind: int) -> zmq.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        self.socks.append(s)
        return s

    def _try(self, sock: zmq.Socket, frames: list[bytes], what: str) -> None:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            self.sent[what] += 1
        except zmq.Again:
            pass

    def _raw(self, family: int, address: object, data: bytes) -> None:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as c:
                c.settimeout(0.5)
                c.connect(address)
                c.sendall(data)
        except OSError:
            pass  # refused or reset: fine, the server chose to hang up

    def _websocket(self, frames: list[bytes], rng: random.Random) -> None:
        from websockets.sync.client import connect

        for _ in range(2):
            try:
                if self.ws is None:
                    self.ws = connect(f"ws://127.0.0.1:{self.ports['ws']}", subprotocols=["foxglove.sdk.v1"],
                                      open_timeout=3, max_size=None).__enter__()
                for f in frames:
                    self.ws.send(f)                                  # binary: client message opcodes
                    self.ws.send(f.decode(errors="replace"))         # text: not JSON
                ops = [{"op": "subscribe", "subscriptions": [{"id": rng.randint(-5, 2**40), "channelId": "x"}]},
                       {"op": "unsubscribe", "subscriptionIds": [None, -1]}, {"op": "advertise", "channels": 7},
                       {"op": rng.choice(["getParameters", "setParameters", "subscribeConnectionGraph", "fetchAsset",
                                          "callService", "nope"])}, {"no_op": True}, [1, 2], "x" * 300]
                self.ws.send(json.dumps(rng.choice(ops)))
                self.ws.send(b"\x01" + rng.randbytes(rng.randint(0, 40)))  # clientPublish-like binary
                self.sent["websocket"] += 1
                return
            except Exception:  # noqa: BLE001 - the server closed the connection on bad input: reconnect once
                try:
                    if self.ws is not None:
                        self.ws.close()
                except Exception:  # noqa: BLE001
                    pass
                self.ws = None

    def send(self, frames: list[bytes], rng: random.Random) -> None:
        frames = frames or [b""]
        topic = FUZZ_TOPIC.encode()
        self._try(self.impostor, [topic, *frames], "impostor")
        self._try(self.impostor, rng.choice(self.malformed), "impostor")
        for s in self.upstream:
            self._try(s, frames, "upstream")
        path = rng.choice(self.topic_files)
        self._raw(socket.AF_UNIX, str(path), b"".join(frames)[:4096])
        self._raw(socket.AF_INET, ("127.0.0.1", self.ports["cam"]), b"".join(frames)[:4096])
        for s in (self.tcp_null, self.tcp_random, self.tcp_keyed):
            self._try(s, frames, "tcp")
        self._try(self.control, [b"", *frames], "control")
        self._try(self.control, frames, "control")  # no envelope delimiter
        while self.control.poll(0):
            self.control.recv_multipart()
        self._try(self.text, frames, "text")
        self._try(self.text, [rng.randbytes(rng.randint(0, 64)) + b"\xff\xfe"], "text")
        self._try(self.text_null, frames, "text_null")
        self._raw(socket.AF_INET, ("127.0.0.1", self.ports["text"]), b"".join(frames)[:4096])
        self._raw(socket.AF_INET, ("127.0.0.1", self.ports["ws"]), b"".join(frames)[:4096])
        self._websocket(frames, rng)

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001
                pass
        for s in self.socks:
            s.close(0)
        self.ctx.term()


def test_every_endpoint_survives_bad_input(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    security.generate_keys(keys, ["graph", "fuzzer"])
    ports = {"text": _free_port(), "ws": _free_port(), "cam": _free_port()}
    launch = tmp_path / "fuzz.yaml"
    launch.write_text(textwrap.dedent(LAUNCH.format(bag=REPO / "mmstream/data/sample.mcap", fuzz=FUZZ_TOPIC,
                                                    text_port=ports["text"], ws_port=ports["ws"],
                                                    cam_port=ports["cam"])))
    run_dir = tmp_path / "run"
    log_path = tmp_path / "launch.log"
    env = dict(os.environ, MMSTREAM_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mmstream.cli", "launch", str(launch)], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    fuzzer = None
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # every node up, and the player's control socket bound
            records = {r["name"] for r in graph.list_nodes(run_dir) if r.get("alive")}
            if set(NODES) <= records and (run_dir / "player.ctl").exists() and proc.poll() is None:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"graph did not start:\n{log_path.read_text()[-3000:]}")
        pids = _pids(run_dir)
        fuzzer = Fuzzer(run_dir, keys, ports)
        time.sleep(1.0)  # subscribers find the impostor, handshakes finish
        rng = random.Random(1234)
        for i in range(60):  # warm-up round: every code path allocated once, and the allocator's
            fuzzer.send([rng.randbytes(rng.randint(0, 300)) for _ in range(rng.randint(1, 4))], rng)
            for bad in fuzzer.malformed if i % 6 == 0 else ():  # high-water mark for big frames reached
                fuzzer._try(fuzzer.impostor, bad, "impostor")
        time.sleep(2.0)
        rss0 = {n: _rss_mb(p) for n, p in pids.items()}

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(frames=st.lists(st.binary(max_size=1500), min_size=1, max_size=5), seed=st.integers(0, 2**32))
        def fuzz(frames: list[bytes], seed: int) -> None:
            fuzzer.send(frames, random.Random(seed))

        fuzz()
        flood = fuzzer.upstream[0]
        for i in range(5000):  # a peer that floods a publisher upstream: read and dropped, not kept
            fuzzer._try(flood, [b"\x02" + i.to_bytes(4, "little") * 256], "flood")
        time.sleep(3.0)  # the nodes catch up; stats go out
        alive_pids = _pids(run_dir)
        rss1 = {n: _rss_mb(p) for n, p in pids.items() if alive_pids.get(n) == p}
        # the subscribers' counters: one NodeStats from each
        from mmstream.node import Node

        stats: dict[str, NodeStats] = {}
        with Node("_fuzz_probe", run_dir=run_dir, params={"log_level": "warning"}) as probe:
            for name in ("synchronizer", "foxglove_bridge"):
                probe.create_subscription(NodeStats, f"/{name}/stats",
                                          lambda m, name=name: stats.__setitem__(name, m), keep_last=2)
            end = time.monotonic() + 5
            while len(stats) < 2 and time.monotonic() < end:
                probe.spin_once(0.1)
        sent = dict(fuzzer.sent)
    finally:
        if fuzzer is not None:
            fuzzer.close()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log_path.read_text(errors="replace")
    assert alive_pids == pids, f"a node died or restarted: {pids} -> {alive_pids}\n{out[-4000:]}"
    assert "died" not in out and "Traceback" not in out, out[-4000:]
    assert all(sent.get(k, 0) > 100 for k in ("impostor", "upstream", "tcp", "control", "text")), sent
    assert sent.get("websocket", 0) > 50, sent
    # counted: the impostor's frames were rejected by both subscribers of /fuzz/text
    for name in ("synchronizer", "foxglove_bridge"):
        sub = next(t for t in stats[name].topics if t["topic"] == FUZZ_TOPIC and t["direction"] == "sub")
        assert sub["rejected"] > 100, (name, sub)
    # logged once per kind: every "dropped bad input (kind)" warning appears once per node
    kinds = Counter()
    for line in out.splitlines():
        if "dropped bad input (" in line:
            node = line.split("]", 1)[0].lstrip("[")
            kinds[(node, line.split("dropped bad input (", 1)[1].split(")", 1)[0])] += 1
    assert kinds, out[-3000:]
    assert max(kinds.values()) == 1, kinds
    for name in ("synchronizer", "foxglove_bridge"):
        reasons = {k for n, k in kinds if n == name}
        assert {"truncated", "bad-header", "unknown-schema", "wrong-version", "wrong-type", "bad-fields"} <= reasons, kinds
    assert ("foxglove_bridge", "oversized") in kinds, kinds
    assert any(n == "text" for n, _ in kinds), kinds  # the text socket's bad input, counted and logged
    # no memory growth between the warm-up and the end
    growth = {n: round(rss1[n] - rss0[n], 1) for n in rss1}
    assert all(g < 8.0 for g in growth.values()), (growth, rss0)
    print(json.dumps({"sent": sent, "rss_mb_after_warmup": {n: round(v, 1) for n, v in rss0.items()},
                      "rss_growth_mb": growth, "logged_kinds": sorted(f"{n}:{k}" for n, k in kinds),
                      "rejected": {n: next(t["rejected"] for t in stats[n].topics if t["topic"] == FUZZ_TOPIC
                                           and t["direction"] == "sub") for n in stats}}))
