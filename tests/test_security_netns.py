"""Two "hosts" (network namespaces joined by a veth pair) run half a graph each over CURVE tcp;
an intruder namespace with no key or a wrong key gets nothing and cannot inject; a packet
capture on the veth never shows a marker sent in a TextUtterance. Needs root, iproute2, tcpdump.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmstream import security
from tests.conftest import REPO

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"),
                       reason="needs root, ip (iproute2) and tcpdump"),
]
MARKER = "MARKER-7f3a-plaintext-must-not-appear"
PY = sys.executable


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@pytest.fixture
def hosts() -> Iterator[dict[str, str]]:
    """Namespaces a (10.77.0.1), b (10.77.0.2) joined by a veth; x (10.78.0.3) reaches a over another."""
    tag = f"{os.getpid() % 100000}"
    ns = {"a": f"mma{tag}", "b": f"mmb{tag}", "x": f"mmx{tag}", "vb": f"vb{tag}"}
    try:
        for n in ("a", "b", "x"):
            sh("ip", "netns", "add", ns[n])
            sh("ip", "-n", ns[n], "link", "set", "lo", "up")
        sh("ip", "link", "add", f"va{tag}", "type", "veth", "peer", "name", ns["vb"])
        sh("ip", "link", "add", f"vax{tag}", "type", "veth", "peer", "name", f"vx{tag}")
        for dev, n, addr in ((f"va{tag}", "a", "10.77.0.1/24"), (ns["vb"], "b", "10.77.0.2/24"),
                             (f"vax{tag}", "a", "10.78.0.1/24"), (f"vx{tag}", "x", "10.78.0.3/24")):
            sh("ip", "link", "set", dev, "netns", ns[n])
            sh("ip", "-n", ns[n], "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns[n], "link", "set", dev, "up")
        sh("ip", "-n", ns["x"], "route", "add", "default", "via", "10.78.0.1")
        yield ns
    finally:
        for n in ("a", "b", "x"):
            subprocess.run(["ip", "netns", "del", ns[n]], capture_output=True, timeout=20)


def _launch_file(path: Path, body: str, key: str, endpoints: dict[str, str]) -> Path:
    text = textwrap.dedent(body) + "endpoints: " + json.dumps(endpoints) + "\n" + textwrap.dedent(f"""\
        security:
          key_dir: keys_{key}
          key: {key}
          allow:
            host_a: {{publish: ["/camera/*", "/microphone/*", "/text/*"], subscribe: ["/perception/*"]}}
            host_b: {{subscribe: ["/camera/*", "/microphone/*", "/text/*"], publish: ["/perception/*"]}}
        """)
    path.write_text(text)
    return path


_INTRUDER = r"""
import json, socket, sys, time, zmq
endpoints, server_key = json.loads(sys.argv[1]), sys.argv[2].encode()
ctx = zmq.Context()
socks = []
for ep in endpoints:
    for mode in ("plain", "wrong-key"):
        s = ctx.socket(zmq.SUB); s.setsockopt(zmq.LINGER, 0); s.setsockopt(zmq.SUBSCRIBE, b"")
        if mode == "wrong-key":
            s.curve_serverkey = server_key
            s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
        s.connect(ep); socks.append(s)
    inj = ctx.socket(zmq.XSUB); inj.setsockopt(zmq.LINGER, 0); inj.connect(ep); socks.append(inj)
received, injected = 0, 0
deadline = time.monotonic() + 4
while time.monotonic() < deadline:
    for s in socks:
        if s.type == zmq.XSUB:
            try:
                s.send_multipart([b"\x01/text/utterance"], zmq.NOBLOCK)
                s.send_multipart([b"/text/utterance", b"INJECTED", b"INJECTED"], zmq.NOBLOCK); injected += 1
            except zmq.Again:
                pass
        while s.poll(0):
            s.recv_multipart(); received += 1
    for ep in endpoints:  # raw bytes at the port
        host, port = ep[6:].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=0.5) as c:
                c.sendall(b"\xff" + b"INJECTED" * 64)
        except OSError:
            pass
    time.sleep(0.05)
