"""CURVE on tcp endpoints over real sockets: who is admitted, who is refused (and logged), and the rules."""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth

from mmstream import security
from mmstream.clock import host_now_ns
from mmstream.errors import MmstreamError
from mmstream.messages import TextUtterance
from mmstream.security import SecurityConfig, SecurityError
from mmstream.transport import Publisher, Subscription

pytestmark = pytest.mark.timeout(60)
TOPIC = "/text/utterance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def graph_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keys pub (may publish /text/*), sub (may subscribe /text/*), other (known, no rights on /text)."""
    keys = tmp_path / "keys"
    security.generate_keys(keys, ["pub", "sub", "other"])
    cfg = SecurityConfig.parse({"key_dir": str(keys), "key": "pub", "allow": {
        "pub": {"publish": ["/text/*"]}, "sub": {"subscribe": ["/text/*"]},
        "other": {"publish": ["/elsewhere"], "subscribe": ["/elsewhere"]}}}, tmp_path, "test")
    path = tmp_path / "security.json"
    path.write_text(cfg.to_json())
    monkeypatch.setenv(security.ENV_CONFIG, str(path))
    monkeypatch.delenv(security.ENV_INSECURE, raising=False)
    yield keys


def _pub(ctx: zmq.Context, endpoint: str) -> Publisher[TextUtterance]:
    return Publisher(ctx, TOPIC, TextUtterance, endpoint=endpoint, clock=host_now_ns)


def _sub(ctx: zmq.Context, endpoint: str) -> Subscription[TextUtterance]:
    return Subscription(ctx, TOPIC, TextUtterance, lambda m: None, endpoint=endpoint, keep_last=None,
                        clock=host_now_ns, on_reject=lambda r, d: None, log=logging.getLogger("t"))


