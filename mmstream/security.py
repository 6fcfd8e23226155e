"""CurveZMQ on every tcp endpoint: graph keys, a topic policy, and a ZAP authenticator.

A graph's security lives in a launch file's ``security:`` section::

    security:
      key_dir: ../keys              # from `mmstream keys generate ../keys host_a host_b`
      key: host_a                   # the key pair this launch file's nodes use (its secret must be here)
      node_keys: {camera: cam0}     # optional: a node that uses another key pair
      allow:                        # which keys may publish / subscribe which topics (fnmatch patterns)
        host_a: {publish: ["/camera/*", "/audio/*"], subscribe: ["/emotion/*"]}
        host_b: {publish: ["/emotion/*"], subscribe: ["/camera/*", "/audio/*"]}

The launcher writes it, validated, to ``<run dir>/security.json`` and names that file and each
node's key in ``MMSTREAM_SECURITY`` / ``MMSTREAM_SECURITY_KEY``; the transport applies it when a
socket is made, so node code does not change. On a tcp endpoint the binding side (a topic's
publisher, a control or text socket) is a CURVE server whose ZAP handler admits only keys the
policy allows on that topic (the topic is the ZAP domain) and logs every other key with its
address; the connecting side is a CURVE client that accepts only the server key the policy names
for the topic, so an impostor publisher fails the handshake. A plaintext peer cannot talk to a
CURVE socket at all. Without security, tcp is allowed on loopback only, unless the launch file
says ``insecure: true`` (``MMSTREAM_INSECURE=1``). ipc endpoints are protected by the run
directory's mode (0700), which :func:`check_private_dir` enforces.

Sockets that are not topics use pseudo-topics as their domain: :data:`CONTROL_DOMAIN` for the
player's control socket and :data:`TEXT_INPUT_DOMAIN` for the text node's zmq socket. There the
bound side *receives*, so it needs ``subscribe`` and a client needs ``publish`` to send to it.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from mmstream.errors import MmstreamError

ENV_CONFIG = "MMSTREAM_SECURITY"          # path of the graph's security.json
ENV_KEY = "MMSTREAM_SECURITY_KEY"         # name of the key pair this process uses
ENV_INSECURE = "MMSTREAM_INSECURE"        # "1": plaintext tcp on network addresses allowed (warned)
CONTROL_DOMAIN = "/_control/player"       # pseudo-topic of the player's control socket
TEXT_INPUT_DOMAIN = "/_input/text"        # pseudo-topic of the text node's zmq socket
PUBLISH, SUBSCRIBE = "publish", "subscribe"
_SECTION_KEYS = {"key_dir", "key", "node_keys", "allow"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_LOOPBACK = re.compile(r"(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)")
log = logging.getLogger("mmstream.security")


class SecurityError(MmstreamError):
    """A key, key directory, policy or endpoint that breaks the graph's security rules."""


# --------------------------------------------------------------------------- keys


def generate_keys(directory: str | Path, names: Iterable[str], *, overwrite: bool = False) -> list[Path]:
    """One CURVE key pair per name in ``directory`` (``NAME.key`` public, ``NAME.key_secret`` 0600).

    zmq.auth's certificate format, so ``zmq.auth.load_certificate`` reads them.
    """
    directory = Path(directory)
    names = list(names)
    if not names:
        raise SecurityError("keys generate: give at least one key name (one per host or per node)")
    for name in names:
        if not _NAME.fullmatch(name):
            raise SecurityError(f"key name {name!r}: expected letters, digits, '_', '-', '.'")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    written = []
    for name in names:
        public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
        if not overwrite and (public.exists() or secret.exists()):
            raise SecurityError(f"key {name!r} already exists in {directory}; remove it first or pass --force")
        public_file, secret_file = zmq.auth.create_certificates(str(directory), name)
        os.chmod(secret_file, 0o600)
        written += [Path(public_file), Path(secret_file)]
    return written