print(json.dumps({"received": received, "injected_sent": injected}))
"""


def _echo(ns: str, env: dict[str, str], topic: str, timeout_s: float) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, PY, "-m", "mmstream.cli", "topic", "echo", topic, "-n", "3"],
                         capture_output=True, text=True, timeout=timeout_s, cwd=REPO, env=env)
    return out.stdout + out.stderr


def _fail_with_logs(what: str, *procs: subprocess.Popen[str]) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
    logs = "\n".join(p.communicate(timeout=20)[0][-3000:] for p in procs)
    raise AssertionError(f"{what}\n{logs}")


def test_two_hosts_over_curve_with_an_intruder(hosts: dict[str, str], tmp_path: Path, spawn) -> None:  # noqa: ANN001
    keys = tmp_path / "keys"
    security.generate_keys(keys, ["host_a", "host_b"])
    for me, other in (("host_a", "host_b"), ("host_b", "host_a")):  # each host: own secret, other's public
        d = tmp_path / f"keys_{me}"
        d.mkdir(mode=0o700)
        for name in (f"{me}.key", f"{me}.key_secret", f"{other}.key"):
            shutil.copy2(keys / name, d / name)
    endpoints = {t: f"tcp://10.77.0.1:{port}" for t, port in
                 (("/camera/image", 47101), ("/microphone/audio", 47102), ("/text/utterance", 47103))}
    (tmp_path / "marker.srt").write_text(f"1\n00:00:00,000 --> 00:00:00,400\n{MARKER}\n\n")
    a = _launch_file(tmp_path / "a.yaml", f"""\
        launch:
          - node: {{exec: test_pattern, name: test_pattern, params: {{fps: 10.0, text_period_s: 0.0}}}}
          - node: {{exec: text, name: text, params: {{source: {tmp_path / 'marker.srt'}, loop: true}}}}
        """, "host_a", endpoints)
    b = _launch_file(tmp_path / "b.yaml", """\
        launch:
          - node: {exec: synchronizer, name: synchronizer}
          - node: {exec: inference, name: inference, params: {backend: onnxruntime}}
        """, "host_b", endpoints)
    pcap = tmp_path / "veth.pcap"
    dump = subprocess.Popen(["ip", "netns", "exec", hosts["b"], "tcpdump", "-i", hosts["vb"], "-s", "0", "-U",
                             "-w", str(pcap)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_a, run_b = tmp_path / "run_a", tmp_path / "run_b"
    env_b = dict(os.environ, MMSTREAM_RUN_DIR=str(run_b), PYTHONUNBUFFERED="1")
    try:
        time.sleep(0.5)  # tcpdump attaches
        pa = spawn(["ip", "netns", "exec", hosts["a"], PY, "-m", "mmstream.cli", "launch", str(a)],
                   env={"MMSTREAM_RUN_DIR": str(run_a)})
        pb = spawn(["ip", "netns", "exec", hosts["b"], PY, "-m", "mmstream.cli", "launch", str(b)],
                   env={"MMSTREAM_RUN_DIR": str(run_b)})
        # host b: estimates flow, and the marker arrives (decrypted) through a CLI tool with b's key
        deadline = time.monotonic() + 60
        estimates = ""
        while time.monotonic() < deadline and "mmstream/EmotionEstimate" not in estimates:
            try:
                estimates = _echo(hosts["b"], env_b, "/perception/emotion", 15)
            except subprocess.TimeoutExpired:
                pass
        if "mmstream/EmotionEstimate" not in estimates:
            _fail_with_logs(f"no estimates on host b: {estimates}", pa, pb)
        text = _echo(hosts["b"], env_b, "/text/utterance", 20)  # a CLI tool: endpoints and key from b's run dir
        assert MARKER in text, text
        # the intruder: no key, a random key that knows the server key, and injection attempts
        server_key = security.load_public_key(keys, "host_a").decode()
        intr = subprocess.run(["ip", "netns", "exec", hosts["x"], PY, "-c", _INTRUDER,
                               json.dumps(list(endpoints.values())), server_key],
                              capture_output=True, text=True, timeout=30)
        report = json.loads(intr.stdout.strip().splitlines()[-1])
        assert report["received"] == 0, report
        text_after = _echo(hosts["b"], env_b, "/text/utterance", 20)
        assert MARKER in text_after and "INJECTED" not in text_after
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
    for p in (pa, pb):
        p.send_signal(signal.SIGINT)
    out_a, _ = pa.communicate(timeout=20)
    pb.communicate(timeout=20)
    assert "refused client from 10.78.0.3" in out_a and "unknown key" in out_a, out_a[-3000:]
    captured = pcap.read_bytes()
    assert len(captured) > 200_000, f"capture too small to mean anything: {len(captured)} bytes"
    assert MARKER.encode() not in captured
    assert b"test_pattern" not in captured and b"mmstream/ImageFrame" not in captured  # headers are encrypted too