def _receive(sub: Subscription[TextUtterance], pub: Publisher[TextUtterance], timeout_s: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not got:
        pub.publish(TextUtterance(text="marker"))
        sub.socket.poll(50)
        sub.receive_available()
        while sub.pending():
            msg = sub.take()
            if msg is not None:
                got.append(msg.text)
    return got


def _raw_receive(sock: zmq.Socket, pub: Publisher[TextUtterance], timeout_s: float) -> list[list[bytes]]:
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pub.publish(TextUtterance(text="marker"))
        if sock.poll(50):
            got.append(sock.recv_multipart())
    return got


def _term(ctx: zmq.Context) -> None:
    """ctx.term() must return: no authenticator socket left behind."""
    t = threading.Thread(target=ctx.term, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "context did not terminate: a ZAP socket was left open"


def test_allowed_keys_talk_over_curve(graph_keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    monkeypatch.setenv(security.ENV_KEY, "pub")
    pub = _pub(ctx, ep)
    monkeypatch.setenv(security.ENV_KEY, "sub")
    sub = _sub(ctx, ep)
    assert pub._security.mechanism == sub.security.mechanism == "curve"
    assert _receive(sub, pub, 5.0) == ["marker"]
    sub.close()
    pub.close()
    _term(ctx)


@pytest.mark.parametrize("client", ["plaintext", "unknown-key", "known-key-without-right"])
def test_strangers_get_nothing_and_are_logged_with_their_address(
        graph_keys: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, client: str) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    monkeypatch.setenv(security.ENV_KEY, "pub")
    pub = _pub(ctx, ep)
    intruder = zmq.Context().socket(zmq.SUB)
    intruder.setsockopt(zmq.LINGER, 0)
    intruder.setsockopt(zmq.SUBSCRIBE, b"")
    if client != "plaintext":
        public, secret = (zmq.curve_keypair() if client == "unknown-key"
                          else zmq.auth.load_certificate(str(graph_keys / "other.key_secret")))
        intruder.curve_serverkey = security.load_public_key(graph_keys, "pub")  # it even knows the server key
        intruder.curve_publickey, intruder.curve_secretkey = public, secret
    intruder.connect(ep)
    with caplog.at_level(logging.WARNING, logger="mmstream.security"):
        assert _raw_receive(intruder, pub, 1.0) == []
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    if client == "plaintext":
        assert pub._security.refused() == 0  # a NULL peer never reaches ZAP: the CURVE handshake fails first
    else:
        assert refusals and "127.0.0.1" in refusals[0] and TOPIC in refusals[0], refusals
        assert ("unknown key" if client == "unknown-key" else "'other' may not subscribe") in refusals[0]
        assert len(refusals) == 1, "a peer that keeps retrying is logged once, then every 100th time"
        assert pub._security.refused() >= 1
    intruder.close(0)
    intruder.context.term()
    pub.close()
    _term(ctx)


def test_an_impostor_publisher_fails_the_handshake(graph_keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A known key that may not publish the topic binds its port: the subscriber trusts only 'pub'."""
    ep = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    monkeypatch.setenv(security.ENV_KEY, "other")
    with pytest.raises(SecurityError, match="key 'other' may not publish /text/utterance"):
        _pub(ctx, ep)
    impostor = ctx.socket(zmq.XPUB)
    impostor.setsockopt(zmq.LINGER, 0)
    impostor.curve_server = True
    impostor.curve_publickey, impostor.curve_secretkey = zmq.auth.load_certificate(
        str(graph_keys / "other.key_secret"))
    impostor.bind(ep)
    monkeypatch.setenv(security.ENV_KEY, "sub")
    sub = _sub(ctx, ep)
    deadline = time.monotonic() + 1.0
    joined = False
    while time.monotonic() < deadline:
        if impostor.poll(50):
            joined = True
            break
    assert not joined, "the subscriber completed a handshake with a server key it does not trust"
    sub.close()
    impostor.close(0)
    _term(ctx)


def test_rules_without_security(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(security.ENV_CONFIG, raising=False)
    monkeypatch.delenv(security.ENV_INSECURE, raising=False)
    monkeypatch.setenv("MMSTREAM_RUN_DIR", str(tmp_path))
    security.check_plaintext("tcp://127.0.0.1:5555", "x")       # loopback: plaintext is fine
    security.check_plaintext("ipc:///tmp/x.sock", "x")
    with pytest.raises(SecurityError, match=r"tcp endpoint tcp://10\.1\.2\.3:5555 is on a network address"):
        _pub(zmq.Context.instance(), "tcp://10.1.2.3:5555")
    monkeypatch.setenv("MMSTREAM_BIND_ALL", "1")
    with pytest.raises(SecurityError):
        security.check_plaintext("tcp://127.0.0.1:5555", "x")   # bound on every interface is not loopback
    monkeypatch.setenv(security.ENV_INSECURE, "1")
    with caplog.at_level(logging.WARNING, logger="mmstream.security"):
        security.check_plaintext("tcp://10.9.9.9:1", "x")
    assert "plaintext tcp on a network address" in caplog.text


def test_configured_security_never_falls_back_to_plaintext(graph_keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = zmq.Context.instance()
    monkeypatch.setenv(security.ENV_CONFIG, str(graph_keys / "missing.json"))
    with pytest.raises(SecurityError, match="names no file; refusing to fall back to plaintext"):
        _pub(ctx, f"tcp://127.0.0.1:{free_port()}")


def test_keys_and_config_checks(tmp_path: Path) -> None:
    keys = tmp_path / "k"
    written = security.generate_keys(keys, ["a", "b"])
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written if p.name.endswith("_secret"))
    public, secret = zmq.auth.load_certificate(str(keys / "a.key_secret"))  # zmq.auth's own format
    assert security.load_key_pair(keys, "a") == (public, secret)
    with pytest.raises(SecurityError, match="already exists"):
        security.generate_keys(keys, ["a"])
    os.chmod(keys / "b.key_secret", 0o644)
    with pytest.raises(SecurityError, match="readable by others"):
        security.load_key_pair(keys, "b")
    with pytest.raises(SecurityError, match="no entry under security.allow"):
        SecurityConfig.parse({"key_dir": str(keys), "key": "a", "allow": {"b": {"publish": ["/x"]}}}, tmp_path, "f")
    with pytest.raises(SecurityError, match=r"cannot read public key 'zz'"):
        SecurityConfig.parse({"key_dir": str(keys), "key": "a", "allow": {"a": {}, "zz": {}}}, tmp_path, "f")
    with pytest.raises(SecurityError, match=r"unknown key\(s\) \['allwo'\]"):
        SecurityConfig.parse({"key_dir": str(keys), "key": "a", "allwo": {}}, tmp_path, "f")


def test_run_dir_must_be_private(tmp_path: Path) -> None:
    d = tmp_path / "run"
    assert security.check_private_dir(d) is None and stat.S_IMODE(d.stat().st_mode) == 0o700
    os.chmod(d, 0o755)
    with pytest.raises(SecurityError, match="expected drwx------"):
        security.check_private_dir(d, fix=False)
    assert "set to drwx------" in (security.check_private_dir(d) or "")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(d)
    with pytest.raises(MmstreamError, match="not a plain directory"):
        security.check_private_dir(link)


def test_a_curve_server_never_released_still_lets_its_context_terminate(graph_keys: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = zmq.Context()
    monkeypatch.setenv(security.ENV_KEY, "pub")
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    assert security.secure_server(sock, f"tcp://127.0.0.1:{free_port()}", domain=TOPIC).mechanism == "curve"
    sock.close(0)  # no release(): a socket a node owns and closes itself
    _term(ctx)


def _control_and_text_keys(graph_keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key 'pub' runs the player and text node; 'sub' may command the player and send text."""
    cfg = SecurityConfig.parse({"key_dir": str(graph_keys), "key": "pub", "allow": {
        "pub": {"subscribe": [security.CONTROL_DOMAIN, security.TEXT_INPUT_DOMAIN]},
        "sub": {"publish": [security.CONTROL_DOMAIN, security.TEXT_INPUT_DOMAIN]}, "other": {}}}, tmp_path, "t")
    (tmp_path / "security.json").write_text(cfg.to_json())
    monkeypatch.setenv(security.ENV_KEY, "pub")


def test_player_control_socket_over_curve(graph_keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmstream.bag.play import ControlSocket, PlayerControl, send_control
    from mmstream.errors import BagError

    _control_and_text_keys(graph_keys, tmp_path, monkeypatch)
    ep = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    control_socket = ControlSocket(sock, ep)
    control = PlayerControl(rate=1.0)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            control_socket.poll(control)
            time.sleep(0.01)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        monkeypatch.setenv(security.ENV_KEY, "sub")
        assert isinstance(send_control(ep, "status"), dict)      # an allowed key is answered
        monkeypatch.setenv(security.ENV_KEY, "other")
        with pytest.raises(SecurityError, match="key 'other' may not publish /_control/player"):
            send_control(ep, "status")
        monkeypatch.delenv(security.ENV_CONFIG)                  # a plaintext client is not
        with pytest.raises(BagError, match="no reply"):
            send_control(ep, "pause", timeout_s=0.5)
        assert control.paused is False
    finally:
        stop.set()
        t.join()
        control_socket.close()
        _term(ctx)


def test_text_socket_over_curve(graph_keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmstream.sensors.text_sources import ZmqTextSource

    _control_and_text_keys(graph_keys, tmp_path, monkeypatch)
    src = ZmqTextSource(f"tcp://127.0.0.1:{free_port()}")
    ctx = zmq.Context()
    try:
        senders = []
        for client in ("sub", "plaintext", "unknown"):
            push = ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            if client == "sub":
                monkeypatch.setenv(security.ENV_KEY, "sub")
                security.secure_client(push, src.endpoint, domain=security.TEXT_INPUT_DOMAIN,
                                       server_right=security.SUBSCRIBE, client_right=security.PUBLISH)
            elif client == "unknown":
                push.curve_serverkey = security.load_public_key(graph_keys, "pub")
                push.curve_publickey, push.curve_secretkey = zmq.curve_keypair()
            push.connect(src.endpoint)
            senders.append((client, push))
        got: list[str] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(got) < 3:
            for client, push in senders:
                try:
                    push.send(f"from {client}".encode(), zmq.NOBLOCK)
                except zmq.Again:
                    pass
            got += [u.text for u in src.poll(0.05)]
        assert got and set(got) == {"from sub"}, got
        for _, push in senders:
            push.close(0)
    finally:
        src.close()
        ctx.term()
