"""Launch files: YAML close to ROS 2's YAML launch frontend, validated before anything starts.

    launch:
      - arg: {name: video, default: sample.mp4, description: "video file to play"}
      - node:
          exec: camera              # built-in node name or an importable module path
          name: camera              # unique in the file
          if: $(var live)           # optional: start it only when true (``unless``: only when false)
          params: {source: $(var video), fps: 30}
          params_file: ../config/camera.yaml   # relative to this file
          remap: [{from: /camera/image, to: /cam0/image}]
          env: {OMP_NUM_THREADS: "1"}
          respawn: true             # opt-in; restarted after respawn_delay_s, at most respawn_max times
          respawn_delay_s: 1.0
          respawn_max: 3
          required: true            # when it exits, the whole launch stops (ROS 2: on_exit shutdown)
    endpoints: {/camera/image: "tcp://192.168.1.20:5555"}   # optional: topics that cross hosts
    security:                       # CURVE on every tcp endpoint (mmstream/security.py, docs/security.md)
      key_dir: ../keys              # `mmstream keys generate ../keys host_a host_b`
      key: host_a                   # the key pair this file's nodes use
      allow: {host_a: {publish: ["/camera/*"]}, host_b: {subscribe: ["/camera/*"]}}
    insecure: false                 # true: allow plaintext tcp on network addresses (warned at start)

Substitutions: ``$(var NAME)``, ``$(env NAME)`` / ``$(env NAME default)``, ``$(dirname)``,
``$(not VALUE)``, ``$(if CONDITION THEN ELSE)``; they nest (``$(not $(var live))``,
``$(if $(var monitor) 2 1)``).
Every key is checked: a typo is an error naming the file, the node and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmstream.errors import LaunchError, MmstreamError
from mmstream.graph import normalize_topic
from mmstream.nodes_index import load_node_module
from mmstream.params import load_params_file, resolve
from mmstream.security import PUBLISH, SecurityConfig, is_loopback, tcp_host

_NODE_KEYS = {"exec", "name", "if", "unless", "params", "params_file", "remap", "env", "respawn", "respawn_delay_s",
              "respawn_max", "required", "sigint_timeout_s"}
_ARG_KEYS = {"name", "default", "description"}
_SUBST = re.compile(r"\$\((\w[\w-]*)\s*([^()$]*)\)")  # innermost first: $(not $(var live)) nests


@dataclass
class NodeSpec:
    """One node of a validated launch description."""

    exec: str
    name: str
    module: str
    params: dict[str, Any] = field(default_factory=dict)
    remap: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    respawn: bool = False
    respawn_delay_s: float = 1.0
    respawn_max: int = 3
    required: bool = False
    sigint_timeout_s: float = 3.0


@dataclass
class LaunchDescription:
    path: Path
    nodes: list[NodeSpec]
    args: dict[str, str]
    endpoints: dict[str, str]
    source: str  # the launch file's text, stored in recordings' metadata
    security: SecurityConfig | None = None
    insecure: bool = False  # plaintext tcp on network addresses accepted (the launcher warns)


def _substitute(value: Any, args: Mapping[str, str], where: str, base: Path) -> Any:
    import os

    if isinstance(value, dict):
        return {k: _substitute(v, args, where, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, args, where, base) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        kind, rest = m.group(1), m.group(2).strip()
        if kind == "var":
            if rest not in args:
                raise LaunchError(f"{where}: $(var {rest}) names an undeclared arg; declared: {sorted(args)}")
            return args[rest]
        if kind == "env":
            name, _, default = rest.partition(" ")
            if name in os.environ:
                return os.environ[name]
            if default:
                return default
            raise LaunchError(f"{where}: $(env {name}) is not set and has no default")
        if kind == "dirname":
            return str(base)
        if kind == "not":
            return "false" if _condition(rest, "$(not ...)", where) else "true"
        if kind == "if":
            parts = rest.split()
            if len(parts) != 3:
                raise LaunchError(f"{where}: $(if {rest}) expects $(if CONDITION THEN ELSE), three words")
            return parts[1] if _condition(parts[0], "$(if ...)", where) else parts[2]
        raise LaunchError(f"{where}: unknown substitution $({kind}); expected var, env, dirname, not or if")

    typed = re.fullmatch(r"\$\((var|not|if)\s.*\)", value) is not None
    out = value
    for _ in range(8):  # innermost substitutions first, until none is left
        new = _SUBST.sub(one, out)
        if new == out:
            break
        out = new
    if typed and out != "":
        # a whole-value substitution keeps YAML typing: "$(var fps)" with fps:=30 is the int 30
        try:
            return yaml.safe_load(out)
        except yaml.YAMLError:
            return out
    return out


def _check_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise LaunchError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _remaps(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    items = value.items() if isinstance(value, dict) else None
    if items is None:
        if not isinstance(value, list) or not all(isinstance(r, dict) and set(r) == {"from", "to"} for r in value):
            raise LaunchError(f"{where}: remap must be a list of {{from: TOPIC, to: TOPIC}} or a map")
        items = [(r["from"], r["to"]) for r in value]
    try:
        return {normalize_topic(str(a)): normalize_topic(str(b)) for a, b in items}
    except MmstreamError as exc:
        raise LaunchError(f"{where}: remap: {exc}") from None


def parse_launch(path: str | Path, cli_args: Mapping[str, str] | None = None) -> LaunchDescription:
    """Read and fully validate a launch file (no process is started)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LaunchError(f"cannot read launch file {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LaunchError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("launch"), list):
        raise LaunchError(f"{path}: expected a top-level 'launch:' list of arg/node entries")
    _check_keys(doc, {"launch", "endpoints", "security", "insecure"}, str(path))
    base = path.resolve().parent
    cli_args = dict(cli_args or {})
    args: dict[str, str] = {}
    declared_args: set[str] = set()
    nodes: list[NodeSpec] = []
    for i, entry in enumerate(doc["launch"]):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise LaunchError(f"{path}: launch entry {i} must be a map with one key 'arg' or 'node'")
        (kind, body), = entry.items()
        if kind == "arg":
            where = f"{path}: arg entry {i}"
            if not isinstance(body, dict) or "name" not in body:
                raise LaunchError(f"{where}: expected {{name: ..., default: ...}}")
            _check_keys(body, _ARG_KEYS, where)
            name = str(body["name"])
            declared_args.add(name)
            if name in cli_args:
                args[name] = cli_args[name]
            elif "default" in body:
                args[name] = str(_substitute(body["default"], args, where, base))
            else:
                raise LaunchError(f"{path}: arg {name!r} has no default; give it as {name}:=VALUE")
        elif kind == "node":
            spec = _parse_node(body, i, path, base, args)
            if spec is not None:
                nodes.append(spec)
        else:
            raise LaunchError(f"{path}: launch entry {i} has unknown kind {kind!r}; expected 'arg' or 'node'")
    unknown_cli = sorted(set(cli_args) - declared_args)
    if unknown_cli:
        raise LaunchError(f"{path}: unknown launch arg(s) {unknown_cli}; declared: {sorted(declared_args)}")
    names = [n.name for n in nodes]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise LaunchError(f"{path}: duplicate node name(s) {dups}; every node needs a unique name")
    endpoints = doc.get("endpoints") or {}
    if not isinstance(endpoints, dict):
        raise LaunchError(f"{path}: endpoints must map topic -> tcp://host:port")
    checked_endpoints = {}
    for topic, ep in endpoints.items():
        if not re.fullmatch(r"(tcp://[^:/]+:\d+|ipc://.+)", str(ep)):
            raise LaunchError(f"{path}: endpoint for {topic!r} is {ep!r}; expected tcp://HOST:PORT or ipc://PATH")
        checked_endpoints[normalize_topic(str(topic))] = str(ep)
    security, insecure = _parse_security(doc, path, base, args, checked_endpoints)
    return LaunchDescription(path=path, nodes=nodes, args=args, endpoints=checked_endpoints, source=text,
                             security=security, insecure=insecure)


def _parse_security(doc: Mapping[str, Any], path: Path, base: Path, args: Mapping[str, str],
                    endpoints: Mapping[str, str]) -> tuple[SecurityConfig | None, bool]:
    """The ``security:`` section and ``insecure:`` flag, checked against the tcp endpoints."""
    where = str(path)
    insecure = _substitute(doc.get("insecure", False), args, where, base)
    if not isinstance(insecure, bool):
        insecure = _condition(insecure, "insecure", where)
    security = None
    if doc.get("security") is not None:
        if insecure:
            raise LaunchError(f"{path}: 'security:' and 'insecure: true' contradict each other; keep one")
        try:
            security = SecurityConfig.parse(_substitute(doc["security"], args, where, base), base, where)
        except MmstreamError as exc:
            raise LaunchError(str(exc)) from None
    for topic, ep in endpoints.items():
        host = tcp_host(ep)
        if host is None:
            continue
        if security is not None:
            publishers = security.keys_with(PUBLISH, topic)
            if len(publishers) != 1:
                raise LaunchError(f"{path}: endpoint {topic} ({ep}): security.allow must give exactly one key "
                                  f"the right to publish it, so subscribers know whom to trust; "
                                  f"found {publishers or 'none'}")
        elif not is_loopback(host) and not insecure:
            raise LaunchError(f"{path}: endpoint {topic} is {ep}, a network address, and the launch file has no "
                              f"security: section; anyone on the network could read or inject it. Add "
                              f"security: (docs/security.md) or insecure: true to accept plaintext")
    return security, bool(insecure)


def _condition(value: Any, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise LaunchError(f"{where}: {key} must be true or false after substitution, got {value!r}")


def _parse_node(body: Any, index: int, path: Path, base: Path, args: Mapping[str, str]) -> NodeSpec | None:
    """The node's spec, or None when its ``if``/``unless`` condition leaves it out."""
    if not isinstance(body, dict):
        raise LaunchError(f"{path}: node entry {index} must be a map")
    label = body.get("name") or body.get("exec") or f"#{index}"
    where = f"{path}: node {label!r}"
    _check_keys(body, _NODE_KEYS, where)
    if "exec" not in body:
        raise LaunchError(f"{where}: missing required key 'exec'")
    body = _substitute(body, args, where, base)
    if "if" in body and not _condition(body["if"], "if", where):
        return None
    if "unless" in body and _condition(body["unless"], "unless", where):
        return None
    exec_name = str(body["exec"])
    name = str(body.get("name") or exec_name)
    try:
        module = load_node_module(exec_name)
    except LaunchError as exc:
        raise LaunchError(f"{where}: {exc}") from None
    params: dict[str, Any] = {}
    if body.get("params_file"):
        pf = Path(str(body["params_file"]))
        pf = pf if pf.is_absolute() else base / pf
        try:
            params.update(load_params_file(str(pf), name))
        except MmstreamError as exc:
            raise LaunchError(f"{where}: {exc}") from None
    inline = body.get("params") or {}
    if not isinstance(inline, dict):
        raise LaunchError(f"{where}: params must be a map of name: value")
    params.update(inline)
    declared = getattr(module, "PARAMS", None)
    if declared is None:
        raise LaunchError(f"{where}: module {module.__name__} declares no PARAMS list")
    try:
        resolve(name, declared, params)
    except MmstreamError as exc:
        raise LaunchError(f"{where}: {exc}") from None
    env = body.get("env") or {}
    if not isinstance(env, dict):
        raise LaunchError(f"{where}: env must be a map of NAME: value")
    spec = NodeSpec(exec=exec_name, name=name, module=module.__name__, params=params,
                    remap=_remaps(body.get("remap"), where), env={str(k): str(v) for k, v in env.items()})
    for key, typ in (("respawn", bool), ("required", bool), ("respawn_delay_s", float), ("respawn_max", int),
                     ("sigint_timeout_s", float)):
        if key in body:
            value = body[key]
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
                raise LaunchError(f"{where}: {key} must be {typ.__name__}, got {value!r}")
            if typ is not bool and value < 0:
                raise LaunchError(f"{where}: {key} must be >= 0, got {value!r}")
            setattr(spec, key, value)
    return spec


def parse_cli_args(items: list[str]) -> dict[str, str]:
    """``name:=value`` launch arguments."""
    out = {}
    for item in items:
        name, found, value = item.partition(":=")
        if not found or not name:
            raise LaunchError(f"launch argument {item!r}: expected NAME:=VALUE")
        out[name] = value
    return out
