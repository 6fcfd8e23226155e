"""Where a graph lives: the run directory, topic endpoints, and the registry of running nodes.

A graph started by ``mmstream launch`` owns one *run directory* (``MMSTREAM_RUN_DIR``, default
``/tmp/mmstream-<uid>/default``). Each topic's publisher binds an ipc socket derived from the
topic name inside it, so subscribers find a topic by name alone and reconnect by themselves
when a publisher restarts. Topics that cross hosts get explicit tcp endpoints from the launch
file (``MMSTREAM_ENDPOINTS``, a JSON map topic -> ``tcp://host:port``). Every node writes
``nodes/<name>.json`` (pid, topics) so the CLI can list the graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from mmstream.errors import MmstreamError

_IPC_MAX = 100  # sun_path is 108 bytes on Linux


#: node names of tools (``mmstream topic hz`` is ``_cli_hz_<pid>``, the monitor ``_monitor_<pid>``): not
#: part of the graph; their records are removed when they exit and pruned once their process is gone
TOOL_NODE_PREFIX = "_"


def make_private_dir(path: Path) -> Path:
    """``mkdir -p`` where every directory created is 0700 (run directories hold the graph's sockets)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


def default_run_dir() -> Path:
    return Path(os.environ.get("MMSTREAM_RUN_DIR") or f"/tmp/mmstream-{os.getuid()}/default")


def normalize_topic(topic: str) -> str:
    if not topic or not re.fullmatch(r"/?[A-Za-z0-9_][A-Za-z0-9_/.\-]*", topic) or "//" in topic:
        raise MmstreamError(f"invalid topic name {topic!r}: expected letters, digits, '_', '-', '.', '/'")
    return topic if topic.startswith("/") else "/" + topic


def _explicit_endpoints(run_dir: Path | None = None) -> dict[str, str]:
    """``$MMSTREAM_ENDPOINTS``, else the launcher's ``<run dir>/endpoints.json`` (CLI tools find tcp topics)."""
    raw = os.environ.get("MMSTREAM_ENDPOINTS")
    if not raw:
        saved = (run_dir or default_run_dir()) / "endpoints.json"
        raw = saved.read_text() if saved.is_file() else ""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MmstreamError(f"topic endpoints (MMSTREAM_ENDPOINTS or endpoints.json) are not JSON: {exc}") from None
    return {normalize_topic(k): str(v) for k, v in data.items()}


def topic_endpoint(topic: str, run_dir: Path | None = None) -> str:
    """The endpoint subscribers connect to for ``topic``."""
    topic = normalize_topic(topic)
    explicit = _explicit_endpoints(run_dir).get(topic)
    if explicit:
        return explicit
    run_dir = run_dir or default_run_dir()
    name = topic.strip("/").replace("/", ".")
    path = run_dir / "topics" / f"{name}.sock"
    if len(str(path)) > _IPC_MAX:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
        path = Path(f"/tmp/mmstream-{os.getuid()}-ipc") / f"{digest}.sock"
    make_private_dir(path.parent)
    return f"ipc://{path}"


def bind_endpoint(endpoint: str) -> str:
    """The address a publisher binds for ``endpoint`` (tcp hosts become the wildcard)."""
    m = re.fullmatch(r"tcp://([^:]+):(\d+)", endpoint)
    if m and os.environ.get("MMSTREAM_BIND_ALL") == "1":
        return f"tcp://*:{m.group(2)}"
    return endpoint


# --------------------------------------------------------------------------- node registry


def nodes_dir(run_dir: Path | None = None) -> Path:
    return make_private_dir((run_dir or default_run_dir()) / "nodes")


def write_node_record(name: str, record: dict[str, Any], run_dir: Path | None = None) -> None:
    path = nodes_dir(run_dir) / f"{name.strip('/').replace('/', '.')}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def remove_node_record(name: str, run_dir: Path | None = None) -> None:
    (nodes_dir(run_dir) / f"{name.strip('/').replace('/', '.')}.json").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_nodes(run_dir: Path | None = None) -> list[dict[str, Any]]:
    """Records of the nodes of the graph, each with ``alive``; stale records of dead processes included."""
    out = []
    for path in sorted(nodes_dir(run_dir).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rec["alive"] = _alive(int(rec.get("pid", 0)))
        if not rec["alive"] and str(rec.get("name", "")).startswith(TOOL_NODE_PREFIX):
            path.unlink(missing_ok=True)  # a killed CLI tool: not a node of the graph that died
            continue
        out.append(rec)
    return out


def list_topics(run_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """topic -> {type, publishers: [...], subscribers: [...]} over the live nodes."""
    topics: dict[str, dict[str, Any]] = {}
    for rec in list_nodes(run_dir):
        if not rec["alive"]:
            continue
        for direction, key in (("pub", "publishers"), ("sub", "subscribers")):
            for t in rec.get(direction, []):
                entry = topics.setdefault(t["topic"], {"type": "", "publishers": [], "subscribers": []})
                entry[key].append(rec["name"])
                if direction == "pub" or not entry["type"]:
                    entry["type"] = t["type"]
    return topics