def load_public_key(key_dir: Path, name: str) -> bytes:
    path = key_dir / f"{name}.key"
    if not path.is_file() and (key_dir / f"{name}.key_secret").is_file():
        path = key_dir / f"{name}.key_secret"
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read public key {name!r}: expected {path} "
                            f"(from `mmstream keys generate`): {exc}") from None
    return public


def load_key_pair(key_dir: Path, name: str) -> tuple[bytes, bytes]:
    path = key_dir / f"{name}.key_secret"
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read secret key {name!r}: expected {path} "
                            f"(from `mmstream keys generate`): {exc}") from None
    if secret is None:
        raise SecurityError(f"{path} holds no secret key")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecurityError(f"secret key {path} is readable by others (mode {stat.filemode(mode)}); chmod 600 it")
    return public, secret


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Rights:
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()

    def allows(self, right: str, topic: str) -> bool:
        patterns = self.publish if right == PUBLISH else self.subscribe
        return any(fnmatch.fnmatchcase(topic, p) for p in patterns)


@dataclass(frozen=True)
class SecurityConfig:
    """A validated ``security:`` section: key directory, default key, per-node keys, policy."""

    key_dir: Path
    key: str
    allow: Mapping[str, Rights]
    node_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (self.key, *self.node_keys.values()):
            if name not in self.allow:
                raise SecurityError(f"key {name!r} has no entry under security.allow; "
                                    f"known: {sorted(self.allow)}")

    @classmethod
    def parse(cls, section: Any, base: Path, where: str) -> SecurityConfig:
        """The launch file's ``security:`` map, checked against the key files."""
        if not isinstance(section, dict):
            raise SecurityError(f"{where}: security must be a map with {sorted(_SECTION_KEYS)}")
        unknown = sorted(set(section) - _SECTION_KEYS)
        if unknown:
            raise SecurityError(f"{where}: security: unknown key(s) {unknown}; allowed: {sorted(_SECTION_KEYS)}")
        for required in ("key_dir", "key", "allow"):
            if required not in section:
                raise SecurityError(f"{where}: security: missing required key {required!r}")
        key_dir = Path(str(section["key_dir"]))
        key_dir = (key_dir if key_dir.is_absolute() else base / key_dir).resolve()
        if not key_dir.is_dir():
            raise SecurityError(f"{where}: security.key_dir {key_dir} is not a directory "
                                f"(make one with `mmstream keys generate {key_dir} NAME...`)")
        allow_raw = section["allow"]
        if not isinstance(allow_raw, dict) or not allow_raw:
            raise SecurityError(f"{where}: security.allow must map key name -> {{publish: [...], subscribe: [...]}}")
        allow: dict[str, Rights] = {}
        for name, rights in allow_raw.items():
            name = str(name)
            w = f"{where}: security.allow.{name}"
            if not isinstance(rights, dict) or set(rights) - {PUBLISH, SUBSCRIBE}:
                raise SecurityError(f"{w}: expected a map with 'publish' and/or 'subscribe' lists of topic patterns")
            lists = {}
            for right in (PUBLISH, SUBSCRIBE):
                value = rights.get(right) or []
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith("/") for p in value):
                    raise SecurityError(f"{w}.{right}: expected a list of topic patterns starting with '/'")
                lists[right] = tuple(value)
            load_public_key(key_dir, name)  # every key named in the policy must exist
            allow[name] = Rights(**lists)
        node_keys = section.get("node_keys") or {}
        if not isinstance(node_keys, dict):
            raise SecurityError(f"{where}: security.node_keys must map node name -> key name")
        try:
            cfg = cls(key_dir=key_dir, key=str(section["key"]), allow=allow,
                      node_keys={str(k): str(v) for k, v in node_keys.items()})
        except SecurityError as exc:
            raise SecurityError(f"{where}: {exc}") from None
        for name in {cfg.key, *cfg.node_keys.values()}:
            try:
                load_key_pair(key_dir, name)  # the keys this host's nodes use need their secrets here
            except SecurityError as exc:
                raise SecurityError(f"{where}: {exc}") from None
        return cfg

    def keys_with(self, right: str, topic: str) -> list[str]:
        return sorted(name for name, rights in self.allow.items() if rights.allows(right, topic))

    def may(self, name: str | None, right: str, topic: str) -> bool:
        return name is not None and name in self.allow and self.allow[name].allows(right, topic)

    def to_json(self) -> str:
        return json.dumps({"key_dir": str(self.key_dir), "key": self.key, "node_keys": dict(self.node_keys),
                           "allow": {k: {PUBLISH: list(r.publish), SUBSCRIBE: list(r.subscribe)}
                                     for k, r in self.allow.items()}}, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> SecurityConfig:
        try:
            d = json.loads(text)
            return cls(key_dir=Path(d["key_dir"]), key=d["key"], node_keys=d.get("node_keys", {}),
                       allow={k: Rights(tuple(r.get(PUBLISH, ())), tuple(r.get(SUBSCRIBE, ())))
                              for k, r in d["allow"].items()})
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise SecurityError(f"{where}: not a security config written by the launcher ({exc!r})") from None

    def public_keys(self) -> dict[bytes, str]:
        """z85 public key -> key name, for every key in the policy."""
        return {load_public_key(self.key_dir, name): name for name in self.allow}


_cache: dict[str, tuple[float, SecurityConfig]] = {}


def current_config(run_dir: Path | None = None) -> SecurityConfig | None:
    """This process's graph security: ``$MMSTREAM_SECURITY``, else ``<run dir>/security.json``, else None."""
    path_text = os.environ.get(ENV_CONFIG)
    if path_text:
        path = Path(path_text)
        if not path.is_file():
            raise SecurityError(f"{ENV_CONFIG}={path_text} names no file; refusing to fall back to plaintext")
    else:
        from mmstream.graph import default_run_dir

        path = (run_dir or default_run_dir()) / "security.json"
        if not path.is_file():
            return None
    mtime = path.stat().st_mtime
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    cfg = SecurityConfig.from_json(path.read_text(), str(path))
    _cache[str(path)] = (mtime, cfg)
    return cfg


def process_key(cfg: SecurityConfig) -> str:
    name = os.environ.get(ENV_KEY) or cfg.key
    if name not in cfg.allow:
        raise SecurityError(f"{ENV_KEY}={name!r} is not a key of the graph's policy; known: {sorted(cfg.allow)}")
    return name


# --------------------------------------------------------------------------- endpoint rules


def tcp_host(endpoint: str) -> str | None:
    """The host of a ``tcp://HOST:PORT`` endpoint, None for other transports."""
    m = re.fullmatch(r"tcp://(.+):(\d+|\*)", endpoint)
    return m.group(1) if m else None


def is_loopback(host: str) -> bool:
    return _LOOPBACK.fullmatch(host) is not None


_warned_insecure: set[str] = set()


def check_plaintext(endpoint: str, what: str) -> None:
    """Refuse plaintext tcp on a network address unless ``MMSTREAM_INSECURE=1`` (then warn once)."""
    host = tcp_host(endpoint)
    if host is None:
        return
    bind_all = os.environ.get("MMSTREAM_BIND_ALL") == "1"
    if is_loopback(host) and not bind_all:
        return
    if os.environ.get(ENV_INSECURE) == "1":
        if endpoint not in _warned_insecure:
            _warned_insecure.add(endpoint)
            log.warning("%s: plaintext tcp on a network address (%s%s): anyone who can reach it can read "
                        "and inject; configure security: in the launch file", what, endpoint,
                        ", bound on all interfaces" if bind_all else "")
        return
    raise SecurityError(f"{what}: tcp endpoint {endpoint} is on a network address and the graph has no "
                        f"security configured; add a security: section to the launch file "
                        f"(docs/security.md) or insecure: true to accept plaintext")


ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks a context's ZAP handler (RFC 27)
_ZAP_STOP = b"mmstream-zap-stop"


class _ZapHandler:
    """ZAP handler of one context: the domain is the topic; the client key must hold the right on it.

    Its thread exits when :meth:`stop` is called or when the context is terminated (the socket
    then raises ETERM and is closed by the thread), so ``ctx.term()`` never waits on it.
    """

    def __init__(self, ctx: zmq.Context, cfg: SecurityConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.known = cfg.public_keys()
        self.rights: dict[str, str] = {}  # domain -> right a client needs there
        self.refused = 0
        self._logged: dict[tuple[str, bytes, str], int] = {}
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        try:
            self._sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise SecurityError(f"cannot start the ZAP authenticator ({exc}): another handler owns this "
                                f"context's {ZAP_ENDPOINT}") from None
        self._thread = threading.Thread(target=self._run, name="mmstream-zap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                msg = self._sock.recv_multipart()
                if msg == [_ZAP_STOP]:
                    self._sock.send(b"")
                    return
                self._sock.send_multipart(self._reply(msg))
        except zmq.ContextTerminated:
            pass
        finally:
            self._sock.close(0)

    def stop(self) -> None:
        """Stop the thread (its socket closes). A no-op once the context is terminated."""
        if not self._thread.is_alive():
            return
        try:
            req = self.ctx.socket(zmq.REQ)
        except zmq.ZMQError:
            return
        req.setsockopt(zmq.LINGER, 0)
        try:
            req.connect(ZAP_ENDPOINT)
            req.send(_ZAP_STOP)
            req.poll(2000)
        finally:
            req.close(0)
        self._thread.join(2.0)

    def _reply(self, msg: list[bytes]) -> list[bytes]:
        if len(msg) < 6:
            return [b"1.0", msg[1] if len(msg) > 1 else b"", b"400", b"malformed ZAP request", b"", b""]
        version, request_id, domain_b, address_b, _identity, mechanism = msg[:6]
        domain, address = domain_b.decode(errors="replace"), address_b.decode(errors="replace")
        key = z85.encode(msg[6]) if mechanism == b"CURVE" and len(msg) == 7 and len(msg[6]) == 32 else b""
        name = self.known.get(key)
        right = self.rights.get(domain)
        if right is not None and self.cfg.may(name, right, domain):
            return [version, request_id, b"200", b"OK", (name or "").encode(), b""]
        reason = ("not CURVE" if not key else "unknown key" if name is None
                  else f"key {name!r} may not {right} {domain}")
        self.refused += 1
        ip = address.rsplit(":", 1)[0]
        seen = self._logged.get((ip, key, domain), 0) + 1
        self._logged[(ip, key, domain)] = seen
        if seen == 1 or seen % 100 == 0:  # every peer once, then every 100th retry
            log.warning("refused client from %s on %s: %s (key %s; %d refusal(s) from this peer)",
                        address or "?", domain, reason, key.decode() or "-", seen)
        return [version, request_id, b"400", reason.encode(), b"", b""]


class _AuthRegistry:
    """One ZAP handler per ZeroMQ context, started with its first CURVE server, stopped with its last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ctx: dict[int, tuple[_ZapHandler, int]] = {}

    def acquire(self, ctx: zmq.Context, cfg: SecurityConfig, domain: str, right: str) -> _ZapHandler:
        with self._lock:
            handler, users = self._by_ctx.get(id(ctx), (None, 0))
            if handler is not None and (handler.ctx is not ctx or not handler._thread.is_alive()):
                handler, users = None, 0  # a terminated context whose id was reused
            if handler is None:
                handler = _ZapHandler(ctx, cfg)
            handler.rights[domain] = right
            self._by_ctx[id(ctx)] = (handler, users + 1)
            return handler

    def release(self, ctx: zmq.Context) -> None:
        with self._lock:
            handler, users = self._by_ctx.get(id(ctx), (None, 0))
            if handler is None:
                return
            if users <= 1:
                del self._by_ctx[id(ctx)]
                handler.stop()
            else:
                self._by_ctx[id(ctx)] = (handler, users - 1)

    def refused(self, ctx: zmq.Context) -> int:
        handler, _ = self._by_ctx.get(id(ctx), (None, 0))
        return handler.refused if handler is not None and handler.ctx is ctx else 0


_registry = _AuthRegistry()


@dataclass
class SocketSecurity:
    """What :func:`secure_server` / :func:`secure_client` did to a socket.

    ``release()`` after closing the socket stops the context's ZAP handler with its last CURVE
    server; a socket whose owner never calls it is covered too, the handler ends with ``ctx.term()``.
    """

    mechanism: str = "none"       # "curve", "plaintext" (loopback/insecure tcp) or "none" (ipc/inproc)
    key: str | None = None
    _ctx: zmq.Context | None = None

    def release(self) -> None:
        if self._ctx is not None:
            _registry.release(self._ctx)
            self._ctx = None

    def refused(self) -> int:
        """Clients this socket's context has refused so far (0 without CURVE)."""
        return 0 if self._ctx is None else _registry.refused(self._ctx)


def secure_server(sock: zmq.Socket, endpoint: str, *, domain: str, server_right: str = PUBLISH,
                  client_right: str = SUBSCRIBE, what: str = "") -> SocketSecurity:
    """Before ``sock.bind(endpoint)``: make it a CURVE server that admits keys with ``client_right``.

    ``server_right``: what this process's key must be allowed on ``domain`` (publish for a topic).
    """
    what = what or f"socket for {domain}"
    if tcp_host(endpoint) is None:
        return SocketSecurity()
    cfg = current_config()
    if cfg is None:
        check_plaintext(endpoint, what)
        return SocketSecurity("plaintext")
    name = process_key(cfg)
    if not cfg.may(name, server_right, domain):
        raise SecurityError(f"{what}: key {name!r} may not {server_right} {domain} under the graph's policy "
                            f"(keys that may: {cfg.keys_with(server_right, domain) or 'none'})")
    public, secret = load_key_pair(cfg.key_dir, name)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    ctx = sock.context
    _registry.acquire(ctx, cfg, domain, client_right)
    return SocketSecurity("curve", name, ctx)


def secure_client(sock: zmq.Socket, endpoint: str, *, domain: str, server_right: str = PUBLISH,
                  client_right: str = SUBSCRIBE, what: str = "") -> SocketSecurity:
    """Before ``sock.connect(endpoint)``: a CURVE client that trusts only the key holding ``server_right``."""
    what = what or f"socket for {domain}"
    if tcp_host(endpoint) is None:
        return SocketSecurity()
    cfg = current_config()
    if cfg is None:
        check_plaintext(endpoint, what)
        return SocketSecurity("plaintext")
    name = process_key(cfg)
    if not cfg.may(name, client_right, domain):
        raise SecurityError(f"{what}: key {name!r} may not {client_right} {domain} under the graph's policy "
                            f"(keys that may: {cfg.keys_with(client_right, domain) or 'none'})")
    servers = cfg.keys_with(server_right, domain)
    if len(servers) != 1:
        raise SecurityError(f"{what}: the policy must give exactly one key the right to {server_right} {domain} "
                            f"so a client knows whom to trust; found {servers or 'none'}")
    public, secret = load_key_pair(cfg.key_dir, name)
    sock.setsockopt(zmq.CURVE_SERVERKEY, load_public_key(cfg.key_dir, servers[0]))
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    return SocketSecurity("curve", name)


# --------------------------------------------------------------------------- run directory


def check_private_dir(path: Path, *, fix: bool = True) -> str | None:
    """Make sure ``path`` is a directory owned by this user with no group/other access (0700).

    Creates it 0700 if missing. A looser mode on a directory this user owns is tightened when
    ``fix`` (the message is returned, for a warning), else refused; another owner is always refused.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SecurityError(f"run directory {path} is not a plain directory (a symlink?); refusing to use it")
    if st.st_uid != os.getuid():
        raise SecurityError(f"run directory {path} belongs to uid {st.st_uid}, not to this user "
                            f"({os.getuid()}); its sockets could be read by someone else: pick another --run-dir")
    loose = st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    if not loose:
        return None
    if not fix:
        raise SecurityError(f"run directory {path} has mode {stat.filemode(st.st_mode)}; expected drwx------")
    os.chmod(path, 0o700)
    return f"run directory {path} had mode {stat.filemode(st.st_mode)}; set to drwx------"
